import Table from 'cli-table3';
import { formatUsd } from '../cost/ledger';
import { leafChanges, type Difference } from './diff';
import type { CostLedger } from '../cost/schema';
import { reportFails, type ReplayReport, type ReplayTurn } from './report';

/** How a word is coloured: ANSI in a terminal, nothing in a pipe or a file. */
export type Paint = (style: 'red' | 'green' | 'yellow' | 'dim' | 'bold', text: string) => string;

export const plain: Paint = (_style, text) => text;

const ANSI = { red: [31, 39], green: [32, 39], yellow: [33, 39], dim: [2, 22], bold: [1, 22] } as const;
export const ansi: Paint = (style, text) => `\u001b[${ANSI[style][0]}m${text}\u001b[${ANSI[style][1]}m`;

const STATUS: Record<ReplayTurn['status'], { label: string; style: Parameters<Paint>[0] }> = {
  same: { label: 'same', style: 'green' },
  changed: { label: 'CHANGED', style: 'red' },
  diverged: { label: 'DIVERGED', style: 'yellow' },
  skipped: { label: 'skipped', style: 'dim' },
  new: { label: 'new', style: 'bold' },
};

const clip = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);

/** A value as one short line: strings quoted, objects as compact JSON. */
export function brief(value: unknown, max = 60): string {
  if (value === undefined) return '(unset)';
  if (value === null) return '(none)';
  return clip(JSON.stringify(value), max);
}

const arrow = (b: unknown, a: unknown) => `${brief(b)} → ${brief(a)}`;

/** Two documents as the leaves that changed: `body.count: (unset) → "1"`. */
const nested = (b: unknown, a: unknown) => {
  const leaves = leafChanges(b, a);
  if (leaves.length === 1 && leaves[0]!.path === '') return arrow(b, a);
  return leaves.map((l) => `${l.path}: ${arrow(l.before, l.after)}`).join('; ');
};

export function describeDifference(d: Difference): string {
  switch (d.field) {
    case 'path':
      return `path: ${(d.before as string[]).join(' › ') || '(none)'} → ${(d.after as string[]).join(' › ') || '(none)'}`;
    case 'variables':
      return `variable ${d.key}: ${nested(d.before, d.after)}`;
    case 'tools':
      return `${d.key}: ${d.before === undefined ? `added ${brief(d.after)}` : d.after === undefined ? 'removed' : nested(d.before, d.after)}`;
    case 'playlist':
      return `playlist: ${(d.before as string[]).join(', ') || '(empty)'} → ${(d.after as string[]).join(', ') || '(empty)'}`;
    case 'reply':
      return `reply${d.similarity === undefined ? '' : ` (similarity ${d.similarity.toFixed(2)})`}: ${brief(d.before, 200)} → ${brief(d.after, 200)}`;
    case 'end_call':
      return `END_CALL: ${String(d.before)} → ${String(d.after)}`;
    default:
      return `intent: ${arrow(d.before, d.after)}`;
  }
}

const usd = (ledger: CostLedger | undefined) => (ledger ? formatUsd(ledger.total) : '');

/** One amount when the replay costs what the recording did, else both. */
const costCell = (turn: ReplayTurn) => {
  const [before, after] = [usd(turn.cost.original), usd(turn.cost.replay)];
  return before && after && before !== after ? `${before} →\n${after}` : before || after;
};

/** The report as a terminal table: one row per turn, its differences listed in the row. */
export function renderText(report: ReplayReport, paint: Paint = plain, width = 120): string {
  const detailWidth = Math.max(40, width - 54);
  const table = new Table({
    head: ['#', 'input', 'status', 'what differs', 'cost'].map((h) => paint('bold', h)),
    colWidths: [5, 24, 10, detailWidth, 14],
    wordWrap: true,
    style: { head: [], border: [] },
  });
  for (const turn of report.turns) {
    const input = turn.input.kind === 'text' ? JSON.stringify(turn.input.text ?? '') : `(${turn.input.kind})`;
    const lines = [
      ...turn.migrations.map((m) => paint('yellow', `node ${m.from} → ${m.to} (${m.reason === 'renamed' ? 'renamed in the map' : 'gone: recovery state'})`)),
      ...turn.divergences.map((d) => paint('yellow', `${d.kind === 'llm' ? 'LLM' : `webhook ${d.name}`}: not in the recording: ${d.reasons.join('; ')}`)),
      ...turn.differences.map(describeDifference),
      ...turn.notes.map((n) => paint('dim', n)),
      ...(turn.status === 'new' && turn.replay ? [`→ ${brief(turn.replay.reply, 200)}`, `path: ${turn.replay.path.join(' › ')}`] : []),
    ];
    const cost = costCell(turn);
    const status = STATUS[turn.status];
    table.push([String(turn.seq), clip(input, 60), paint(status.style, status.label), lines.join('\n') || paint('dim', '—'), cost]);
  }
  const s = report.summary;
  const verdict = reportFails(report) ? paint('red', 'DIFFERENCES') : paint('green', 'no differences');
  const cost = s.cost.original !== undefined || s.cost.replay !== undefined ? `; cost ${formatUsd(s.cost.original ?? 0)} recorded, ${formatUsd(s.cost.replay ?? 0)} replayed` : '';
  const header = [
    `${paint('bold', 'Replay')} of session ${report.sessionId} (${report.source}) against map "${report.map.name}" [${report.map.digest}], ${report.mode} mode${report.from === undefined ? '' : `, what-if from turn ${report.from}`}`,
    `trace ${report.trace.traceId}${report.trace.url ? `  ${report.trace.url}` : ''}`,
  ];
  const footer = `${verdict}: ${s.turns} turns, ${s.same} same, ${s.changed} changed, ${s.diverged} diverged, ${s.skipped} skipped${s.new ? `, ${s.new} new` : ''}${s.migrations ? `, ${s.migrations} node migrations` : ''}${cost}`;
  return [...header, table.toString(), footer].join('\n');
}
