/*
 * Retrying an HTTP provider (the LLM, speech recognition) within a deadline: when to try again and
 * how long to wait first, how long the server asks for, and an abortable sleep.
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
