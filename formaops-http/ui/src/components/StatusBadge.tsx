export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <span className={`status status-${status.toLowerCase()}`} data-testid={testId}>
      {status}
    </span>
  );
}
