import type { Lease, SessionStore } from '../checkpoint/store';
import { ParleyError } from '../errors';
import type { Clock } from '../runner/ports';
import { setTimeout as sleep } from 'node:timers/promises';

/** How a turn holds its session: the lease, its renewal, and how long a newer input waits for it. */
export interface LeaseTiming {
  /** A lease not renewed for this long is free: its turn died (a crash, a function timeout). */
  leaseMs: number;
  /** The running turn renews its lease this often (a few renewals fit in one lease). */
  renewMs: number;
  /** How long an input waits for the running turn to stop and commit before it gives up. */
  waitMs: number;
  /** How often a waiting input looks at the lease. */
  pollMs: number;
  /** A turn that runs longer than this stops itself (seed 002's turn timeout). */
  turnMs: number;
}

export const DEFAULT_LEASE_TIMING: LeaseTiming = { leaseMs: 6000, renewMs: 2000, waitMs: 20_000, pollMs: 40, turnMs: 240_000 };

interface Arrival {
  at: number;
  turnId: string;
}

/** Whether input `a` came after input `b` (ties broken by turn id, so every invocation agrees). */
const isNewer = (a: Arrival, b: Arrival): boolean => a.at > b.at || (a.at === b.at && a.turnId > b.turnId);

/** What taking the lease found: whether the input waited, and whether a newer input overtook it meanwhile. */
export interface TakenLease {
  waited: boolean;
  /**
   * Whether a head read before the lease was taken may be stale: the input waited, took over a
   * holder that died, or the last release names another seq than `headSeq`.
   */
  headStale: boolean;
  /** A newer input of the same session came while this one waited: it is recorded, not run. */
  superseded: boolean;
}

/**
 * Takes the session's lease for one input; the newest input wins. A running turn that is older than
 * this input is asked to stop (it commits as cancelled, with what it said so far); then this input
 * waits, bounded, for the lease. An input that finds a newer one ahead of it is superseded: it is
 * recorded without running, so every message is stored exactly once and only the newest is answered.
 */
export async function takeLease(
  store: SessionStore,
  sessionId: string,
  me: Arrival,
  clock: Clock,
  timing: LeaseTiming,
  headSeq: number | undefined = undefined,
): Promise<TakenLease> {
  const giveUpAt = clock.nowMs() + timing.waitMs;
  let waited = false;
  let announced = false;
  let overtaken = false;
  for (;;) {
    const attempt = await store.acquireTurn(sessionId, me.turnId, me.at, timing.leaseMs);
    if (attempt.acquired) {
      const before = attempt.lease;
      const headStale = waited || before.turnId !== undefined || before.lastSeq !== headSeq;
      return { waited, headStale, superseded: overtaken || newerWaiting(before, me) };
    }
    const holder = attempt.lease;
    waited = true;
    if (!announced) {
      await store.announceTurn(sessionId, me.turnId, me.at);
      announced = true;
    }
    if (holder.turnId && holder.turnId !== me.turnId && holder.arrivedAt !== undefined) {
      const theirs = { at: holder.arrivedAt, turnId: holder.turnId };
      if (isNewer(theirs, me)) overtaken = true;
      // Asked once: a client's cancel already on the lease (with what it played) is not overwritten.
      else if (holder.cancelTurnId !== holder.turnId) await store.requestCancel(sessionId, holder.turnId, undefined, 'superseded');
    }
    if (clock.nowMs() > giveUpAt) {
      throw new ParleyError('turn.conflict', 'another turn of this session is still running; try again', { turnId: me.turnId });
    }
    await sleep(timing.pollMs);
  }
}

function newerWaiting(lease: Lease, me: Arrival): boolean {
  return lease.newest !== undefined && lease.newestTurnId !== undefined && isNewer({ at: lease.newest, turnId: lease.newestTurnId }, me);
}
