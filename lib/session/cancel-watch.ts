import type { CancelRequest, SessionStore } from '../checkpoint/store';

/** Why a turn's signal aborted: the client's cancel, and how long the turn took to see it. */
export interface CancelReason extends CancelRequest {
  /** Wall-clock ms from the cancel being written to this turn seeing it. */
  detectMs: number;
}

/**
 * A running turn and the `response.cancel` for it arrive in different invocations; they meet on
 * the session's lease item. The turn reads it every `intervalMs` while it runs (one consistent
 * GetItem each), so it stops at most one interval plus a read after the cancel was written.
 * `ready` is the turn's own lease write: polling starts only once that is in place.
 */
export function watchCancellation(
  store: SessionStore,
  sessionId: string,
  turnId: string,
  intervalMs: number,
  now: () => number,
  ready: Promise<unknown> = Promise.resolve(),
): { signal: AbortSignal; stop(): Promise<void> } {
  const controller = new AbortController();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  const poll = async () => {
    if (stopped) return;
    try {
      await ready;
      const cancel = await store.cancelRequested(sessionId, turnId);
      if (cancel && !stopped) {
        const reason: CancelReason = { ...cancel, detectMs: Math.max(0, now() - cancel.requestedAtMs) };
        controller.abort(reason);
        return;
      }
    } catch {
      // A failed poll only delays the cancel to the next one.
    }
    if (!stopped) timer = setTimeout(() => (inFlight = poll()), intervalMs);
  };
  timer = setTimeout(() => (inFlight = poll()), intervalMs);
  return {
    signal: controller.signal,
    /** Stops polling; resolves once a read already under way is done, so none outlives the turn. */
    stop() {
      stopped = true;
      clearTimeout(timer);
      return inFlight;
    },
  };
}

/** The cancel behind an aborted signal, if that is why it aborted. */
export function cancelReasonOf(signal: AbortSignal): CancelReason | undefined {
  const reason: unknown = signal.aborted ? signal.reason : undefined;
  return reason && typeof reason === 'object' && 'requestedAtMs' in reason ? (reason as CancelReason) : undefined;
}
