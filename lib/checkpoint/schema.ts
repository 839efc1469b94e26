import * as z from 'zod';
import { HistoryMessage, Usage } from '../protocol/v1';

export const CHECKPOINT_VERSION = 5;

/** One entry of the LLM conversation, in the chat-completions shape the LLM issue builds on. */
export const LlmMessage = z
  .object({
    role: z.enum(['system', 'user', 'assistant', 'tool']),
    content: z.string(),
  })
  .catchall(z.unknown());
export type LlmMessage = z.infer<typeof LlmMessage>;

/** Slot filling in progress: the intent waiting for its required slots, and what is collected so far. */
export const PendingIntent = z.object({
  intent: z.string(),
  /** Slot values collected over the turns so far (slot name -> value); variables only once complete. */
  values: z.record(z.string(), z.union([z.string(), z.number()])).default({}),
  /** How many times the question was asked; bounded so a user who cannot answer is not stuck. */
  asked: z.number().int().nonnegative().default(0),
});
export type PendingIntent = z.infer<typeof PendingIntent>;

/**
 * Everything a conversation needs to continue in a fresh process. Missing fields get their
 * defaults on load, so a checkpoint written by an older build of the same version still loads.
 */
export const Checkpoint = z.object({
  version: z.literal(CHECKPOINT_VERSION),
  /** The dialogue-map state the conversation stands at; null before the first turn. */
  currentNode: z.string().nullable().default(null),
  /** Earlier nodes, oldest first, bounded (see NODE_HISTORY_LIMIT); "back" and "repeat" read it. */
  nodeHistory: z.array(z.string()).default([]),
  /** Variables gathered so far (entities, webhook results, set_variable). */
  variables: z.record(z.string(), z.unknown()).default({}),
  messages: z.array(LlmMessage).default([]),
  toolState: z.record(z.string(), z.unknown()).default({}),
  /** The intent that led the last classification, for stability across partial inputs (seed 004). */
  previousIntentLeader: z.string().nullable().default(null),
  /** Whose turn it is: 'user' while waiting for input, 'bot' while a turn runs. */
  turnState: z.enum(['user', 'bot']).default('user'),
  ended: z.boolean().default(false),
  /** The session's language (one of the map's); null means the map's default. */
  language: z.string().nullable().default(null),
  /** An intent whose required slots are still being asked for. */
  pending: PendingIntent.nullable().default(null),
  /** What `messages` no longer holds word for word: a running summary, so the checkpoint stays small. */
  summary: z.string().nullable().default(null),
  /**
   * The newest turns (client turn id -> record seq), bounded: a turn id sent again (a reconnect, a
   * client retry, an async-invoke retry) finds its stored outcome here instead of running twice.
   */
  recentTurns: z.array(z.object({ turnId: z.string(), seq: z.number().int().nonnegative() })).default([]),
  /**
   * The conversation as shown to the user (lib/checkpoint/transcript.ts), bounded, for a resumed
   * client; `messages` is the LLM's context and may be reset or summarized.
   */
  transcript: z.array(HistoryMessage).default([]),
  /** Older transcript lines were dropped to keep the checkpoint small. */
  transcriptCut: z.boolean().default(false),
  /** Usage of the whole session so far (turn records hold each turn's own). */
  usage: z._default(Usage, { llm: {}, ttsCharacters: 0, sttSeconds: 0 }),
});
export type Checkpoint = z.infer<typeof Checkpoint>;

export const NODE_HISTORY_LIMIT = 50;

/** How many turn ids the checkpoint remembers for idempotency: far more than any retry reaches back. */
export const RECENT_TURNS_LIMIT = 64;

/** The checkpoint with one more turn remembered (the oldest forgotten past the limit). */
export function rememberTurn(checkpoint: Checkpoint, turnId: string, seq: number): Checkpoint {
  const recent = [...checkpoint.recentTurns.filter((t) => t.turnId !== turnId), { turnId, seq }];
  return { ...checkpoint, recentTurns: recent.slice(-RECENT_TURNS_LIMIT) };
}

export function emptyCheckpoint(): Checkpoint {
  return Checkpoint.parse({ version: CHECKPOINT_VERSION });
}
