import type { TurnRecord } from './record';

/** A `response.cancel` as the lease holds it. */
export interface CancelRequest {
  /** What the client says it played of the turn's speech. */
  playedMs?: number;
  /** Wall-clock ms when the cancel was written, so the running turn can report how fast it saw it. */
  requestedAtMs: number;
}

/** A session's identity, written once at `session.start`. */
export interface SessionMeta {
  sessionId: string;
  /** SHA-256 of the resume token; the token itself is only ever known to the client. */
  resumeTokenHash: string;
  /** Who opened the session (the API key's id), so nobody else can resume it. */
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
  /**
   * The session's lease item: the running turn marks itself there, and a `response.cancel` (which
   * arrives in another invocation) meets it there. Issue-6 racing rules build on the same item.
   */
  beginTurn(sessionId: string, turnId: string, leaseMs: number): Promise<void>;
  /** Records a cancel of `turnId`; says whether that turn holds the lease (is still running). */
  requestCancel(sessionId: string, turnId: string, playedMs: number | undefined): Promise<'running' | 'not_running'>;
  /** The cancel of `turnId`, if one was asked for (the running turn polls this). */
  cancelRequested(sessionId: string, turnId: string): Promise<CancelRequest | undefined>;
  /** Releases the lease after the commit; returns a cancel of this turn that is on the lease. */
  endTurn(sessionId: string, turnId: string): Promise<CancelRequest | undefined>;
}
