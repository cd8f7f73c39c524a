/** One line of the bench's result table. */
export interface Row {
  figure: string;
  measured: string;
  baseline: string;
  target: string;
  /** true = meets its target, false = misses it, undefined = no target (reported only). */
  pass: boolean | undefined;
}

/** The rows as a plain-text table: figure | measured | baseline | target | pass/fail. */
export function renderTable(rows: readonly Row[]): string {
  const header = ['figure', 'measured', 'baseline', 'target', 'pass/fail'];
  const cells = rows.map((r) => [r.figure, r.measured, r.baseline, r.target, r.pass === undefined ? '—' : r.pass ? 'pass' : 'FAIL']);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

/** `1234.5` → `1,235`. */
export const int = (n: number): string => Math.round(n).toLocaleString('en-US');
/** Milliseconds with one decimal below 10. */
export const ms = (n: number): string => (n < 10 ? n.toFixed(1) : Math.round(n).toString());
/** `0.123` → `12.3 %`. */
export const pct = (share: number): string => `${(share * 100).toFixed(1)} %`;
