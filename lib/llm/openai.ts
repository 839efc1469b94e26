import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionFunctionTool,
  ChatCompletionMessageParam,
} from 'openai/resources/chat/completions';
import { silentLog, type Log } from '../observability/log';
import { LlmError, type ChatMessage, type LlmClient, type LlmErrorKind, type LlmRequest, type LlmStreamEvent, type LlmUsage, type ToolCall } from './port';
import { classifySdkError, giveUp as giveUpWith, MIN_ATTEMPT_MS, nextAttempt, sleep, type ProviderFailure } from '../host/retry';

export interface OpenAiClientOptions {
  apiKey: string;
  /** Any OpenAI-compatible server, e.g. 'http://127.0.0.1:8000/v1'. Default: the SDK's (OPENAI_BASE_URL or api.openai.com). */
  baseURL?: string;
  defaultModel: string;
  fetch?: typeof fetch;
  /** Attempts per stream() call, the first included. Default 3. */
  maxAttempts?: number;
  log?: Log;
  /**
   * Per-attempt progress cap: an attempt fails as a timeout when no response (before the first chunk)
   * or no next chunk (while streaming) arrives within min(this, time left until the deadline).
   * Default 10 000 ms.
   */
  attemptTimeoutMs?: number;
  /** Backoff before retry n (n = 1, 2, …) is backoffBaseMs * 2^(n-1), jittered to 50–100 %. Default 200 ms. */
  backoffBaseMs?: number;
  /**
   * How the output cap is named on the wire. OpenAI's current models take `max_completion_tokens`
   * (they reject `max_tokens`); some older OpenAI-compatible servers only know `max_tokens`.
   * Default 'max_completion_tokens'.
   */
  maxTokensParam?: 'max_completion_tokens' | 'max_tokens';
  /** Clock of the deadline (epoch ms). Default Date.now. */
  now?: () => number;
}

const DEFAULT_ATTEMPT_TIMEOUT_MS = 10_000;
const DEFAULT_BACKOFF_BASE_MS = 200;

/** What went wrong in one attempt. */
type Failure = ProviderFailure<LlmErrorKind>;

const SDK_ERRORS = { APIConnectionTimeoutError, APIUserAbortError, APIConnectionError, APIError };

/** Marker thrown inside an attempt; never leaves this module. */
class AttemptFailure extends Error {
  constructor(readonly failure: Failure) {
    super(failure.message);
  }
}

/**
 * LlmClient on the official `openai` SDK, for OpenAI and any OpenAI-compatible server.
 *
 * - Streams with `stream: true` and `stream_options.include_usage`, so the last chunk carries usage.
 * - Retries itself (the SDK's maxRetries is 0 so the turn deadline governs): 408/429/5xx, connection
 *   errors, timeouts and in-stream error events, with jittered exponential backoff, honoring
 *   Retry-After while the deadline allows — but only while nothing was yielded in this attempt, so
 *   streamed text is never duplicated. After text was yielded a failure ends the stream with
 *   LlmError ('llm_timeout' for a timeout, 'llm_error' otherwise).
 * - Timeouts: the SDK's `timeout` covers connect + response headers only (it is cleared once the
 *   headers arrive), so a watchdog aborts an attempt that makes no progress within
 *   min(attemptTimeoutMs, time left until the deadline) — before and between chunks.
 * - An aborted request signal ends the iteration quietly: no `end`, no error, the connection closed.
 */
export function openAiClient(options: OpenAiClientOptions): LlmClient {
  const log = options.log ?? silentLog;
  const now = options.now ?? Date.now;
  const maxAttempts = Math.max(1, options.maxAttempts ?? 3);
  const attemptCap = options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
  const backoffBase = options.backoffBaseMs ?? DEFAULT_BACKOFF_BASE_MS;
  const maxTokensParam = options.maxTokensParam ?? 'max_completion_tokens';
  const client = new OpenAI({
    apiKey: options.apiKey,
    ...(options.baseURL !== undefined ? { baseURL: options.baseURL } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    maxRetries: 0,
    // The SDK's own logger prints raw chunk data (model output) on parse errors; this module logs instead.
    logLevel: 'off',
  });

  function body(request: LlmRequest): ChatCompletionCreateParamsStreaming {
    return {
      model: request.model,
      messages: request.messages.map(toWireMessage),
      stream: true,
      stream_options: { include_usage: true },
      ...(request.tools?.length ? { tools: request.tools.map(toWireTool) } : {}),
      ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
      ...(request.maxTokens !== undefined ? { [maxTokensParam]: request.maxTokens } : {}),
    };
  }

  async function* stream(request: LlmRequest, deadline: number): AsyncGenerator<LlmStreamEvent> {
    const userSignal = request.signal;
    const params = body(request);
    let last: Failure | undefined;

    for (let attempt = 1; ; attempt += 1) {
      if (userSignal?.aborted) return;
      const left = deadline - now();
      if (left < MIN_ATTEMPT_MS) {
        throw giveUp(last ?? { kind: 'llm_timeout', retryable: true, message: 'the deadline passed before the LLM answered', cause: undefined }, attempt - 1, true);
      }

      // One controller per attempt: aborted by the caller's signal, by the watchdog, and on exit
      // (which closes the connection when the consumer stops iterating early).
      const controller = new AbortController();
      const onUserAbort = () => controller.abort(userSignal?.reason);
      userSignal?.addEventListener('abort', onUserAbort, { once: true });
      let timedOut = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(timer);
        const ms = Math.max(0, Math.min(attemptCap, deadline - now()));
        timer = setTimeout(() => {
          timedOut = true;
          controller.abort(new Error('LLM attempt timed out'));
        }, ms);
      };
      let yielded = false;

      try {
        arm();
        const sdkTimeout = Math.max(1, Math.ceil(Math.min(attemptCap, left)));
        const chunks = await client.chat.completions.create(params, { signal: controller.signal, timeout: sdkTimeout, maxRetries: 0 });
        const acc = new Accumulator();
        for await (const chunk of chunks) {
          arm();
          const delta = acc.push(chunk);
          if (delta) {
            yielded = true;
            yield { type: 'text', delta };
          }
        }
        // The SDK ends the iteration without an error when the request was aborted.
        if (userSignal?.aborted) return;
        if (timedOut) throw new AttemptFailure(timeoutFailure(undefined));
        if (acc.finishReason === null) {
          throw new AttemptFailure({ kind: 'llm_error', retryable: true, message: 'the LLM stream ended before a finish reason', cause: undefined });
        }
        yield acc.end();
        return;
      } catch (err) {
        if (userSignal?.aborted) return;
        const failure = err instanceof AttemptFailure ? err.failure : classify(err, timedOut);
        last = failure;
        const info = { attempt, kind: failure.kind, status: failure.status, error: failure.message, model: params.model };
        if (yielded) {
          log.warn('llm stream failed after text was sent; not retried', info);
          throw giveUp(failure, attempt, false);
        }
        const next = nextAttempt(failure, attempt, { maxAttempts, backoffBaseMs: backoffBase, deadline, now });
        if (!next.retry) {
          if (next.why === 'deadline') log.warn('llm request failed; no time left to retry before the deadline', { ...info, waitMs: Math.round(next.waitMs ?? 0) });
          else log.warn('llm request failed', info);
          throw giveUp(failure, attempt, failure.retryable);
        }
        log.warn('llm request failed; retrying', { ...info, waitMs: Math.round(next.waitMs) });
        if (!(await sleep(next.waitMs, userSignal))) return;
      } finally {
        clearTimeout(timer);
        userSignal?.removeEventListener('abort', onUserAbort);
        controller.abort();
      }
    }
  }

  return { defaultModel: options.defaultModel, stream };
}

/** The LlmError for a failure that ends the stream. */
function giveUp(failure: Failure, attempts: number, exhausted: boolean): LlmError {
  return giveUpWith(failure, attempts, exhausted, (kind, message, details) => new LlmError(kind, message, details));
}

function timeoutFailure(cause: unknown): Failure {
  return { kind: 'llm_timeout', retryable: true, message: 'the LLM did not answer in time', cause };
}

function classify(err: unknown, timedOut: boolean): Failure {
  const f = classifySdkError(SDK_ERRORS, err, timedOut);
  const failed = (message: string): Failure => ({ kind: 'llm_error', retryable: f.retryable, message, cause: err });
  switch (f.what) {
    case 'timeout':
      return timeoutFailure(err);
    case 'aborted':
      return failed('the LLM request was aborted');
    case 'unreachable':
      return failed(`cannot reach the LLM: ${f.detail}`);
    case 'answered':
      // No status: an `error` object inside the stream, the server failed while generating.
      if (f.status === undefined) return failed(`the LLM stream reported an error: ${f.detail}`);
      return {
        ...failed(`the LLM answered ${f.detail}`),
        status: f.status,
        ...(f.retryAfterMs !== undefined ? { retryAfterMs: f.retryAfterMs } : {}),
      };
    case 'malformed':
      return failed('the LLM stream was malformed (invalid JSON in a chunk)');
    case 'connection':
      return failed(`the LLM connection failed: ${f.detail}`);
    case 'other':
      return failed(`the LLM request failed: ${f.detail}`);
  }
}

/** Folds chunks of choice 0 into text deltas, complete tool calls, the finish reason, usage and model. */
class Accumulator {
  finishReason: string | null = null;
  private usage: LlmUsage | null = null;
  private model = '';
  private readonly calls = new Map<number, { id: string; name: string; arguments: string }>();

  /** The text this chunk adds, if any. */
  push(chunk: ChatCompletionChunk): string {
    if (chunk.model) this.model = chunk.model;
    if (chunk.usage) {
      this.usage = {
        inputTokens: chunk.usage.prompt_tokens ?? 0,
        outputTokens: chunk.usage.completion_tokens ?? 0,
        cachedTokens: chunk.usage.prompt_tokens_details?.cached_tokens ?? 0,
      };
    }
    const choice = chunk.choices?.find((c) => c.index === 0);
    if (!choice) return '';
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    const delta = choice.delta ?? {};
    for (const call of delta.tool_calls ?? []) {
      const slot = this.calls.get(call.index) ?? { id: '', name: '', arguments: '' };
      if (call.id) slot.id = call.id;
      // OpenAI sends the name once, in the first delta of a call; a repeated name replaces (as the SDK does).
      if (call.function?.name) slot.name = call.function.name;
      if (call.function?.arguments) slot.arguments += call.function.arguments;
      this.calls.set(call.index, slot);
    }
    // A refusal is what the model says instead of an answer: it is spoken like text.
    return (delta.content ?? '') + (delta.refusal ?? '');
  }

  end(): Extract<LlmStreamEvent, { type: 'end' }> {
    const toolCalls: ToolCall[] = [...this.calls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, c]) => ({ id: c.id || `call_${index}`, name: c.name, arguments: c.arguments }));
    return { type: 'end', toolCalls, finishReason: this.finishReason, usage: this.usage, model: this.model };
  }
}

function toWireMessage(m: ChatMessage): ChatCompletionMessageParam {
  switch (m.role) {
    case 'system':
    case 'user':
      return { role: m.role, content: m.content };
    case 'tool':
      return { role: 'tool', content: m.content, tool_call_id: m.tool_call_id };
    case 'assistant':
      if (!m.tool_calls?.length) return { role: 'assistant', content: m.content };
      return {
        role: 'assistant',
        content: m.content || null,
        tool_calls: m.tool_calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
      };
  }
}

function toWireTool(t: { name: string; description: string; parameters: Record<string, unknown> }): ChatCompletionFunctionTool {
  return { type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } };
}
