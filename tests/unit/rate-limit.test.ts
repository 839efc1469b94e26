import { describe, expect, it } from 'vitest';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import { DEFAULT_LIMITS, limitsFromEnv } from '../../lib/session/limits';
import { takeToken, tokensAt, type RateSettings } from '../../lib/session/rate-limit';

/** Runs messages at the given times through the pure bucket; true for each that passed. */
function run(times: number[], s: RateSettings): { passed: boolean[]; retry: Array<number | undefined> } {
  let tat: number | undefined;
  const passed: boolean[] = [];
  const retry: Array<number | undefined> = [];
  for (const t of times) {
    const d = takeToken(tat, t, s);
    passed.push(d.allowed);
    retry.push(d.allowed ? undefined : d.retryAfterMs);
    if (d.allowed) tat = d.tat;
  }
  return { passed, retry };
}

describe('the token bucket (pure)', () => {
  const s: RateSettings = { perSecond: 5, burst: 20 };

  it('a fresh bucket lets `burst` messages through at once, then refuses', () => {
    const { passed, retry } = run(new Array(25).fill(1000), s);
    expect(passed.filter(Boolean)).toHaveLength(20);
    expect(passed.slice(0, 20).every(Boolean)).toBe(true);
    expect(passed.slice(20).some(Boolean)).toBe(false);
    // The next token is one interval (200 ms) away.
    expect(retry.slice(20)).toEqual([200, 200, 200, 200, 200]);
  });

  it('refills at perSecond: one token per interval, never more than burst', () => {
    let tat: number | undefined;
    for (let i = 0; i < 20; i++) tat = (takeToken(tat, 0, s) as { tat: number }).tat;
    expect(tokensAt(tat, 0, s)).toBe(0);
    expect(tokensAt(tat, 100, s)).toBeCloseTo(0.5);
    expect(tokensAt(tat, 200, s)).toBeCloseTo(1);
    expect(tokensAt(tat, 1000, s)).toBeCloseTo(5);
    expect(tokensAt(tat, 4000, s)).toBe(20);
    expect(tokensAt(tat, 60_000, s)).toBe(20); // an idle hour banks nothing beyond the burst
    expect(takeToken(tat, 100, s)).toEqual({ allowed: false, retryAfterMs: 100 });
    expect(takeToken(tat, 200, s)).toMatchObject({ allowed: true });
  });

  it('a long idle time gives a full bucket again, not more', () => {
    const times = [...new Array(20).fill(0), ...new Array(25).fill(3_600_000)];
    const { passed } = run(times, s);
    expect(passed.slice(20).filter(Boolean)).toHaveLength(20);
  });

  it('a steady sender at the rate always passes; slightly faster is cut to the rate', () => {
    const steady = Array.from({ length: 200 }, (_, i) => i * 200);
    expect(run(steady, s).passed.every(Boolean)).toBe(true);
    // 10 per second for 20 seconds: 20 (burst) + 5/s * 20 s, give or take the last interval.
    const fast = Array.from({ length: 200 }, (_, i) => i * 100);
    const through = run(fast, s).passed.filter(Boolean).length;
    expect(through).toBeGreaterThanOrEqual(118);
    expect(through).toBeLessThanOrEqual(121);
  });

  it('fractional rates: one message every two seconds', () => {
    const slow = { perSecond: 0.5, burst: 1 };
    expect(run([0, 1000, 1999, 2000, 3999, 4000], slow).passed).toEqual([true, false, false, true, false, true]);
    expect(run([0, 1500], slow).retry).toEqual([undefined, 500]);
  });

  it('the refusal hint is never more than one interval', () => {
    let tat: number | undefined;
    for (let t = 0; t < 5000; t += 7) {
      const d = takeToken(tat, t, s);
      if (d.allowed) tat = d.tat;
      else {
        expect(d.retryAfterMs).toBeGreaterThan(0);
        expect(d.retryAfterMs).toBeLessThanOrEqual(200);
        // Exactly then a token is there.
        expect(takeToken(tat, t + d.retryAfterMs, s).allowed).toBe(true);
      }
    }
  });
});

describe('limit configuration', () => {
  it('defaults: 5 messages/s with bursts of 20, 500 turns, 24 hours', () => {
    const env = readEnv(FunctionEnv, {});
    expect(limitsFromEnv(env)).toEqual(DEFAULT_LIMITS);
    expect(DEFAULT_LIMITS).toEqual({ ratePerSecond: 5, rateBurst: 20, maxTurns: 500, maxSessionAgeMs: 24 * 3600 * 1000 });
  });

  it('reads the variables, 0 turns a limit off, and refuses nonsense naming the variable', () => {
    const env = readEnv(FunctionEnv, { PARLEY_RATE_PER_SECOND: '0.5', PARLEY_RATE_BURST: '3', PARLEY_MAX_TURNS: '0', PARLEY_MAX_SESSION_AGE_HOURS: '1.5' });
    expect(limitsFromEnv(env)).toEqual({ ratePerSecond: 0.5, rateBurst: 3, maxTurns: 0, maxSessionAgeMs: 1.5 * 3600 * 1000 });
    expect(() => readEnv(FunctionEnv, { PARLEY_RATE_BURST: '0' })).toThrow(/PARLEY_RATE_BURST/);
    expect(() => readEnv(FunctionEnv, { PARLEY_RATE_PER_SECOND: '-1' })).toThrow(/PARLEY_RATE_PER_SECOND/);
    expect(() => readEnv(FunctionEnv, { PARLEY_MAX_TURNS: 'many' })).toThrow(/PARLEY_MAX_TURNS/);
    expect(() => readEnv(FunctionEnv, { PARLEY_MAX_SESSION_AGE_HOURS: '-2' })).toThrow(/PARLEY_MAX_SESSION_AGE_HOURS/);
  });
});
