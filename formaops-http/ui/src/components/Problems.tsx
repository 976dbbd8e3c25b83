import type { ProblemMap } from '../lib/problems';
import { messagesFor, messagesUnder } from '../lib/problems';

/** The messages for one field, shown right under it. */
export function FieldProblems({ map, field, under }: { map: ProblemMap; field: string; under?: boolean }) {
  const messages = under ? messagesUnder(map, field) : messagesFor(map, field);
  if (messages.length === 0) return null;
  return (
    <ul className="field-problems" data-testid={`problem-${field}`} role="alert">
      {messages.map((m, i) => (
        <li key={i}>{m}</li>
      ))}
    </ul>
  );
}

/** Form-level messages. */
export function FormProblems({ messages }: { messages: string[] }) {
  if (messages.length === 0) return null;
  return (
    <div className="form-problems" role="alert" data-testid="form-problems">
      {messages.map((m, i) => (
        <p key={i}>{m}</p>
      ))}
    </div>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p className="error-note" role="alert">
      {error instanceof Error ? error.message : String(error)}
    </p>
  );
}
