/*
 * docs/faults.md as data: the rows the tests record (tests/support/fault-table.ts), rendered to one
 * sorted Markdown table and parsed back, so a run can tell whether the committed file still says
 * what the tests observed (tests/support/fault-table-setup.ts).
 */

/** One fault or bad input a test tried, and what it observed. */
export interface FaultRow {
  /** Where the fault is: `turn: classifier`, `DynamoDB`, `protocol`, `gateway`… */
  area: string;
  /** What was injected or sent. */
  fault: string;
  /** What the test saw, derived from its observations (an error code, a record's status…). */
  outcome: string;
}

/** A row with the test file that produced it (relative to the repository, forward slashes). */
export interface FiledRow extends FaultRow {
  test: string;
}

export const FAULTS_DOC = 'docs/faults.md';

const HEADER = `# Faults and bad input

Every fault and bad input the tests inject, and the outcome they observed. This file is generated:
each test that injects a fault records what it saw (\`recordFault\` in \`tests/support/fault-table.ts\`),
and at the end of \`npm test\` the rows of every test file that ran completely and passed are compared
with this file; the run fails when they differ. \`npm run docs:faults\` rewrites it from a run
(\`npm run docs:faults -- tests/integration/crash-recovery.test.ts\` updates that file's rows only).

Recovery policy (seed 000, seed 002): a bad input gets a typed \`error\` and changes nothing; a turn
that dies half-way leaves no record and the next turn runs from the last completed checkpoint; a
failing dependency of a turn degrades the turn (a message of the map, text without audio) instead
of failing it; two turns can never both commit the same record.

| Area | Fault or bad input | Observed outcome | Test |
| --- | --- | --- | --- |
`;

/** One line per cell: pipes escaped, whitespace folded. */
const cell = (text: string): string => text.replace(/\s+/g, ' ').trim().replace(/\\/g, '\\\\').replace(/\|/g, '\\|');

const uncell = (text: string): string => text.trim().replace(/\\([\\|])/g, '$1');

const compare = (a: FiledRow, b: FiledRow): number =>
  a.area.localeCompare(b.area, 'en') || a.fault.localeCompare(b.fault, 'en') || a.test.localeCompare(b.test, 'en') || a.outcome.localeCompare(b.outcome, 'en');

/** Sorted, each identical row once. */
export function normalize(rows: readonly FiledRow[]): FiledRow[] {
  const seen = new Set<string>();
  const out: FiledRow[] = [];
  for (const r of rows) {
    const row = { area: r.area.replace(/\s+/g, ' ').trim(), fault: r.fault.replace(/\s+/g, ' ').trim(), outcome: r.outcome.replace(/\s+/g, ' ').trim(), test: r.test };
    const key = JSON.stringify([row.area, row.fault, row.outcome, row.test]);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(row);
  }
  return out.sort(compare);
}

export function renderFaultTable(rows: readonly FiledRow[]): string {
  const lines = normalize(rows).map((r) => `| ${cell(r.area)} | ${cell(r.fault)} | ${cell(r.outcome)} | \`${r.test}\` |`);
  return `${HEADER}${lines.join('\n')}\n`;
}

/** The rows of a rendered table (anything else in the file is ignored). */
export function parseFaultTable(markdown: string): FiledRow[] {
  const rows: FiledRow[] = [];
  for (const line of markdown.split('\n')) {
    if (!line.startsWith('| ') || line.startsWith('| Area |') || line.startsWith('| ---')) continue;
    // Split on pipes that are not escaped.
    const cells = line.slice(1, line.endsWith('|') ? -1 : undefined).split(/(?<!\\)\|/).map(uncell);
    if (cells.length !== 4) continue;
    const [area, fault, outcome, test] = cells as [string, string, string, string];
    rows.push({ area, fault, outcome, test: test.replace(/^`|`$/g, '') });
  }
  return rows;
}
