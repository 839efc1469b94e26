/**
 * Port to a chat-completions LLM. The adapter on the `openai` SDK (lib/llm/openai.ts) implements it
 * for any OpenAI-compatible server; the agent loop (lib/llm/agent.ts) only sees this shape.
 */

/** One message of the conversation in chat-completions form. */
export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string; tool_calls?: ToolCall[] }
  | { role: 'tool'; content: string; tool_call_id: string };

export interface ToolCall {
  id: string;
  name: string;
  /** The raw arguments text as the model produced it (may be invalid JSON: the caller checks). */
  arguments: string;
}

export interface ToolSpec {
  name: string;
  description: string;
  /** JSON Schema of the arguments object. */
  parameters: Record<string, unknown>;
}

export interface LlmRequest {
  model: string;
  messages: ChatMessage[];
  tools?: ToolSpec[];
  temperature?: number;
  maxTokens?: number;
  /** Aborts the generation (barge-in, a newer input, the turn deadline). */
  signal?: AbortSignal;
}

export interface LlmUsage {
  inputTokens: number;
  outputTokens: number;
  cachedTokens: number;
}

/** What a streaming completion yields, in order: text deltas as they arrive, then the end. */
export type LlmStreamEvent =
  | { type: 'text'; delta: string }
  | {
      type: 'end';
      /** Tool calls, complete (argument fragments joined), only when the generation finished normally. */
      toolCalls: ToolCall[];
      finishReason: string | null;
      usage: LlmUsage | null;
      /** The model that answered, as the server names it. */
      model: string;
    };

/** Failures the runner turns into the map's localized messages. */
export type LlmErrorKind = 'llm_timeout' | 'llm_error';

export class LlmError extends Error {
  override readonly name = 'LlmError';
  constructor(
    readonly kind: LlmErrorKind,
    message: string,
    readonly details: { status?: number; attempts?: number; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
  }
}

export interface LlmClient {
  /** The model used when a state names none. */
  readonly defaultModel: string;
  /**
   * Streams one completion. Retries 429, 5xx and timeouts with backoff while `deadline` (epoch ms)
   * allows, then throws LlmError. An aborted signal ends the stream without an `end` event.
   */
  stream(request: LlmRequest, deadline: number): AsyncIterable<LlmStreamEvent>;
}

/** Port: is this text safe to say? Checked on the first sentence before any of it is sent. */
export interface SafetyChecker {
  check(text: string, language: string): Promise<{ safe: boolean; category?: string }>;
}
