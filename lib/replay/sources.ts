import type { SessionStore } from '../checkpoint/store';
import { ParleyError } from '../errors';
import type { StoredSession } from './replay';

/** A stored session's records through the session store (the local store or DynamoDB in AWS alike). */
export async function loadStoredSession(store: SessionStore, sessionId: string, source: string): Promise<StoredSession> {
  const records = await store.listTurns(sessionId);
  if (records.length === 0) throw new ParleyError('session.not_found', `no session ${sessionId} in ${source}`);
  return { sessionId, records, source };
}
