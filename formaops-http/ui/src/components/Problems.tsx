import type { ProblemMap } from '../lib/problems';
import { messagesFor, messagesUnder, problemsFromError } from '../lib/problems';

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

/** Every problem an error carries, each with the field (a line, a row) it names: for forms
 * whose problems are not next to one input (a dataset upload lists every bad line). */
export function Problems({ error }: { error: unknown }) {
  if (!error) return null;
  const map = problemsFromError(error);
  const messages = [...map.general, ...[...map.byField].flatMap(([field, ms]) => ms.map((m) => `${field}: ${m}`))];
  return <FormProblems messages={messages} />;
}
