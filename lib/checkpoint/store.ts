import type { TurnRecord } from './record';

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
  /** Asks the invocation running `turnId` to stop (response.cancel arrives in another Lambda). */
  requestCancel(sessionId: string, turnId: string, playedMs: number | undefined): Promise<void>;
  /** Whether a cancel was asked for `turnId`. */
  cancelRequested(sessionId: string, turnId: string): Promise<{ playedMs?: number } | undefined>;
}
