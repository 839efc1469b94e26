import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { RecordedEvent, TurnInput, TurnRecord, TurnSpeech } from '../../lib/checkpoint/record';
import { CHECKPOINT_VERSION, emptyCheckpoint, type Checkpoint } from '../../lib/checkpoint/schema';
import { traceIdFor } from '../../lib/checkpoint/trace';
import type { ParleyError, ParleyErrorCode } from '../../lib/errors';
import type { Metrics } from '../../lib/protocol/v1';
import { exportSession, parseSessionExport, SESSION_FORMAT, transcriptOf, type TranscriptRow } from '../../lib/replay/export';
import { thrownParleyError } from '../support/errors';

const T0 = Date.parse('2025-03-01T10:00:00.000Z');
/** The ISO time `ms` after T0. */
const iso = (ms: number) => new Date(T0 + ms).toISOString();

const WELCOME = 'Hi, welcome to Parley Café! What would you like?';
const CONFIRM = "So that's 1 × large latte. Shall I place the order?";
const ORDER = 'Your order number is 42, it will be ready in 5 minutes. Can I get you anything else?';
const HEARD = 'Your order number is 42';

const speech = (...durations: number[]): TurnSpeech => ({
  voice: { provider: 'polly', id: 'Joanna', engine: 'neural', language: 'en' },
  items: durations.map((durationMs, i) => ({ itemId: `item-${i}`, text: `part ${i}`, source: 'cache:x', durationMs })),
});

interface Turn {
  seq: number;
  input: TurnInput;
  /** When the record was stamped, in ms after T0. */
  stampedMs: number;
  metrics: Metrics;
  reply?: string;
  status?: TurnRecord['status'];
  events?: RecordedEvent[];
  speech?: TurnSpeech;
  checkpoint?: Partial<Checkpoint>;
}

const record = (t: Turn): TurnRecord => ({
  seq: t.seq,
  turnId: `turn-${t.seq}`,
  status: t.status ?? 'completed',
  createdAt: iso(t.stampedMs),
  input: t.input,
  outputs: t.reply === undefined ? [] : [{ type: 'turn.started', turnId: `turn-${t.seq}` }, { type: 'response.text.done', turnId: `turn-${t.seq}`, text: t.reply }],
  events: t.events ?? [],
  usage: { llm: {}, ttsCharacters: 0, sttSeconds: 0 },
  metrics: t.metrics,
  checkpoint: { ...emptyCheckpoint(), ...t.checkpoint },
  ...(t.speech ? { speech: t.speech } : {}),
});

const text = (t: string): TurnInput => ({ kind: 'text', text: t });

/**
 * A spoken session. Arrival = stamp - totalMs: turn 0 at 0 (the origin), turn 1 at 5000, turn 2 at
 * 9000, turn 4 at 12000, turn 5 at 13000, turn 6 at 14000.
 */
const SESSION: TurnRecord[] = [
  // Speaks from t6 = 300 for 1500 + 700 ms.
  record({ seq: 0, input: { kind: 'start' }, stampedMs: 500, metrics: { runMs: 50, totalMs: 500, t3: 120, t6: 300 }, reply: WELCOME, speech: speech(1500, 700) }),
  // Text only: from t3 = 150 until the commit (arrival + totalMs).
  record({ seq: 1, input: text('a large latte'), stampedMs: 5400, metrics: { runMs: 80, totalMs: 400, t3: 150 }, reply: CONFIRM }),
  // Speaks from t6 = 200 for 4000 ms, but turn 3 cuts it after 1200 ms.
  record({ seq: 2, input: text('yes'), stampedMs: 9800, metrics: { runMs: 300, totalMs: 800, t3: 100, t6: 200 }, reply: ORDER, speech: speech(3000, 1000) }),
  record({
    seq: 3,
    input: { kind: 'interrupt', turnId: 'turn-2', playedMs: 1200 },
    stampedMs: 10_500,
    metrics: { runMs: 5, totalMs: 30 },
    events: [{ type: 'interrupted', playedMs: 1200, heardWords: 5, marks: 'estimate', atMs: 0 }],
    checkpoint: {
      transcript: [
        { role: 'user', text: 'yes' },
        { role: 'assistant', text: HEARD, interrupted: true },
      ],
    },
  }),
  // Overtaken by a newer input before it ran: stored, never answered.
  record({ seq: 4, input: text('no thanks'), stampedMs: 12_010, status: 'cancelled', metrics: { runMs: 0, totalMs: 10 }, events: [{ type: 'cancelled', reason: 'superseded', atMs: 0 }] }),
  // A reply of only whitespace is no utterance.
  record({ seq: 5, input: text('hmm'), stampedMs: 13_020, metrics: { runMs: 10, totalMs: 20, t3: 15 }, reply: '  ' }),
  // Empty input: nothing said, nothing answered.
  record({ seq: 6, input: text('  '), stampedMs: 14_005, metrics: { runMs: 1, totalMs: 5 } }),
  record({ seq: 7, input: { kind: 'stop', reason: 'client' }, stampedMs: 15_003, status: 'stopped', metrics: { runMs: 1, totalMs: 3 }, events: [{ type: 'session_end', reason: 'client', atMs: 0 }] }),
];

describe('transcriptOf', () => {
  it('has one row per utterance with times from the first arrival', () => {
    expect(transcriptOf(SESSION)).toEqual<TranscriptRow[]>([
      { seq: 0, speaker: 'bot', text: WELCOME, startMs: 300, endMs: 2500, interrupted: false },
      { seq: 1, speaker: 'user', text: 'a large latte', startMs: 5000, endMs: 5000, interrupted: false },
      { seq: 1, speaker: 'bot', text: CONFIRM, startMs: 5150, endMs: 5400, interrupted: false },
      { seq: 2, speaker: 'user', text: 'yes', startMs: 9000, endMs: 9000, interrupted: false },
      { seq: 2, speaker: 'bot', text: HEARD, startMs: 9200, endMs: 10_400, interrupted: true },
      { seq: 4, speaker: 'user', text: 'no thanks', startMs: 12_000, endMs: 12_000, interrupted: false },
      { seq: 5, speaker: 'user', text: 'hmm', startMs: 13_000, endMs: 13_000, interrupted: false },
    ]);
  });

  it('is empty for no records', () => {
    expect(transcriptOf([])).toEqual([]);
  });

  it('takes its origin from the first record, whatever it is', () => {
    // Without turn 0 the first arrival is turn 1's, at 5000: everything moves 5000 earlier.
    const rows = transcriptOf(SESSION.slice(1, 3));
    expect(rows.map((r) => [r.speaker, r.startMs, r.endMs])).toEqual([
      ['user', 0, 0],
      ['bot', 150, 400],
      ['user', 4000, 4000],
      // Turn 3 is not among these records: the answer is whole, its speech 3000 + 1000 ms.
      ['bot', 4200, 8200],
    ]);
    expect(rows[3]).toMatchObject({ text: ORDER, interrupted: false });
  });

  it('starts a bot row at t3 without t6, and at arrival without either', () => {
    const rows = transcriptOf([record({ seq: 0, input: text('hi'), stampedMs: 1000, metrics: { runMs: 1, totalMs: 1000 }, reply: 'Hello.' })]);
    expect(rows).toEqual([
      { seq: 0, speaker: 'user', text: 'hi', startMs: 0, endMs: 0, interrupted: false },
      { seq: 0, speaker: 'bot', text: 'Hello.', startMs: 0, endMs: 1000, interrupted: false },
    ]);
  });

  it('cuts a turn the client cancelled while it spoke at the played time, with the heard text of its own checkpoint', () => {
    const cut = record({
      seq: 0,
      input: text('where do your beans come from?'),
      stampedMs: 2000,
      status: 'cancelled',
      metrics: { runMs: 900, totalMs: 2000, t3: 400, t6: 600 },
      reply: 'Our beans come from a small farm in Colombia.',
      speech: speech(2600),
      events: [
        { type: 'cancelled', reason: 'client', playedMs: 800, detectMs: 40, atMs: 900 },
        { type: 'interrupted', playedMs: 800, heardWords: 3, marks: 'speech_marks', atMs: 901 },
      ],
      checkpoint: { transcript: [{ role: 'user', text: 'where do your beans come from?' }, { role: 'assistant', text: 'Our beans come', interrupted: true }] },
    });
    expect(transcriptOf([cut])[1]).toEqual({ seq: 0, speaker: 'bot', text: 'Our beans come', startMs: 600, endMs: 1400, interrupted: true });
  });

  it('marks a text answer the client cancelled as interrupted, keeping the text that was sent', () => {
    const cancelled = record({
      seq: 0,
      input: text('tell me about your beans'),
      stampedMs: 700,
      status: 'cancelled',
      metrics: { runMs: 600, totalMs: 700, t3: 250 },
      reply: 'Our beans come from',
      events: [{ type: 'cancelled', reason: 'client', atMs: 600 }],
      checkpoint: { transcript: [{ role: 'user', text: 'tell me about your beans' }, { role: 'assistant', text: 'Our beans come from' }] },
    });
    expect(transcriptOf([cancelled])[1]).toEqual({ seq: 0, speaker: 'bot', text: 'Our beans come from', startMs: 250, endMs: 700, interrupted: true });
  });

  it('does not mark a turn cancelled for the turn timeout as interrupted', () => {
    const timedOut = record({
      seq: 0,
      input: text('hi'),
      stampedMs: 700,
      status: 'cancelled',
      metrics: { runMs: 600, totalMs: 700, t3: 250 },
      reply: 'Hello',
      events: [{ type: 'cancelled', reason: 'timeout', atMs: 600 }],
    });
    expect(transcriptOf([timedOut])[1]).toMatchObject({ interrupted: false, text: 'Hello' });
  });
});

describe('exportSession and parseSessionExport', () => {
  const NOW = new Date('2025-03-02T08:30:00.000Z');
  const exported = () => exportSession({ sessionId: 'sess-1', records: SESSION, source: 'store' }, NOW);
  /** The export as JSON, after `change` edits its parsed form. */
  const file = (change: (raw: Record<string, any>) => void = () => {}): string => {
    const raw = JSON.parse(JSON.stringify(exported())) as Record<string, any>;
    change(raw);
    return JSON.stringify(raw);
  };

  /** The ParleyError parsing `text` as session.json throws, checked to carry `code`. */
  const exportError = (text: string, code: ParleyErrorCode): ParleyError => thrownParleyError(() => parseSessionExport(text, 'session.json'), code);

  it('writes the format, version, trace id, time, transcript and turns', () => {
    const e = exported();
    expect(e).toMatchObject({ format: SESSION_FORMAT, version: 1, sessionId: 'sess-1', exportedAt: '2025-03-02T08:30:00.000Z', traceId: traceIdFor('sess-1') });
    expect(e.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(e.transcript).toEqual(transcriptOf(SESSION));
    expect(e.turns).toEqual(SESSION);
  });

  it('round-trips the records through JSON', () => {
    const back = parseSessionExport(JSON.stringify(exported()), 'session.json');
    expect(back).toEqual({ sessionId: 'sess-1', records: SESSION, source: 'session.json' });
  });

  it('migrates an old checkpoint to the current version', () => {
    const v0 = JSON.parse(readFileSync(new URL('../fixtures/checkpoint-v0.json', import.meta.url), 'utf8')) as unknown;
    const back = parseSessionExport(file((raw) => (raw.turns[1].checkpoint = v0)), 'session.json');
    const checkpoint = back.records[1]!.checkpoint;
    expect(checkpoint.version).toBe(CHECKPOINT_VERSION);
    expect(checkpoint.currentNode).toBe('size');
    expect(checkpoint.variables).toEqual({ drink: 'coffee', customer_name: 'Ada', loyalty_points: 120 });
    // The other turns are untouched.
    expect(back.records[0]).toEqual(SESSION[0]);
  });

  it('rejects text that is not JSON', () => {
    const err = exportError(JSON.stringify(exported()).slice(0, 200), 'export.invalid');
    expect(err.code).toBe('export.invalid');
    expect(err.message).toMatch(/^session\.json is not JSON/);
  });

  it.each([
    ['another format', file((raw) => (raw.format = 'parley.report'))],
    ['no format', file((raw) => delete raw.format)],
    ['an array', '[]'],
    ['a string', '"parley.session"'],
  ])('rejects %s as not a session export', (_what, text) => {
    const err = exportError(text, 'export.invalid');
    expect(err.code).toBe('export.invalid');
    expect(err.message).toBe('session.json is not a Parley session export (expected "format": "parley.session")');
  });

  it('rejects a newer version as unsupported', () => {
    const err = exportError(file((raw) => (raw.version = 2)), 'export.version_unsupported');
    expect(err.code).toBe('export.version_unsupported');
    expect(err.message).toContain('version 2 export');
  });

  it('rejects a version that is not a known number as invalid, naming the field', () => {
    const err = exportError(file((raw) => (raw.version = '1')), 'export.invalid');
    expect(err.code).toBe('export.invalid');
    expect(err.message).toMatch(/^session\.json: version: /);
  });

  it('names the path of a field that does not fit', () => {
    const err = exportError(file((raw) => (raw.turns[2].createdAt = 'yesterday')), 'export.invalid');
    expect(err.code).toBe('export.invalid');
    expect(err.message).toMatch(/^session\.json: turns\.2\.createdAt: /);
    const missing = exportError(file((raw) => delete raw.sessionId), 'export.invalid');
    expect(missing.message).toMatch(/^session\.json: sessionId: /);
  });

  it('names the turn holding a checkpoint of a future version', () => {
    const err = exportError(file((raw) => (raw.turns[2].checkpoint.version = 99)), 'checkpoint.version_unsupported');
    expect(err.code).toBe('checkpoint.version_unsupported');
    expect(err.message).toMatch(/^session\.json: turn 2: checkpoint version 99 /);
  });

  it('rejects turns out of order, or the same turn twice', () => {
    const swapped = exportError(file((raw) => ([raw.turns[1], raw.turns[2]] = [raw.turns[2], raw.turns[1]])), 'export.invalid');
    expect(swapped.code).toBe('export.invalid');
    expect(swapped.message).toBe('session.json: turns are not in order (turn 1 after turn 2)');
    const twice = exportError(file((raw) => (raw.turns[3].seq = 2)), 'export.invalid');
    expect(twice.code).toBe('export.invalid');
    expect(twice.message).toBe('session.json: turns are not in order (turn 2 after turn 2)');
  });
});
