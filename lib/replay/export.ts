import * as z from 'zod';
import { RecordBody, recordFromBody, TurnStatus, type TurnRecord } from '../checkpoint/record';
import { traceIdFor } from '../checkpoint/trace';
import { ParleyError } from '../errors';
import type { StoredSession } from './replay';

/*
 * A session as one JSON file: the transcript a person reads (seed 001's call-history record: one
 * row per utterance with speaker, text, start/end ms and whether it was cut off) and the turn
 * records a replay reruns. `parley export` writes it; `parley replay <file>` reads it.
 */

export const SESSION_FORMAT = 'parley.session';
export const SESSION_VERSION = 1;

export const TranscriptRow = z.object({
  /** The turn record the row comes from. */
  seq: z.number().int().nonnegative(),
  speaker: z.enum(['user', 'bot']),
  text: z.string(),
  /** Milliseconds from the start of the session. */
  startMs: z.number(),
  endMs: z.number(),
  /** The user cut the bot off: `text` is what was heard. */
  interrupted: z.boolean(),
});
export type TranscriptRow = z.infer<typeof TranscriptRow>;

/** A turn record as the file holds it: its stored body (the checkpoint of any version) and its key. */
const StoredTurn = RecordBody.extend({
  seq: z.number().int().nonnegative(),
  turnId: z.string(),
  status: TurnStatus,
  createdAt: z.iso.datetime(),
});

export const SessionExport = z.object({
  format: z.literal(SESSION_FORMAT),
  version: z.literal(SESSION_VERSION),
  sessionId: z.string().min(1),
  exportedAt: z.string(),
  traceId: z.string(),
  transcript: z.array(TranscriptRow),
  turns: z.array(StoredTurn),
});
export type SessionExport = z.infer<typeof SessionExport>;

export function exportSession(session: StoredSession, now: Date = new Date()): SessionExport {
  return {
    format: SESSION_FORMAT,
    version: SESSION_VERSION,
    sessionId: session.sessionId,
    exportedAt: now.toISOString(),
    traceId: traceIdFor(session.sessionId),
    transcript: transcriptOf(session.records),
    turns: session.records,
  };
}

/**
 * Reads an export back; everything wrong with it is one clear ParleyError: `export.invalid` (not
 * JSON, not an export, a field that does not fit, with its path) or `export.version_unsupported`
 * (written by a newer Parley), and a checkpoint of a future version says which turn holds it.
 */
export function parseSessionExport(text: string, source: string): StoredSession {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ParleyError('export.invalid', `${source} is not JSON (${(err as Error).message}); is the file complete?`);
  }
  const head = z.object({ format: z.string(), version: z.unknown() }).safeParse(raw);
  if (!head.success || head.data.format !== SESSION_FORMAT) {
    throw new ParleyError('export.invalid', `${source} is not a Parley session export (expected "format": "${SESSION_FORMAT}")`);
  }
  const { version } = head.data;
  if (typeof version === 'number' && Number.isInteger(version) && version > SESSION_VERSION) {
    throw new ParleyError('export.version_unsupported', `${source} is a version ${version} export; this Parley reads version ${SESSION_VERSION}: update Parley`);
  }
  const parsed = SessionExport.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new ParleyError('export.invalid', `${source}: ${first?.path.join('.') || '(root)'}: ${first?.message ?? 'invalid'}`);
  }
  const records: TurnRecord[] = parsed.data.turns.map((t) => {
    try {
      return recordFromBody(t);
    } catch (err) {
      if (err instanceof ParleyError) throw new ParleyError(err.code, `${source}: turn ${t.seq}: ${err.message}`, { cause: err });
      throw err;
    }
  });
  records.forEach((r, i) => {
    if (i > 0 && r.seq <= records[i - 1]!.seq) throw new ParleyError('export.invalid', `${source}: turns are not in order (turn ${r.seq} after turn ${records[i - 1]!.seq})`);
  });
  return { sessionId: parsed.data.sessionId, records, source };
}

/**
 * One row per utterance. Times are from the session's first message: a turn's input arrived
 * `totalMs` before its record was stamped; the bot starts speaking at t6 (first audio sent; t3 for
 * text) and ends when its speech does (text: at the commit), or where the user cut it off.
 */
export function transcriptOf(records: readonly TurnRecord[]): TranscriptRow[] {
  // Whole milliseconds: the stamps are, and sub-millisecond timings only add noise to a transcript.
  const arrived = (r: TurnRecord) => Math.round(Date.parse(r.createdAt) - r.metrics.totalMs);
  const origin = records.length ? arrived(records[0]!) : 0;
  const rows: TranscriptRow[] = [];
  for (const record of records) {
    if (record.input.kind === 'interrupt') continue;
    const at = arrived(record) - origin;
    if (record.input.kind === 'text' && record.input.text.trim()) {
      rows.push({ seq: record.seq, speaker: 'user', text: record.input.text, startMs: at, endMs: at, interrupted: false });
    }
    const done = record.outputs.find((e) => e.type === 'response.text.done');
    const sent = done?.type === 'response.text.done' ? done.text : '';
    if (!sent.trim()) continue;
    const later = records.find((r) => r.input.kind === 'interrupt' && r.input.turnId === record.turnId);
    const cut = [record, ...(later ? [later] : [])].flatMap((r) => r.events).find((e) => e.type === 'interrupted');
    const interrupted = Boolean(cut) || (record.status === 'cancelled' && record.events.some((e) => e.type === 'cancelled' && e.reason === 'client'));
    const heard = interrupted ? heardText(later ?? record) : undefined;
    const start = Math.round(at + (record.metrics.t6 ?? record.metrics.t3 ?? 0));
    const spokenMs = record.speech?.items.reduce((ms, item) => ms + item.durationMs, 0);
    const playedMs = cut?.type === 'interrupted' ? cut.playedMs : undefined;
    const end = Math.round(playedMs !== undefined ? start + playedMs : spokenMs ? start + spokenMs : at + record.metrics.totalMs);
    rows.push({ seq: record.seq, speaker: 'bot', text: heard ?? sent, startMs: start, endMs: Math.max(start, end), interrupted });
  }
  return rows;
}

/** The reply as the user heard it: the cut line the checkpoint's transcript keeps. */
function heardText(record: TurnRecord): string | undefined {
  const last = record.checkpoint.transcript.at(-1);
  return last?.role === 'assistant' && last.interrupted ? last.text : undefined;
}
