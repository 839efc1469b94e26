import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRateLimiter, takeToken, tokensAt, type RateDecision, type RateSettings } from '../../lib/session/rate-limit';
import { ensureTable, startDynalite, type LocalDynamo } from '../../local/dynamodb';

/*
 * Weighted messages in the per-connection token bucket: an audio chunk takes a fraction of a token
 * (lib/session/dispatch.ts), so a stream of chunks is not cut at the message burst. The pure bucket
 * first, then the DynamoDB limiter against dynalite making the same decisions.
 */

/** burst 4, 10 per second: an interval of 100 ms, 12.5 ms for an eighth (exact in binary, and in DynamoDB's numbers). */
const s: RateSettings = { perSecond: 10, burst: 4 };

/** Sends `weights` at the given times through the pure bucket from `tat`. */
function pure(messages: Array<{ at: number; weight: number }>, start?: number) {
  let tat = start;
  const decisions = messages.map(({ at, weight }) => {
    const d = takeToken(tat, at, s, weight);
    if (d.allowed) tat = d.tat;
    return d;
  });
  return { decisions, tat };
}

const allowedCount = (ds: Array<{ allowed: boolean }>) => ds.filter((d) => d.allowed).length;
const at = (time: number, n: number, weight: number) => Array.from({ length: n }, () => ({ at: time, weight }));

describe('takeToken with a weight', () => {
  it('weight 1 lets burst messages through at once; weight 1/8 lets 8 × burst', () => {
    const whole = pure(at(1000, 10, 1)).decisions;
    expect(allowedCount(whole)).toBe(4);
    expect(whole.slice(0, 4).every((d) => d.allowed)).toBe(true);

    const eighths = pure(at(1000, 40, 1 / 8)).decisions;
    expect(allowedCount(eighths)).toBe(32);
    expect(eighths.slice(0, 32).every((d) => d.allowed)).toBe(true);
    expect(eighths.slice(32).some((d) => d.allowed)).toBe(false);
  });

  it('a weight of 1/8 moves tat by an eighth of an interval; weight 2 by two', () => {
    expect(takeToken(undefined, 1000, s, 1 / 8)).toEqual({ allowed: true, tat: 1012.5 });
    expect(takeToken(undefined, 1000, s, 2)).toEqual({ allowed: true, tat: 1200 });
    expect(takeToken(1200, 1000, s, 2)).toEqual({ allowed: true, tat: 1400 });
    expect(takeToken(1400, 1000, s, 2)).toMatchObject({ allowed: false });
  });

  it('the refusal says when the weighed message would pass: an eighth waits an eighth of an interval', () => {
    const { decisions, tat } = pure(at(0, 33, 1 / 8));
    expect(decisions[32]).toEqual({ allowed: false, retryAfterMs: 13 }); // ceil(12.5)
    expect(tokensAt(tat, 0, s)).toBe(0);
    expect(takeToken(tat, 12, s, 1 / 8)).toMatchObject({ allowed: false });
    expect(takeToken(tat, 12.5, s, 1 / 8)).toMatchObject({ allowed: true });
    // A whole message on the same empty bucket waits a whole interval.
    expect(takeToken(tat, 0, s, 1)).toEqual({ allowed: false, retryAfterMs: 100 });
  });

  it('half a token left: an eighth passes where a whole message is refused, and told to wait for the missing half', () => {
    const { tat } = pure(at(0, 4, 1));
    expect(tokensAt(tat, 50, s)).toBeCloseTo(0.5);
    expect(takeToken(tat, 50, s, 1)).toEqual({ allowed: false, retryAfterMs: 50 });
    expect(takeToken(tat, 50, s, 1 / 8)).toMatchObject({ allowed: true });
    // Four eighths use the half; the fifth waits 12.5 ms for its eighth.
    const rest = pure(at(50, 5, 1 / 8), tat).decisions;
    expect(rest.slice(0, 4).every((d) => d.allowed)).toBe(true);
    expect(rest[4]).toEqual({ allowed: false, retryAfterMs: 13 });
  });

  it('weights share one bucket: 16 eighths spend two tokens, leaving room for two whole messages and nothing more', () => {
    const { decisions } = pure([...at(0, 16, 1 / 8), ...at(0, 3, 1), ...at(0, 1, 1 / 8)]);
    expect(decisions.slice(0, 18).every((d) => d.allowed)).toBe(true);
    expect(decisions[18]).toMatchObject({ allowed: false });
    expect(decisions[19]).toMatchObject({ allowed: false });
  });

  it('in the long run a weight of 1/8 passes 8 × perSecond: a sender at that rate always passes, a faster one is cut to it', () => {
    const steady = Array.from({ length: 800 }, (_, i) => ({ at: i * 12.5, weight: 1 / 8 }));
    expect(pure(steady).decisions.every((d) => d.allowed)).toBe(true);
    // 160 a second for 5 s: the burst (32) and 80 a second (400), give or take the last one.
    const fast = Array.from({ length: 800 }, (_, i) => ({ at: i * 6.25, weight: 1 / 8 }));
    const through = allowedCount(pure(fast).decisions);
    expect(through).toBeGreaterThanOrEqual(430);
    expect(through).toBeLessThanOrEqual(433);
  });

  it('whatever the weights, a refused message passes when it retries after retryAfterMs (and the hint is at most its own interval)', () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const weights = [1, 1 / 8, 1 / 2, 2];
    let tat: number | undefined;
    let now = 0;
    let refused = 0;
    for (let i = 0; i < 500; i++) {
      now += Math.floor(random() * 40);
      const weight = weights[Math.floor(random() * weights.length)]!;
      const d = takeToken(tat, now, s, weight);
      if (d.allowed) {
        tat = d.tat;
        continue;
      }
      refused += 1;
      expect(d.retryAfterMs).toBeGreaterThan(0);
      expect(d.retryAfterMs).toBeLessThanOrEqual(Math.ceil(100 * weight));
      expect(takeToken(tat, now + d.retryAfterMs, s, weight).allowed).toBe(true);
    }
    expect(refused).toBeGreaterThan(50); // the sequence does reach the limit
  });
});

describe('DynamoRateLimiter with a weight (dynalite)', () => {
  let dynamo: LocalDynamo;
  const table = 'rate-weight-test';
  let now = 0;

  beforeAll(async () => {
    dynamo = await startDynalite({});
    await ensureTable(dynamo.client, table);
  });
  afterAll(async () => {
    await dynamo?.close();
  });

  const limiter = () => new DynamoRateLimiter(dynamo.client, table, s, () => now);

  it('lets 8 × burst eighths through at once where it lets burst whole messages', async () => {
    const rate = limiter();
    now = 1_000_000;
    const whole: RateDecision[] = [];
    for (let i = 0; i < 6; i++) whole.push(await rate.take('conn-whole', 1));
    expect(whole.map((d) => d.allowed)).toEqual([true, true, true, true, false, false]);
    const eighths: RateDecision[] = [];
    for (let i = 0; i < 34; i++) eighths.push(await rate.take('conn-eighths', 1 / 8));
    expect(allowedCount(eighths)).toBe(32);
    expect(eighths.slice(0, 32).every((d) => d.allowed)).toBe(true);
    expect(eighths[32]).toEqual({ allowed: false, retryAfterMs: 13 });
    // The weight defaults to one.
    const plain: RateDecision[] = [];
    for (let i = 0; i < 5; i++) plain.push(await rate.take('conn-plain'));
    expect(allowedCount(plain)).toBe(4);
  });

  it('agrees with takeToken, message by message, over a mixed sequence of weights and times', async () => {
    const rate = limiter();
    let seed = 11;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const weights = [1, 1 / 8, 1 / 2, 2];
    let tat: number | undefined;
    now = 5_000_000;
    const mismatches: string[] = [];
    let refused = 0;
    let passed = 0;
    for (let i = 0; i < 250; i++) {
      now += Math.floor(random() * 50);
      const weight = weights[Math.floor(random() * weights.length)]!;
      const expected = takeToken(tat, now, s, weight);
      const got = await rate.take('conn-mixed', weight);
      if (expected.allowed) {
        tat = expected.tat;
        passed += 1;
      } else refused += 1;
      if (got.allowed !== expected.allowed) mismatches.push(`#${i} at ${now} weight ${weight}: pure ${expected.allowed}, dynamo ${got.allowed}`);
      else if (!got.allowed && !expected.allowed) {
        // DynamoDB does not read tat back: its hint is the weighed interval, never shorter than the pure one.
        expect(got.retryAfterMs).toBe(Math.ceil(100 * weight));
        expect(got.retryAfterMs).toBeGreaterThanOrEqual(expected.retryAfterMs);
      }
    }
    expect(mismatches).toEqual([]);
    // Both kinds of decision were exercised.
    expect(refused).toBeGreaterThan(20);
    expect(passed).toBeGreaterThan(20);
  });
});
