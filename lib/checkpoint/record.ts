import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';
import * as z from 'zod';
import type { ActionOutcome } from '../actions/port';
import { CostLedger } from '../cost/schema';
import { Metrics, ServerEvent, Usage } from '../protocol/v1';
import { migrateCheckpoint } from './migrations';
import type { Checkpoint } from './schema';

/** What started a turn. */
export const TurnInput = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('start'), metadata: z.record(z.string(), z.unknown()).optional() }),
  z.object({
    kind: z.literal('text'),
    text: z.string(),
    /** `speech`: the transcript of what the user said (live on the client, or an uploaded utterance here). */
    source: z.literal('speech').optional(),
    /** Speech: who transcribed it and how much audio (the cost ledger's STT seconds). */
    stt: z.object({ provider: z.string(), audioMs: z.number() }).optional(),
  }),
  z.object({ kind: z.literal('stop'), reason: z.string() }),
  /** A cancel that came after its turn committed: this record cuts that turn's answer to what was heard. */
  z.object({ kind: z.literal('interrupt'), turnId: z.string(), playedMs: z.number() }),
]);
export type TurnInput = z.infer<typeof TurnInput>;

/** A webhook request as the map rendered it. */
export const ActionRequest = z.object({ method: z.string(), url: z.string(), body: z.string().optional() });
export type ActionRequest = z.infer<typeof ActionRequest>;

/** The runner's own log of what happened in a turn (seed 002's event names), kept for replay and QA. */
export const RecordedEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('node_transition'), from: z.string().nullable(), to: z.string(), atMs: z.number() }),
  z.object({
    type: z.literal('intent'),
    intent: z.string().nullable(),
    score: z.number(),
    /** The top intent overall, and whether it is the same as the previous turn's (seed 004). */
    leader: z.string().nullable().default(null),
    stable: z.boolean().default(false),
    entities: z.record(z.string(), z.union([z.string(), z.number()])).default({}),
    atMs: z.number(),
  }),
  z.object({ type: z.literal('flow'), status: z.enum(['SUCCESS', 'MISSING_ENTITY', 'EXECUTION_ERROR']), missing: z.array(z.string()).default([]), atMs: z.number() }),
  z.object({ type: z.literal('faq'), id: z.string(), score: z.number(), atMs: z.number() }),
  z.object({ type: z.literal('fallback'), atMs: z.number() }),
  z.object({ type: z.literal('empty_input'), atMs: z.number() }),
  z.object({
    type: z.literal('action'),
    name: z.string(),
    ok: z.boolean(),
    kind: z.string().optional(),
    detail: z.string().optional(),
    ms: z.number(),
    attempts: z.number(),
    /** The request as the map rendered it (relative URLs stay relative; never the headers: they hold secrets). */
    request: ActionRequest.optional(),
    /** The JSON result of a successful action: a replay answers the same request with it. */
    result: z.unknown().optional(),
    atMs: z.number(),
  }),
  z.object({ type: z.literal('template_missing'), source: z.string(), missing: z.array(z.string()), atMs: z.number() }),
  z.object({
    type: z.literal('playlist'),
    items: z.array(z.object({ kind: z.enum(['speech', 'filler']), source: z.string() })),
    atMs: z.number(),
  }),
  z.object({ type: z.literal('session_end'), reason: z.string(), atMs: z.number() }),
  /** The checkpoint's node is not in the map any more: renamed (the map says so), or gone (the recovery state). */
  z.object({ type: z.literal('node_migrated'), from: z.string(), to: z.string(), reason: z.enum(['renamed', 'missing']), atMs: z.number() }),
  z.object({
    type: z.literal('llm_exchange'),
    /** Absent: an answer to the user; `summary`: the summary of folded-away messages. */
    purpose: z.literal('summary').optional(),
    model: z.string(),
    /** SHA-256 of the request (lib/llm/digest.ts): a replay finds the recorded answer by it. */
    requestDigest: z.string(),
    request: z.object({
      messages: z.number(),
      tools: z.array(z.string()),
      /** Short digests of the request's parts, so a replay can say what changed. */
      parts: z.object({ model: z.string(), tools: z.string(), options: z.string(), messages: z.array(z.string()) }).optional(),
    }),
    response: z.object({
      text: z.string(),
      toolCalls: z.array(z.object({ id: z.string(), name: z.string(), arguments: z.string() })),
      finishReason: z.string().nullable(),
    }),
    usage: z.object({ inputTokens: z.number(), outputTokens: z.number(), cachedTokens: z.number() }).nullable(),
    ms: z.number(),
    atMs: z.number(),
  }),
  z.object({ type: z.literal('llm_error'), kind: z.enum(['llm_timeout', 'llm_error']), detail: z.string(), atMs: z.number() }),
  z.object({ type: z.literal('tool_call'), name: z.string(), arguments: z.string(), ok: z.boolean(), result: z.string(), atMs: z.number() }),
  z.object({ type: z.literal('safety_trip'), category: z.string(), atMs: z.number() }),
  z.object({ type: z.literal('llm_rounds_exhausted'), rounds: z.number(), atMs: z.number() }),
  /** `detectMs`: from the cancel being written to the running turn seeing it (the barge-in bound). */
  /** `reason`: the client's cancel, a newer input of the session, the turn timeout, or a lost lease. */
  z.object({
    type: z.literal('cancelled'),
    reason: z.enum(['client', 'superseded', 'timeout', 'lease_lost']).optional(),
    playedMs: z.number().optional(),
    detectMs: z.number().optional(),
    atMs: z.number(),
  }),
  /** The stored answer was cut to the words heard; `marks` says how the cut was found. */
  z.object({
    type: z.literal('interrupted'),
    playedMs: z.number(),
    heardWords: z.number(),
    marks: z.enum(['speech_marks', 'estimate', 'none']),
    atMs: z.number(),
  }),
  z.object({ type: z.literal('tts_error'), source: z.string(), code: z.string(), detail: z.string(), atMs: z.number() }),
  /** A filler the player added (`neutral`: the looped one), or the cached safe response it played instead of speech. */
  z.object({ type: z.literal('filler'), source: z.string(), neutral: z.boolean(), atMs: z.number() }),
  z.object({ type: z.literal('summary'), folded: z.number(), ok: z.boolean(), atMs: z.number() }),
  /**
   * Seed 004: the partial transcripts classified before the final one (`input.partial`). `intent` was
   * the leader guessed from the last of them; `right` whether the final classification agreed;
   * `prepared` the items whose audio was rendered early and `used` how many of those the answer played.
   */
  z.object({
    type: z.literal('early_guess'),
    intent: z.string().nullable(),
    right: z.boolean(),
    partials: z.number(),
    prepared: z.number(),
    used: z.number(),
    atMs: z.number(),
  }),
]);
export type RecordedEvent = z.infer<typeof RecordedEvent>;

export const TurnStatus = z.enum(['completed', 'stopped', 'cancelled']);
export type TurnStatus = z.infer<typeof TurnStatus>;

/** The speech a turn sent, item by item: what a later cancel's `playedMs` is measured against. */
export const TurnSpeech = z.object({
  voice: z.object({ provider: z.string(), id: z.string(), engine: z.string().optional(), language: z.string() }),
  items: z.array(
    z.object({
      itemId: z.string(),
      text: z.string(),
      source: z.string(),
      durationMs: z.number(),
      marks: z.array(z.object({ timeMs: z.number(), start: z.number(), end: z.number() })).optional(),
    }),
  ),
});
export type TurnSpeech = z.infer<typeof TurnSpeech>;

/**
 * One committed turn. Record n holds the checkpoint after turn n, so the newest record is the
 * session's current state and every earlier state stays available for replay.
 */
export interface TurnRecord {
  seq: number;
  turnId: string;
  status: TurnStatus;
  createdAt: string;
  input: TurnInput;
  /** Events the client was sent, without text deltas (the done event holds the whole text). */
  outputs: ServerEvent[];
  events: RecordedEvent[];
  usage: Usage;
  metrics: Metrics;
  checkpoint: Checkpoint;
  /** Present when the turn spoke. */
  speech?: TurnSpeech;
  /** `usage` priced when the turn committed (lib/cost); absent in records from before the ledger. */
  cost?: CostLedger;
}

/** The part of a record stored as one JSON document (compressed when large). */
export const RecordBody = z.object({
  input: TurnInput,
  outputs: z.array(ServerEvent),
  events: z.array(RecordedEvent),
  usage: Usage,
  metrics: Metrics,
  checkpoint: z.unknown(),
  speech: TurnSpeech.optional(),
  cost: z.optional(CostLedger),
});

/** Bodies above this are brotli-compressed: JSON of a conversation shrinks 4-8x. */
export const COMPRESS_ABOVE_BYTES = 4 * 1024;

export type EncodedBody = { json: string } | { compressed: Uint8Array };

export function encodeBody(record: TurnRecord): EncodedBody {
  const json = JSON.stringify({
    input: record.input,
    outputs: record.outputs,
    events: record.events,
    usage: record.usage,
    metrics: record.metrics,
    checkpoint: record.checkpoint,
    ...(record.speech ? { speech: record.speech } : {}),
    ...(record.cost ? { cost: record.cost } : {}),
  });
  if (Buffer.byteLength(json) <= COMPRESS_ABOVE_BYTES) return { json };
  return {
    compressed: brotliCompressSync(json, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 5, [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT },
    }),
  };
}

/** The seq of the record that committed `turnId`: the head, or one of the turns its checkpoint remembers. */
export function committedSeq(head: TurnRecord | undefined, turnId: string): number | undefined {
  if (!head) return undefined;
  return head.turnId === turnId ? head.seq : head.checkpoint.recentTurns.find((t) => t.turnId === turnId)?.seq;
}

export function decodeBody(body: EncodedBody): Pick<TurnRecord, 'input' | 'outputs' | 'events' | 'usage' | 'metrics' | 'checkpoint' | 'speech' | 'cost'> {
  const json = 'json' in body ? body.json : brotliDecompressSync(body.compressed).toString('utf8');
  return recordFromBody(RecordBody.parse(JSON.parse(json)));
}

/**
 * A parsed record body (stored, or in a session export) as the runner uses it: its checkpoint
 * migrated to the current version, absent optional parts left out rather than undefined.
 */
export function recordFromBody<T extends z.infer<typeof RecordBody>>(body: T): Omit<T, 'checkpoint' | 'speech' | 'cost'> & Pick<TurnRecord, 'checkpoint' | 'speech' | 'cost'> {
  const { speech, cost, ...rest } = body;
  // TypeScript cannot narrow a spread of a generic: the shape is the declared one.
  return { ...rest, checkpoint: migrateCheckpoint(rest.checkpoint), ...(speech ? { speech } : {}), ...(cost ? { cost } : {}) } as Omit<T, 'checkpoint' | 'speech' | 'cost'> & Pick<TurnRecord, 'checkpoint' | 'speech' | 'cost'>;
}

/** DynamoDB items are at most 400 KB; a record body stays well below, whatever a turn held. */
export const MAX_BODY_BYTES = 300 * 1024;

const bodyBytes = (body: EncodedBody) => ('json' in body ? Buffer.byteLength(body.json) : body.compressed.byteLength);

const clip = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} characters cut]`);

/**
 * The body to store for a record, never over MAX_BODY_BYTES. The window, the summary and the
 * bounded inputs keep every ordinary turn far below it; an extraordinary one (a huge tool result,
 * an endless answer) is stored with its transcript details clipped rather than failing the commit:
 * outputs dropped (a retried turn id then gets only its turn.completed), recorded texts clipped,
 * and the checkpoint's messages cut to the last few, each clipped.
 */
export function encodeBounded(record: TurnRecord): { body: EncodedBody; clipped: boolean } {
  const body = encodeBody(record);
  if (bodyBytes(body) <= MAX_BODY_BYTES) return { body, clipped: false };
  const events = record.events.map((e): RecordedEvent => {
    if (e.type === 'llm_exchange') return { ...e, response: { ...e.response, text: clip(e.response.text, 2000), toolCalls: e.response.toolCalls.map((c) => ({ ...c, arguments: clip(c.arguments, 2000) })) } };
    if (e.type === 'tool_call') return { ...e, arguments: clip(e.arguments, 2000), result: clip(e.result, 2000) };
    if (e.type === 'action' && (e.request || e.result !== undefined)) {
      const { result: _dropped, ...rest } = e;
      return { ...rest, ...(e.request ? { request: { ...e.request, body: e.request.body && clip(e.request.body, 2000) } } : {}) };
    }
    return e;
  });
  const messages = record.checkpoint.messages.slice(-6).map((m) => ({ ...m, content: clip(m.content, 8000) }));
  const smaller: TurnRecord = { ...record, outputs: [], events, checkpoint: { ...record.checkpoint, messages, summary: record.checkpoint.summary && clip(record.checkpoint.summary, 8000) } };
  return { body: encodeBody(smaller), clipped: true };
}

/** The recorded event of a finished action (a state's `run`, or an LLM webhook tool). */
export function actionEvent(name: string, outcome: ActionOutcome, atMs: number): RecordedEvent {
  return {
    type: 'action',
    name,
    ok: outcome.ok,
    ...(outcome.ok ? {} : { kind: outcome.kind, detail: outcome.detail }),
    ms: outcome.ms,
    attempts: outcome.attempts,
    ...(outcome.request ? { request: outcome.request } : {}),
    ...(outcome.ok && outcome.result !== undefined ? { result: outcome.result } : {}),
    atMs,
  };
}
