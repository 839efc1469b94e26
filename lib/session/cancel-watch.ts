import type { SessionStore } from '../checkpoint/store';

/**
 * A running turn and the `response.cancel` for it arrive in different invocations; they meet in
 * the table. While a turn may stream from the LLM, it polls for a cancel marker and aborts its
 * signal when one appears. One GetItem per interval, only while the turn runs.
 */
export function watchCancellation(store: SessionStore, sessionId: string, turnId: string, intervalMs: number): { signal: AbortSignal; stop(): void } {
  const controller = new AbortController();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const poll = async () => {
    if (stopped) return;
    try {
      const marker = await store.cancelRequested(sessionId, turnId);
      if (marker) {
        // The reason carries what the client says it played, for the turn record.
        controller.abort(marker);
        return;
      }
    } catch {
      // A failed poll only delays the cancel to the next one.
    }
    if (!stopped) timer = setTimeout(() => void poll(), intervalMs);
  };
  timer = setTimeout(() => void poll(), intervalMs);
  return {
    signal: controller.signal,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
