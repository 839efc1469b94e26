import { cancelOf, type CancelRequest, type SessionStore } from '../checkpoint/store';
import type { LeaseTiming } from './turn-lease';

/** Why a turn's signal aborted: a cancel (the client's or a newer input's), a lost lease, or the turn timeout. */
export type StopReason = (CancelRequest & { kind: 'cancel'; detectMs: number }) | { kind: 'lease_lost' } | { kind: 'timeout' };

/** What a client cancel looks like once the turn saw it. */
export type CancelReason = Extract<StopReason, { kind: 'cancel' }>;

/**
 * A running turn and the `response.cancel` (or newer input) that stops it arrive in different
 * invocations; they meet on the session's lease item. The turn reads it every `pollMs` while it runs
 * (one consistent GetItem each), so it stops at most one interval plus a read after the cancel was
 * written, and renews its lease every `renewMs` (the renewal reads the item too). A turn that lost
 * its lease (it stalled past the lease and another turn took over) or ran past its timeout stops.
 */
export function watchTurn(
  store: SessionStore,
  sessionId: string,
  turnId: string,
  timing: Pick<LeaseTiming, 'leaseMs' | 'renewMs' | 'turnMs'> & { pollMs: number },
  now: () => number,
): { signal: AbortSignal; stop(): Promise<void> } {
  const controller = new AbortController();
  const started = now();
  let lastRenewal = started;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  const abort = (reason: StopReason) => {
    if (!controller.signal.aborted) controller.abort(reason);
  };
  const poll = async () => {
    if (stopped) return;
    try {
      if (now() - started > timing.turnMs) return abort({ kind: 'timeout' });
      let cancel: CancelRequest | undefined;
      if (now() - lastRenewal >= timing.renewMs) {
        const lease = await store.renewTurn(sessionId, turnId, timing.leaseMs);
        if (!lease) return abort({ kind: 'lease_lost' });
        lastRenewal = now();
        cancel = cancelOf(lease, turnId);
      } else {
        cancel = await store.cancelRequested(sessionId, turnId);
      }
      if (cancel && !stopped) return abort({ ...cancel, kind: 'cancel', detectMs: Math.max(0, now() - cancel.requestedAtMs) });
    } catch {
      // A failed read only delays the cancel to the next one.
    }
    if (!stopped) timer = setTimeout(() => (inFlight = poll()), timing.pollMs);
  };
  timer = setTimeout(() => (inFlight = poll()), timing.pollMs);
  return {
    signal: controller.signal,
    /**
     * Stops watching; resolves once a read already under way is done (so none outlives the turn),
     * but never waits longer than one poll interval: a hung read must not hold back the commit.
     */
    stop() {
      stopped = true;
      clearTimeout(timer);
      let bound: NodeJS.Timeout | undefined;
      const limit = new Promise<void>((resolve) => (bound = setTimeout(resolve, timing.pollMs)));
      return Promise.race([inFlight, limit]).finally(() => clearTimeout(bound));
    },
  };
}

/** Why the turn's signal aborted, if it was the watch. */
export function stopReasonOf(signal: AbortSignal): StopReason | undefined {
  const reason: unknown = signal.aborted ? signal.reason : undefined;
  return reason && typeof reason === 'object' && 'kind' in reason ? (reason as StopReason) : undefined;
}
