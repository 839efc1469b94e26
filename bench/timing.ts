/*
 * Timing helpers the benchmarks share: sleeps on performance.now() and the gateway's count of
 * finished message-route invocations.
 */

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Sleeps until performance.now() reaches `at` (at once when it has). */
export const sleepUntil = (at: number) => sleep(Math.max(0, at - performance.now()));

/**
 * Message-route invocations (not $connect/$disconnect; partials included) finished, from the
 * gateway's onInvoke hook, so a session's work can be awaited before the next starts.
 */
export class Invocations {
  finished = 0;
  /** performance.now() when the gateway started the last message-route invocation. */
  lastStartedAt = 0;
  private waiters: { target: number; resolve: () => void }[] = [];
  readonly onInvoke = (routeKey: string, ms: number): void => {
    if (routeKey === '$connect' || routeKey === '$disconnect') return;
    this.lastStartedAt = performance.now() - ms;
    this.finished++;
    this.waiters = this.waiters.filter((w) => (w.target <= this.finished ? (w.resolve(), false) : true));
  };
  /** Resolves once `target` invocations have finished; rejects after `timeoutMs`. */
  until(target: number, timeoutMs = 10_000): Promise<void> {
    if (this.finished >= target) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`invocation ${target} did not finish within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        target,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}
