import type { TurnRecord } from './record';

/** Why a turn was asked to stop: the client (barge-in), or a newer input of the same session. */
export type CancelReasonKind = 'client' | 'superseded';

/** The lease item as read: every field absent when nobody holds or wants it. */
export interface Lease {
  turnId?: string;
  /** Wall-clock ms until which the holder owns the session, unless it renews. */
  leaseUntil?: number;
  /** When the holder's input arrived: a newer input supersedes it. */
  arrivedAt?: number;
  /** The newest input that waited for the lease. */
  newest?: number;
  newestTurnId?: string;
  cancelTurnId?: string;
  cancelReason?: CancelReasonKind;
  playedMs?: number;
  requestedAt?: number;
  /** The seq the last holder committed before it released. */
  lastSeq?: number;
}

/** Acquired: the lease as it was before (a dead holder, the last seq, who waits); refused: who holds it. */
export type LeaseAttempt = { acquired: true; lease: Lease } | { acquired: false; lease: Lease };

/** A `response.cancel` (or a newer input) as the lease holds it. */
export interface CancelRequest {
  reason: CancelReasonKind;
  /** What the client says it played of the turn's speech. */
  playedMs?: number;
  /** Wall-clock ms when the cancel was written, so the running turn can report how fast it saw it. */
  requestedAtMs: number;
}

/** A session's identity, written once at `session.start`. */
export interface SessionMeta {
  sessionId: string;
  /**
   * `hmac-sha256:v1`: the resume token is an HMAC of the session id (nothing secret stored); for
   * sessions from before that, the SHA-256 of their random token.
   */
  resumeTokenHash: string;
  /** Who opened the session (the API key's id or the JWT's subject), so nobody else can resume it. */
  principal: string;
  createdAt: string;
  metadata: Record<string, unknown>;
}

/**
 * Port to the durable state of sessions. The DynamoDB adapter is the only implementation the
 * product ships; tests and replay use the same adapter against dynalite.
 */
export interface SessionStore {
  /** Creates the session; fails with `turn.conflict` if the id is taken. */
  createSession(meta: SessionMeta): Promise<void>;
  getSession(sessionId: string): Promise<SessionMeta | undefined>;
  /** The newest turn record: the session's current checkpoint. */
  loadHead(sessionId: string): Promise<TurnRecord | undefined>;
  /**
   * Writes record `seq` only if no record `seq` exists yet: the one atomic step of a turn.
   * Fails with `turn.conflict` when another turn committed first.
   */
  commitTurn(sessionId: string, record: TurnRecord): Promise<void>;
  /** Every record, oldest first (replay, tests). */
  listTurns(sessionId: string): Promise<TurnRecord[]>;
  /** Record `seq` of the session (an earlier turn's stored outcome). */
  loadTurn(sessionId: string, seq: number): Promise<TurnRecord | undefined>;
  /**
   * The session's lease item serializes its turns across invocations: a turn takes it before it
   * runs and releases it after its commit; a `response.cancel` or a newer input meets the running
   * turn there. Takes the lease when it is free or expired; otherwise says who holds it.
   */
  acquireTurn(sessionId: string, turnId: string, arrivedAt: number, leaseMs: number): Promise<LeaseAttempt>;
  /** Marks an input as waiting for the lease, if it is newer than every input that marked itself so far. */
  announceTurn(sessionId: string, turnId: string, arrivedAt: number): Promise<void>;
  /** Extends the lease while the turn is alive; undefined when the turn lost it (it expired and another took it). */
  renewTurn(sessionId: string, turnId: string, leaseMs: number): Promise<Lease | undefined>;
  readLease(sessionId: string): Promise<Lease>;
  /** Records a cancel of `turnId`; says whether that turn holds the lease (is still running). */
  requestCancel(sessionId: string, turnId: string, playedMs: number | undefined, reason?: CancelReasonKind): Promise<'running' | 'not_running'>;
  /** The cancel of `turnId`, if one was asked for (the running turn polls this). */
  cancelRequested(sessionId: string, turnId: string): Promise<CancelRequest | undefined>;
  /**
   * Releases the lease after the commit (noting the seq committed, so the next holder knows whether
   * the head it read is still the head); returns a cancel of this turn that is on the lease.
   */
  endTurn(sessionId: string, turnId: string, committedSeq?: number): Promise<CancelRequest | undefined>;
}

/** The cancel of `turnId` that a lease item holds, if any. */
export function cancelOf(lease: Lease, turnId: string): CancelRequest | undefined {
  if (lease.cancelTurnId !== turnId) return undefined;
  return {
    requestedAtMs: lease.requestedAt ?? 0,
    reason: lease.cancelReason ?? 'client',
    ...(lease.playedMs === undefined ? {} : { playedMs: lease.playedMs }),
  };
}
