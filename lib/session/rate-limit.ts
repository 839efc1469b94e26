import { ConditionalCheckFailedException, UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';

/*
 * Per-connection message rate: a token bucket of `burst` tokens refilled at `perSecond`, kept in
 * DynamoDB (every message arrives in its own invocation) as one number per connection:
 *
 *   pk = RATE#<connectionId>  sk = RATE   tat (ms), expiresAt
 *
 * `tat` is the bucket's "theoretical arrival time" (GCRA, the form of a token bucket that needs one
 * number instead of tokens + last refill): the moment the bucket will be full again. At `now` it holds
 * burst - max(0, tat - now) / interval tokens, so a message may pass when tat - now <= (burst - 1) *
 * interval, and taking its token moves tat to max(tat, now) + interval.
 *
 * DynamoDB's update expressions can add but not take a maximum, so the max() is two conditional
 * updates, each one write and no read:
 *
 *   idle bucket (tat <= now, or none):  SET tat = now + interval       IF attribute_not_exists(tat) OR tat <= now
 *   partly used (now < tat <= limit):   SET tat = tat + interval       IF tat > now AND tat <= now + (burst-1)*interval
 *   neither: rate.limited
 *
 * A message that finds the bucket idle costs one UpdateItem, any other two. Racing invocations of
 * one connection cannot both take the last token: each condition is checked by DynamoDB as it writes.
 * When a message is refused the next token is due within one interval, so that is the retry hint.
 * An item whose TTL passed holds a tat in the past, which is an idle bucket: no read filter needed.
 */

export interface RateSettings {
  /** Tokens added per second (messages per second in the long run). */
  perSecond: number;
  /** The bucket's size: how many messages may arrive at once. */
  burst: number;
}

export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

export interface RateLimiter {
  /** Takes `weight` tokens (default one) of the connection's bucket. */
  take(connectionId: string, weight?: number): Promise<RateDecision>;
}

export const intervalMs = (s: RateSettings): number => 1000 / s.perSecond;

/** Tokens in the bucket at `nowMs` (fractional: a token refills gradually), given its tat. */
export function tokensAt(tat: number | undefined, nowMs: number, s: RateSettings): number {
  if (tat === undefined || tat <= nowMs) return s.burst;
  return s.burst - (tat - nowMs) / intervalMs(s);
}

/**
 * The pure bucket: one message at `nowMs`. Allowed: the new tat. Refused: when the next token is
 * due (at most one interval away). The DynamoDB limiter below makes the same decision.
 */
export function takeToken(tat: number | undefined, nowMs: number, s: RateSettings, weight = 1): { allowed: true; tat: number } | { allowed: false; retryAfterMs: number } {
  const interval = intervalMs(s) * weight;
  const from = Math.max(tat ?? nowMs, nowMs);
  const limit = nowMs + s.burst * intervalMs(s) - interval;
  if (from > limit) return { allowed: false, retryAfterMs: Math.ceil(from - limit) };
  return { allowed: true, tat: from + interval };
}

/** The rate item lives an hour past its tat (long after it stopped mattering). */
const EXPIRY_MARGIN_SECONDS = 3600;

export class DynamoRateLimiter implements RateLimiter {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly settings: RateSettings,
    private readonly now: () => number = Date.now,
  ) {}

  async take(connectionId: string, weight = 1): Promise<RateDecision> {
    const now = this.now();
    const interval = intervalMs(this.settings) * weight;
    const full = intervalMs(this.settings) * this.settings.burst;
    const Key = { pk: { S: `RATE#${connectionId}` }, sk: { S: 'RATE' } };
    // tat never moves past now + burst * interval: the item expires an hour after that.
    const expiresAt = { N: String(Math.ceil((now + full) / 1000) + EXPIRY_MARGIN_SECONDS) };
    if (
      await this.conditional({
        TableName: this.tableName,
        Key,
        UpdateExpression: 'SET tat = :next, expiresAt = :e',
        ConditionExpression: 'attribute_not_exists(tat) OR tat <= :now',
        ExpressionAttributeValues: { ':next': num(now + interval), ':now': num(now), ':e': expiresAt },
      })
    ) {
      return { allowed: true };
    }
    if (
      await this.conditional({
        TableName: this.tableName,
        Key,
        UpdateExpression: 'SET tat = tat + :i, expiresAt = :e',
        ConditionExpression: 'tat > :now AND tat <= :limit',
        ExpressionAttributeValues: {
          ':i': num(interval),
          ':now': num(now),
          ':limit': num(now + full - interval),
          ':e': expiresAt,
        },
      })
    ) {
      return { allowed: true };
    }
    return { allowed: false, retryAfterMs: Math.ceil(interval) };
  }

  private async conditional(input: ConstructorParameters<typeof UpdateItemCommand>[0]): Promise<boolean> {
    try {
      await this.client.send(new UpdateItemCommand(input));
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }
}

/** Numbers as DynamoDB takes them: ms with microsecond precision (an interval of 1000/3 ms stays exact enough). */
const num = (n: number) => ({ N: String(Math.round(n * 1000) / 1000) });
