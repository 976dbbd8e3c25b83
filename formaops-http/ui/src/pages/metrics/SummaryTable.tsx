// The metrics page's tables of summaries (per version, per label, per prompt): one row per
// version, label or prompt, its name, its share when the table has one, then the figures every
// summary has.
import type { ReactNode } from 'react';
import type { MetricsSummary } from '../../api/types';
import { fmtCost, fmtMs, fmtPct } from '../../components/format';

const SUMMARY_HEADS = ['Executions', 'Completed', 'Failed', 'p50', 'p95', 'p99', 'Tokens', 'Cost', 'Validation'];

/** The cells every summary row shows, after its name and share. */
function SummaryCells({ s }: { s: MetricsSummary }) {
  return (
    <>
      <td>{s.counts.total}</td>
      <td>{s.counts.completed}</td>
      <td>{s.counts.failed}</td>
      <td>{fmtMs(s.latencyMs.p50)}</td>
      <td>{fmtMs(s.latencyMs.p95)}</td>
      <td>{fmtMs(s.latencyMs.p99)}</td>
      <td>{s.tokens.total}</td>
      <td>{fmtCost(s.costUsd)}</td>
      <td>{fmtPct(s.validationPassRate)}</td>
    </>
  );
}

export interface SummaryTableProps<T extends MetricsSummary> {
  /** The table's `data-testid`. */
  testId: string;
  /** The heading of the first column: what a row is (`Version`, `Label`, `Prompt`). */
  nameHead: string;
  rows: readonly T[];
  /** A row's React key. */
  rowKey: (row: T) => string | number;
  /** A row's first cell. */
  name: (row: T) => ReactNode;
  /** A row's share of the prompt's executions; without it the table has no Share column. */
  share?: (row: T) => number;
}

/** A table of summaries: name, share (optional), executions, latency, tokens, cost, validation. */
export function SummaryTable<T extends MetricsSummary>({ testId, nameHead, rows, rowKey, name, share }: SummaryTableProps<T>) {
  return (
    <table data-testid={testId}>
      <thead>
        <tr>
          <th>{nameHead}</th>
          {share && <th>Share</th>}
          {SUMMARY_HEADS.map((h) => (
            <th key={h}>{h}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr key={rowKey(row)}>
            <td>{name(row)}</td>
            {share && <td>{fmtPct(share(row))}</td>}
            <SummaryCells s={row} />
          </tr>
        ))}
      </tbody>
    </table>
  );
}
