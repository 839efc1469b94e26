import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { TurnRecord } from '../checkpoint/record';
import type { SessionStore } from '../checkpoint/store';
import { ParleyError } from '../errors';
import { DynamoRateLimiter, type RateLimiter } from './rate-limit';

/*
 * Limits on what one client may ask for (README "Limits"):
 *
 * - messages per connection: a token bucket in DynamoDB (rate-limit.ts), checked before anything
 *   else a message does; refused: `rate.limited` with `retryAfterMs`;
 * - turns per session and the age of a session: checked before a text turn runs; refused:
 *   `session.limit`. Nothing is stored for a refused message.
 *
 * Idle expiry is the table's TTL (`PARLEY_SESSION_TTL_HOURS`), which every read filters.
 */

export interface LimitSettings {
  /** Messages per second per connection, in the long run; 0: no rate limit. */
  ratePerSecond: number;
  /** Messages a connection may send at once. */
  rateBurst: number;
  /** Turn records after the greeting a session may hold; 0: no limit. */
  maxTurns: number;
  /** How long after its start a session takes input; 0: no limit. */
  maxSessionAgeMs: number;
}

/** The defaults of the environment variables (lib/config/env.ts). */
export const DEFAULT_LIMITS: LimitSettings = {
  ratePerSecond: 5,
  rateBurst: 20,
  maxTurns: 500,
  maxSessionAgeMs: 24 * 3600 * 1000,
};

/** Everything off: what the local runtime uses unless told otherwise (tests, benchmarks). */
export const NO_LIMITS: LimitSettings = { ratePerSecond: 0, rateBurst: 1, maxTurns: 0, maxSessionAgeMs: 0 };

export interface Limits {
  readonly settings: LimitSettings;
  readonly rate: RateLimiter | undefined;
  /** When a session started (immutable, so a cache of it is no conversation state). */
  sessionStartMs(store: SessionStore, sessionId: string): Promise<number | undefined>;
}

/** The environment's limit variables as settings. */
export function limitsFromEnv(env: {
  PARLEY_RATE_PER_SECOND: number;
  PARLEY_RATE_BURST: number;
  PARLEY_MAX_TURNS: number;
  PARLEY_MAX_SESSION_AGE_HOURS: number;
}): LimitSettings {
  return {
    ratePerSecond: env.PARLEY_RATE_PER_SECOND,
    rateBurst: env.PARLEY_RATE_BURST,
    maxTurns: env.PARLEY_MAX_TURNS,
    maxSessionAgeMs: env.PARLEY_MAX_SESSION_AGE_HOURS * 3600 * 1000,
  };
}

/** Start times kept per container; a cold one reads the session's META item once. */
const START_CACHE_SIZE = 1000;

export function createLimits(settings: LimitSettings, table: { client: DynamoDBClient; tableName: string; now: () => number }): Limits {
  const rate =
    settings.ratePerSecond > 0
      ? new DynamoRateLimiter(table.client, table.tableName, { perSecond: settings.ratePerSecond, burst: settings.rateBurst }, table.now)
      : undefined;
  const starts = new Map<string, number>();
  return {
    settings,
    rate,
    async sessionStartMs(store, sessionId) {
      const known = starts.get(sessionId);
      if (known !== undefined) return known;
      const meta = await store.getSession(sessionId);
      const started = meta ? Date.parse(meta.createdAt) : NaN;
      if (Number.isNaN(started)) return undefined;
      if (starts.size >= START_CACHE_SIZE) starts.delete(starts.keys().next().value!);
      starts.set(sessionId, started);
      return started;
    },
  };
}

interface LimitDeps {
  limits?: Limits | undefined;
  store: SessionStore;
  clock: { nowMs(): number };
}

/** Takes one token of the connection's bucket; refuses the message with `rate.limited` when there is none. */
export async function enforceRate(deps: LimitDeps, connectionId: string, turnId?: string, weight = 1): Promise<void> {
  const decision = await deps.limits?.rate?.take(connectionId, weight);
  if (!decision || decision.allowed) return;
  throw new ParleyError('rate.limited', `too many messages on this connection; retry in ${decision.retryAfterMs} ms`, {
    retryAfterMs: decision.retryAfterMs,
    ...(turnId ? { turnId } : {}),
  });
}

/**
 * Refuses a text turn of a session that holds `maxTurns` records after its greeting, or that
 * started more than `maxSessionAgeMs` ago: `session.limit`, and the client starts a new session.
 */
export async function enforceSessionLimits(deps: LimitDeps, sessionId: string, head: TurnRecord | undefined, turnId: string): Promise<void> {
  const limits = deps.limits;
  if (!limits || !head) return;
  const { maxTurns, maxSessionAgeMs } = limits.settings;
  if (maxTurns > 0 && head.seq >= maxTurns) {
    throw new ParleyError('session.limit', `this session reached its limit of ${maxTurns} turns; start a new session`, { turnId });
  }
  if (maxSessionAgeMs > 0) {
    const now = deps.clock.nowMs();
    // The head's own time bounds the age from below: an old head needs no read.
    const headAt = Date.parse(head.createdAt);
    const started = now - headAt > maxSessionAgeMs ? headAt : await limits.sessionStartMs(deps.store, sessionId);
    // The identity item is gone only when the session expired (TTL): it cannot go on either.
    if (started === undefined) throw new ParleyError('session.not_found', 'this session has expired; start a new session', { turnId });
    if (now - started > maxSessionAgeMs) {
      throw new ParleyError('session.limit', `this session is older than ${formatAge(maxSessionAgeMs)}; start a new session`, { turnId });
    }
  }
}

function formatAge(ms: number): string {
  const hours = ms / 3_600_000;
  if (hours >= 1 && Number.isInteger(hours)) return `${hours} hour${hours === 1 ? '' : 's'}`;
  return `${Math.round(ms / 60_000)} minutes`;
}
