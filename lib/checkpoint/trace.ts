import { createHash } from 'node:crypto';

// Changing the prefix would split every live session's trace in two: it is part of the format.
const PREFIX = 'parley.trace.v1:';

/**
 * W3C trace-id (32 lowercase hex digits) derived from the session id alone, so every turn of a
 * session lands in one trace without storing anything.
 */
export function traceIdFor(sessionId: string): string {
  return createHash('sha256').update(PREFIX + sessionId).digest('hex').slice(0, 32);
}
