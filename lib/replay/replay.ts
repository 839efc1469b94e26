import { createHash } from 'node:crypto';
import type { ActionRunner } from '../actions/port';
import type { TurnInput, TurnRecord } from '../checkpoint/record';
import { emptyCheckpoint, rememberTurn, type Checkpoint } from '../checkpoint/schema';
import { addTurnLines } from '../checkpoint/transcript';
import { traceIdFor } from '../checkpoint/trace';
import type { FaqIndex } from '../faq/port';
import type { IntentClassifier } from '../flow/classifier';
import type { DialogueMap } from '../flow/map';
import type { ServerEvent, Usage } from '../protocol/v1';
import type { LlmPorts } from '../runner/llm-turn';
import type { Clock } from '../runner/ports';
import { isCue, runTurn, type TurnOutcome } from '../runner/run-turn';
import { cassetteOf, type Divergence } from './cassette';
import { diffObservations } from './diff';
import { observe, type Observation } from './observe';
import { REPORT_FORMAT, REPORT_VERSION, type ReplayMode, type ReplayReport, type ReplayTurn } from './report';
import type { CostLedger } from '../cost/schema';
import { canonicalJson } from '../nlu/model';

/*
 * Reruns a stored conversation against the current dialogue map and configuration, one turn at a
 * time, each from the checkpoint stored before it, through the same runner every host uses. Nothing
 * is written anywhere: the original session stays as it was.
 */

/** A session as stored: its turn records, oldest first. */
export interface StoredSession {
  sessionId: string;
  records: TurnRecord[];
  /** Where it was read from, for the report. */
  source: string;
}

export interface ReplaySetup {
  map: DialogueMap;
  classifier: IntentClassifier;
  faq: FaqIndex;
  mode: ReplayMode;
  /** The configured LLM: live mode calls it; recorded mode only needs its default model and budget. */
  llm: LlmPorts | undefined;
  /** The configured webhooks (live mode). */
  actions: ActionRunner;
  /** The model a state without its own gets (OPENAI_MODEL), so recorded requests digest alike. */
  defaultModel: string;
  /** LLM text at least this alike counts as the same answer (1: exact). */
  similarity: number;
  /** Prices a turn's usage (lib/cost); without it the report has no cost. */
  price?: (usage: Usage, record?: TurnRecord) => CostLedger;
  /** Links a trace id to a trace viewer. */
  traceUrl?: (sessionId: string) => { traceId: string; url?: string };
  onProgress?: (done: number, total: number) => void;
  now?: () => Date;
}

export interface WhatIf {
  /** Continue from the checkpoint stored after this turn (its seq). */
  from: number;
  /** The new user inputs, one turn each. */
  inputs: string[];
}

/** What a replay produced: the report, and the replayed turns as records (a what-if can be exported). */
export interface ReplayResult {
  report: ReplayReport;
  records: TurnRecord[];
}

export async function replaySession(session: StoredSession, setup: ReplaySetup, whatIf?: WhatIf): Promise<ReplayResult> {
  const trace = setup.traceUrl?.(session.sessionId) ?? { traceId: traceIdFor(session.sessionId) };
  const turns: ReplayTurn[] = [];
  const records: TurnRecord[] = [];
  // Did the recording talk to an LLM? Then a recorded replay answers from it even with no key configured.
  const recordedLlm = session.records.some((r) => r.events.some((e) => e.type === 'llm_exchange' || e.type === 'llm_error'));

  if (whatIf) {
    const base = session.records.find((r) => r.seq === whatIf.from);
    if (!base) throw new Error(`session ${session.sessionId} has no turn ${whatIf.from} (turns ${session.records[0]?.seq ?? '-'}..${session.records.at(-1)?.seq ?? '-'})`);
    let before = base.checkpoint;
    for (const [i, text] of whatIf.inputs.entries()) {
      setup.onProgress?.(i, whatIf.inputs.length);
      const seq = whatIf.from + 1 + i;
      const turnId = `what-if-${seq}`;
      const reference = session.records.find((r) => r.seq === seq);
      const run = await rerun(setup, session.sessionId, { turnId, seq, input: { kind: 'text', text }, before, createdAt: base.createdAt }, reference, recordedLlm);
      records.push(run.record);
      before = run.record.checkpoint;
      const replay = run.observation;
      turns.push({
        seq,
        turnId,
        input: { kind: 'text', text },
        status: run.divergences.length ? 'diverged' : 'new',
        notes: reference?.input.kind === 'text' ? [`the recorded turn ${seq} was "${reference.input.text}"`] : [],
        replay,
        differences: [],
        divergences: run.divergences,
        migrations: run.migrations,
        cost: priced(setup, run.record),
        trace,
      });
    }
    setup.onProgress?.(whatIf.inputs.length, whatIf.inputs.length);
  } else {
    for (const [i, record] of session.records.entries()) {
      setup.onProgress?.(i, session.records.length);
      const before = i === 0 ? emptyCheckpoint() : session.records[i - 1]!.checkpoint;
      const replayed = await replayRecorded(setup, session.sessionId, record, before, trace, recordedLlm);
      turns.push(replayed.turn);
      if (replayed.record) records.push(replayed.record);
    }
    setup.onProgress?.(session.records.length, session.records.length);
  }

  const count = (status: ReplayTurn['status']) => turns.filter((t) => t.status === status).length;
  const sum = (side: 'original' | 'replay') => {
    const ledgers = turns.map((t) => t.cost[side]).filter((c): c is CostLedger => c !== undefined);
    return ledgers.length ? round(ledgers.reduce((total, c) => total + c.total, 0)) : undefined;
  };
  const original = sum('original');
  const replayed = sum('replay');
  const report: ReplayReport = {
    format: REPORT_FORMAT,
    version: REPORT_VERSION,
    sessionId: session.sessionId,
    source: session.source,
    mode: setup.mode,
    // Key order is not content: a map whose states were only reordered has the same digest.
    map: { name: setup.map.name, digest: createHash('sha256').update(canonicalJson(setup.map)).digest('hex').slice(0, 12) },
    createdAt: (setup.now?.() ?? new Date()).toISOString(),
    ...(whatIf ? { from: whatIf.from } : {}),
    similarity: setup.similarity,
    trace,
    turns,
    summary: {
      turns: turns.length,
      same: count('same'),
      changed: count('changed'),
      diverged: count('diverged'),
      skipped: count('skipped'),
      new: count('new'),
      migrations: turns.reduce((n, t) => n + t.migrations.length, 0),
      cost: { ...(original === undefined ? {} : { original }), ...(replayed === undefined ? {} : { replay: replayed }), currency: 'USD' },
    },
  };
  return { report, records };
}

const round = (usd: number) => Math.round(usd * 1e8) / 1e8;

async function replayRecorded(
  setup: ReplaySetup,
  sessionId: string,
  record: TurnRecord,
  before: Checkpoint,
  trace: ReplayTurn['trace'],
  recordedLlm: boolean,
): Promise<{ turn: ReplayTurn; record?: TurnRecord }> {
  const base = {
    seq: record.seq,
    turnId: record.turnId,
    input: { kind: record.input.kind, ...('text' in record.input ? { text: record.input.text } : {}) },
    trace,
  };
  const original = observe({ before, after: record.checkpoint, events: record.events, outputs: record.outputs });
  const originalCost = setup.price ? { original: record.cost ?? setup.price(record.usage, record) } : {};
  const skipped = (note: string) => ({ turn: { ...base, status: 'skipped' as const, notes: [note], original, differences: [], divergences: [], migrations: [], cost: originalCost } });
  if (record.input.kind === 'interrupt') return skipped(`the cut of turn ${record.input.turnId} to what the user heard (${record.input.playedMs} ms): not a turn`);
  // A running turn that a newer input stopped also says `superseded`, but it ran (runMs > 0).
  if (record.metrics.runMs === 0 && record.events.some((e) => e.type === 'cancelled' && e.reason === 'superseded')) {
    return skipped('a newer input overtook this one before it ran; the next turn answered both');
  }
  const input = record.input;
  const run = await rerun(setup, sessionId, { turnId: record.turnId, seq: record.seq, input, before, createdAt: record.createdAt }, record, recordedLlm);
  const notes: string[] = [];
  let differences = diffObservations(original, run.observation, { similarity: setup.mode === 'recorded' ? 1 : setup.similarity });
  if (record.status === 'cancelled') {
    // The recorded answer stops where the user cut it; the replay runs to the end.
    notes.push('the user interrupted this turn in the recording: its reply and playlist are not compared');
    differences = differences.filter((d) => d.field !== 'reply' && d.field !== 'playlist');
  }
  const status = run.divergences.length ? 'diverged' : differences.length ? 'changed' : 'same';
  return {
    turn: {
      ...base,
      status,
      notes,
      original,
      replay: run.observation,
      differences,
      divergences: run.divergences,
      migrations: run.migrations,
      cost: { ...originalCost, ...priced(setup, run.record, record) },
    },
    record: run.record,
  };
}

/** The replayed turn's cost: its own LLM usage, the rest of the original's (a replay neither speaks nor stores). */
function priced(setup: ReplaySetup, replayed: TurnRecord, original?: TurnRecord): { replay?: CostLedger } {
  if (!setup.price) return {};
  const usage: Usage = original ? { ...original.usage, llm: replayed.usage.llm } : replayed.usage;
  return { replay: setup.price(usage, original ?? replayed) };
}

interface Rerun {
  observation: Observation;
  divergences: Divergence[];
  migrations: ReplayTurn['migrations'];
  record: TurnRecord;
}

/** One turn through the runner, with the recording (recorded mode) or the configured providers (live). */
async function rerun(
  setup: ReplaySetup,
  sessionId: string,
  turn: { turnId: string; seq: number; input: Exclude<TurnInput, { kind: 'interrupt' }>; before: Checkpoint; createdAt: string },
  recorded: TurnRecord | undefined,
  recordedLlm: boolean,
): Promise<Rerun> {
  const cassette = setup.mode === 'recorded' ? cassetteOf(recorded?.events ?? [], setup.map, setup.defaultModel) : undefined;
  const llm: LlmPorts | undefined = cassette
    ? recordedLlm || setup.llm
      ? { client: cassette.llm, safety: cassette.safety, budgetMs: setup.llm?.budgetMs ?? 60_000 }
      : undefined
    : setup.llm;
  // Time stands still in a replay: no deadline passes, and every recorded time is the turn's own.
  const at = Date.parse(turn.createdAt);
  const clock: Clock = { nowMs: () => at, monotonicMs: () => 0 };
  const generator = runTurn({
    turnId: turn.turnId,
    sessionId,
    input: turn.input,
    checkpoint: turn.before,
    map: setup.map,
    classifier: setup.classifier,
    faq: setup.faq,
    actions: cassette?.actions ?? setup.actions,
    clock,
    llm,
  });
  const outputs: ServerEvent[] = [];
  let reply = '';
  let step = await generator.next();
  while (!step.done) {
    const event = step.value;
    if (!isCue(event)) {
      if (event.type === 'response.text.delta') reply += event.text;
      else outputs.push(event);
    }
    step = await generator.next();
  }
  const outcome: TurnOutcome = step.value;
  const observation = observe({ before: turn.before, after: outcome.checkpoint, events: outcome.events, outputs });
  const migrations = outcome.events.flatMap((e) => (e.type === 'node_migrated' ? [{ from: e.from, to: e.to, reason: e.reason }] : []));
  const checkpoint = rememberTurn(addTurnLines(outcome.checkpoint, turn.input.kind === 'text' ? turn.input.text : undefined, reply), turn.turnId, turn.seq);
  const record: TurnRecord = {
    seq: turn.seq,
    turnId: turn.turnId,
    status: outcome.status,
    createdAt: turn.createdAt,
    input: turn.input,
    outputs,
    events: outcome.events,
    usage: outcome.usage,
    metrics: { runMs: outcome.runMs, totalMs: outcome.runMs },
    checkpoint,
  };
  return { observation, divergences: cassette?.divergences ?? [], migrations, record };
}
