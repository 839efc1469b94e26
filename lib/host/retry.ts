/*
 * Retrying an HTTP provider (the LLM, speech recognition) within a deadline: when to try again and
 * how long to wait first, how long the server asks for, and an abortable sleep; what an `openai` SDK
 * error means for a retry, and the error that ends a call.
 */

/** The shortest attempt worth starting: with less time left than this before the deadline, give up. */
export const MIN_ATTEMPT_MS = 20;

/**
 * After a failed attempt: wait `waitMs` and try again (exponential backoff with jitter, at least what
 * the server asked for), or stop: the failure is final, the attempts are used up, or the wait would
 * leave no time for another attempt before the deadline.
 */
export function nextAttempt(
  failure: { retryable: boolean; retryAfterMs?: number | undefined },
  attempt: number,
  policy: { maxAttempts: number; backoffBaseMs: number; deadline: number; now: () => number },
): { retry: true; waitMs: number } | { retry: false; why: 'final' | 'attempts' | 'deadline'; waitMs?: number } {
  if (!failure.retryable) return { retry: false, why: 'final' };
  if (attempt >= policy.maxAttempts) return { retry: false, why: 'attempts' };
  const backoff = policy.backoffBaseMs * 2 ** (attempt - 1) * (0.5 + Math.random() * 0.5);
  const waitMs = Math.max(backoff, failure.retryAfterMs ?? 0);
  if (policy.now() + waitMs + MIN_ATTEMPT_MS > policy.deadline) return { retry: false, why: 'deadline', waitMs };
  return { retry: true, waitMs };
}

/** retry-after-ms (OpenAI's), else Retry-After in seconds or as an HTTP date. */
export function retryAfter(headers: Headers | undefined): number | undefined {
  const ms = headers?.get('retry-after-ms');
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const value = headers?.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Resolves true after ms, or false as soon as the signal aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The error classes of the `openai` SDK that classifySdkError tells apart. Passed in rather than
 * imported, so an adapter may load the SDK lazily (the transcriber does).
 */
export interface SdkErrorClasses {
  APIConnectionTimeoutError: abstract new (...args: never[]) => Error;
  APIUserAbortError: abstract new (...args: never[]) => Error;
  APIConnectionError: abstract new (...args: never[]) => Error;
  APIError: abstract new (...args: never[]) => Error & { readonly status: number | undefined; readonly headers: Headers | undefined };
}

/**
 * One failed SDK call, described without a provider's words (each adapter words it): what failed,
 * whether to try again, and the error's own message (`detail`, unredacted).
 * - `timeout`: the attempt's watchdog fired, or the SDK's connect/header timeout.
 * - `aborted`: the SDK reports an abort that was not the caller's.
 * - `unreachable`: no connection to the server.
 * - `answered`: an error answer; `status` undefined when the server reported it inside a stream.
 * - `malformed`: the answer was not valid JSON.
 * - `connection`: the connection failed otherwise (undici's "TypeError: terminated" when it drops mid-body).
 * - `other`: anything else.
 */
export interface SdkFailure {
  what: 'timeout' | 'aborted' | 'unreachable' | 'answered' | 'malformed' | 'connection' | 'other';
  /** Timeouts, aborts, lost connections, 408, 429, 5xx and in-stream errors; not 4xx otherwise, nor invalid JSON, nor the unknown. */
  retryable: boolean;
  status?: number;
  /** From Retry-After / retry-after-ms on a retryable answer. */
  retryAfterMs?: number;
  detail: string;
}

/** Classifies what an `openai` SDK call threw; `timedOut`: the attempt's own watchdog aborted it. */
export function classifySdkError(sdk: SdkErrorClasses, err: unknown, timedOut: boolean): SdkFailure {
  const detail = (err as Error)?.message ?? String(err);
  // The watchdog aborted: the SDK reports it as a user abort (before headers) or not at all.
  if (timedOut || err instanceof sdk.APIConnectionTimeoutError) return { what: 'timeout', retryable: true, detail };
  if (err instanceof sdk.APIUserAbortError) return { what: 'aborted', retryable: true, detail };
  if (err instanceof sdk.APIConnectionError) return { what: 'unreachable', retryable: true, detail };
  if (err instanceof sdk.APIError) {
    const status = err.status;
    const retryable = status === undefined || status === 408 || status === 429 || status >= 500;
    const retryAfterMs = retryable ? retryAfter(err.headers) : undefined;
    return {
      what: 'answered',
      retryable,
      ...(status !== undefined ? { status } : {}),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      detail,
    };
  }
  if (err instanceof SyntaxError) return { what: 'malformed', retryable: false, detail };
  if (err instanceof TypeError) return { what: 'connection', retryable: true, detail };
  return { what: 'other', retryable: false, detail };
}

/** One failed attempt as an adapter words it, in its own error kinds. */
export interface ProviderFailure<Kind extends string> {
  kind: Kind;
  retryable: boolean;
  message: string;
  status?: number;
  /** From Retry-After / retry-after-ms on a 429 or 5xx. */
  retryAfterMs?: number;
  cause: unknown;
}

/**
 * The error that ends a call after `attempts` attempts, made by `make` (the adapter's error class):
 * the failure's message, with "(after n attempts)" when retries were used up (`exhausted`).
 */
export function giveUp<Kind extends string, E>(
  failure: ProviderFailure<Kind>,
  attempts: number,
  exhausted: boolean,
  make: (kind: Kind, message: string, details: { status?: number; attempts: number; cause: unknown }) => E,
): E {
  const suffix = exhausted && attempts > 1 ? ` (after ${attempts} attempts)` : '';
  return make(failure.kind, `${failure.message}${suffix}`, {
    ...(failure.status !== undefined ? { status: failure.status } : {}),
    attempts,
    cause: failure.cause,
  });
}
