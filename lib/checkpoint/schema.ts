import * as z from 'zod';

export const CHECKPOINT_VERSION = 1;

/** One entry of the LLM conversation, in the chat-completions shape the LLM issue builds on. */
export const LlmMessage = z
  .object({
    role: z.enum(['system', 'user', 'assistant', 'tool']),
    content: z.string(),
  })
  .catchall(z.unknown());
export type LlmMessage = z.infer<typeof LlmMessage>;

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
});
export type Checkpoint = z.infer<typeof Checkpoint>;

export const NODE_HISTORY_LIMIT = 50;

export function emptyCheckpoint(): Checkpoint {
  return Checkpoint.parse({ version: CHECKPOINT_VERSION });
}
