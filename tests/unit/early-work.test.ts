import { afterEach, describe, expect, it, vi } from 'vitest';
import { cacheKey, type AudioCache, type CachedAudio } from '../../lib/speech/audio-cache';
import type { AudioFormat } from '../../lib/speech/format';
import type { Voice } from '../../lib/speech/tts/port';
import { EarlyWork, withPrepared, type PreparedTurn } from '../../lib/session/early-work';

/*
 * The host's memory of turns prepared on partial transcripts (EarlyWork) and the audio cache a
 * turn's player reads through it (withPrepared). preparePartial is covered by the integration tests.
 */

describe('EarlyWork', () => {
  /** A clock the test moves. */
  const clock = () => {
    let t = 1_000_000;
    return { now: () => t, advance: (ms: number) => void (t += ms) };
  };

  it('begin makes an empty entry stamped with now, and peek finds it under its session and turn', () => {
    const c = clock();
    const early = new EarlyWork({ now: c.now });
    const turn = early.begin('s1', 't1', 7);
    expect(turn).toMatchObject({ baseSeq: 7, partials: 0, intent: null, ttsCharacters: 0, createdAt: 1_000_000 });
    expect(turn.audio.size).toBe(0);
    expect(turn.used.size).toBe(0);
    expect(turn.abort.signal.aborted).toBe(false);
    expect(early.peek('s1', 't1')).toBe(turn);
    // Another turn of the session, or the same turn id of another session, is another entry.
    expect(early.peek('s1', 't2')).toBeUndefined();
    expect(early.peek('s2', 't1')).toBeUndefined();
    expect(early.size).toBe(1);
  });

  it('begin on the same checkpoint returns the same entry (its work kept)', () => {
    const early = new EarlyWork();
    const first = early.begin('s1', 't1', 3);
    first.partials = 2;
    first.intent = 'order';
    const again = early.begin('s1', 't1', 3);
    expect(again).toBe(first);
    expect(again.partials).toBe(2);
    expect(first.abort.signal.aborted).toBe(false);
    expect(early.size).toBe(1);
  });

  it('a null baseSeq (no checkpoint yet) is a checkpoint like any other', () => {
    const early = new EarlyWork();
    const first = early.begin('s1', 't1', null);
    expect(early.begin('s1', 't1', null)).toBe(first);
    const onSeq = early.begin('s1', 't1', 0);
    expect(onSeq).not.toBe(first);
    expect(first.abort.signal.aborted).toBe(true);
  });

  it('begin on another checkpoint replaces the entry and aborts the old one', () => {
    const c = clock();
    const early = new EarlyWork({ now: c.now });
    const old = early.begin('s1', 't1', 3);
    old.partials = 4;
    old.audio.set('k', Promise.resolve(undefined));
    c.advance(50);
    const fresh = early.begin('s1', 't1', 4);
    expect(fresh).not.toBe(old);
    expect(old.abort.signal.aborted).toBe(true);
    expect(fresh.abort.signal.aborted).toBe(false);
    expect(fresh).toMatchObject({ baseSeq: 4, partials: 0, createdAt: 1_000_050 });
    expect(fresh.audio.size).toBe(0);
    expect(early.peek('s1', 't1')).toBe(fresh);
    expect(early.size).toBe(1);
  });

  it('holds at most maxTurns, dropping (and aborting) the oldest first', () => {
    const early = new EarlyWork({ maxTurns: 3 });
    const a = early.begin('s', 'a', 1);
    const b = early.begin('s', 'b', 1);
    const c = early.begin('s', 'c', 1);
    expect(early.size).toBe(3);
    const d = early.begin('s', 'd', 1);
    expect(early.size).toBe(3);
    expect(early.peek('s', 'a')).toBeUndefined();
    expect(a.abort.signal.aborted).toBe(true);
    for (const [id, turn] of [['b', b], ['c', c], ['d', d]] as const) {
      expect(early.peek('s', id)).toBe(turn);
      expect(turn.abort.signal.aborted).toBe(false);
    }
    // A replaced entry counts as new: b, re-begun on another checkpoint, outlives c.
    const b2 = early.begin('s', 'b', 2);
    early.begin('s', 'e', 1);
    expect(c.abort.signal.aborted).toBe(true);
    expect(early.peek('s', 'c')).toBeUndefined();
    expect(early.peek('s', 'b')).toBe(b2);
    expect(early.peek('s', 'd')).toBe(d);
    expect(early.size).toBe(3);
  });

  it('an entry older than ttlMs is gone (and aborted); one at exactly ttlMs is still there', () => {
    const c = clock();
    const early = new EarlyWork({ ttlMs: 1000, now: c.now });
    const old = early.begin('s', 'old', 1);
    c.advance(600);
    const young = early.begin('s', 'young', 1);
    c.advance(400); // old is exactly 1000 ms old
    expect(early.peek('s', 'old')).toBe(old);
    c.advance(1);
    expect(early.peek('s', 'old')).toBeUndefined();
    expect(old.abort.signal.aborted).toBe(true);
    expect(early.peek('s', 'young')).toBe(young);
    expect(early.size).toBe(1);
    c.advance(600);
    expect(early.peek('s', 'young')).toBeUndefined();
    expect(young.abort.signal.aborted).toBe(true);
    expect(early.size).toBe(0);
  });

  it('begin also expires old entries, and an expired turn begun again is fresh', () => {
    const c = clock();
    const early = new EarlyWork({ ttlMs: 1000, now: c.now });
    const old = early.begin('s', 't', 1);
    old.partials = 3;
    early.begin('s', 'other', 1);
    c.advance(1001);
    const again = early.begin('s', 't', 1); // the same checkpoint, but the old guess expired
    expect(again).not.toBe(old);
    expect(again.partials).toBe(0);
    expect(old.abort.signal.aborted).toBe(true);
    expect(early.size).toBe(1);
  });

  it('forget drops the entry and aborts its work; forgetting an unknown turn is harmless', () => {
    const early = new EarlyWork();
    const turn = early.begin('s', 't', 1);
    const other = early.begin('s', 'u', 1);
    early.forget('s', 't');
    expect(early.peek('s', 't')).toBeUndefined();
    expect(turn.abort.signal.aborted).toBe(true);
    expect(early.peek('s', 'u')).toBe(other);
    expect(() => early.forget('s', 'nothing')).not.toThrow();
    expect(early.size).toBe(1);
  });

  it('uses its defaults: 4 items, 1500 ms wait, 64 turns, 30 s', () => {
    let t = 0;
    const early = new EarlyWork({ now: () => t });
    expect(early.maxItems).toBe(4);
    expect(early.waitMs).toBe(1500);
    const first = early.begin('s', 't0', 1);
    for (let i = 1; i < 64; i++) early.begin('s', `t${i}`, 1);
    expect(early.peek('s', 't0')).toBe(first);
    early.begin('s', 't64', 1);
    expect(early.peek('s', 't0')).toBeUndefined();
    t = 30_000;
    expect(early.peek('s', 't1')).toBeDefined();
    t = 30_001;
    expect(early.peek('s', 't1')).toBeUndefined();
    expect(early.size).toBe(0);
  });
});

describe('withPrepared', () => {
  const voice: Voice = { provider: 'espeak', id: 'en-us', language: 'en' };
  const format: AudioFormat = { format: 'pcm', sampleRate: 16000 };
  const audioOf = (byte: number, n = 32): CachedAudio => ({ audio: new Uint8Array(n).fill(byte), durationMs: n / 32, marks: [] });

  /** An underlying cache that answers from `entries` and records every text asked. */
  function recordingCache(entries: Record<string, CachedAudio> = {}) {
    const asked: string[] = [];
    const cache: AudioCache = {
      async get(text) {
        asked.push(text);
        return entries[text];
      },
    };
    return { cache, asked };
  }

  function prepared(): PreparedTurn {
    return new EarlyWork().begin('s', 't', 1);
  }

  afterEach(() => {
    vi.useRealTimers();
  });

  it('with nothing prepared (no turn, or a turn with no audio) is the underlying cache itself', () => {
    const { cache } = recordingCache();
    expect(withPrepared(cache, undefined, 100)).toBe(cache);
    expect(withPrepared(cache, prepared(), 100)).toBe(cache);
  });

  it('serves prepared audio first, without asking the cache, and records its key in used', async () => {
    const fromCache = audioOf(1);
    const early = audioOf(2);
    const { cache, asked } = recordingCache({ Hello: fromCache });
    const turn = prepared();
    const key = cacheKey('Hello', voice, format);
    turn.audio.set(key, Promise.resolve(early));
    const reader = withPrepared(cache, turn, 1000);
    expect(await reader.get('Hello', voice, format)).toBe(early);
    expect(asked).toEqual([]);
    expect([...turn.used]).toEqual([key]);
  });

  it('asks the cache for what was not prepared, and records nothing for it', async () => {
    const fromCache = audioOf(1);
    const { cache, asked } = recordingCache({ Bye: fromCache });
    const turn = prepared();
    turn.audio.set(cacheKey('Hello', voice, format), Promise.resolve(audioOf(2)));
    const reader = withPrepared(cache, turn, 1000);
    expect(await reader.get('Bye', voice, format)).toBe(fromCache);
    expect(await reader.get('Unknown', voice, format)).toBeUndefined();
    expect(asked).toEqual(['Bye', 'Unknown']);
    expect(turn.used.size).toBe(0);
  });

  it('matches by the whole cache key: the same text in another voice or format is not the prepared audio', async () => {
    const { cache, asked } = recordingCache();
    const turn = prepared();
    turn.audio.set(cacheKey('Hello', voice, format), Promise.resolve(audioOf(2)));
    const reader = withPrepared(cache, turn, 1000);
    expect(await reader.get('Hello', { ...voice, id: 'en-gb' }, format)).toBeUndefined();
    expect(await reader.get('Hello', voice, { format: 'pcm', sampleRate: 8000 })).toBeUndefined();
    expect(asked).toEqual(['Hello', 'Hello']);
    expect(turn.used.size).toBe(0);
  });

  it('a prepared item that resolves undefined (not rendered) falls through to the cache', async () => {
    const fromCache = audioOf(1);
    const { cache, asked } = recordingCache({ Hello: fromCache });
    const turn = prepared();
    turn.audio.set(cacheKey('Hello', voice, format), Promise.resolve(undefined));
    const reader = withPrepared(cache, turn, 1000);
    expect(await reader.get('Hello', voice, format)).toBe(fromCache);
    expect(asked).toEqual(['Hello']);
    expect(turn.used.size).toBe(0);
  });

  it('waits for an item still rendering when it arrives within waitMs', async () => {
    vi.useFakeTimers();
    const early = audioOf(3);
    const { cache, asked } = recordingCache({ Hello: audioOf(1) });
    const turn = prepared();
    const key = cacheKey('Hello', voice, format);
    let finish!: (a: CachedAudio) => void;
    turn.audio.set(key, new Promise<CachedAudio>((resolve) => (finish = resolve)));
    const reader = withPrepared(cache, turn, 1000);
    let got: CachedAudio | undefined | 'pending' = 'pending';
    const asking = reader.get('Hello', voice, format).then((a) => (got = a));
    await vi.advanceTimersByTimeAsync(900);
    expect(got).toBe('pending');
    finish(early);
    await asking;
    expect(got).toBe(early);
    expect(asked).toEqual([]);
    expect([...turn.used]).toEqual([key]);
    // Its timer was cleared: nothing is left waiting.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('waits at most waitMs for an item still rendering, then asks the cache (and does not count it used)', async () => {
    vi.useFakeTimers();
    const fromCache = audioOf(1);
    const { cache, asked } = recordingCache({ Hello: fromCache });
    const turn = prepared();
    let finish!: (a: CachedAudio) => void;
    turn.audio.set(cacheKey('Hello', voice, format), new Promise<CachedAudio>((resolve) => (finish = resolve)));
    const reader = withPrepared(cache, turn, 1000);
    let got: CachedAudio | undefined | 'pending' = 'pending';
    const asking = reader.get('Hello', voice, format).then((a) => (got = a));
    await vi.advanceTimersByTimeAsync(999);
    expect(got).toBe('pending');
    expect(asked).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await asking;
    expect(got).toBe(fromCache);
    expect(asked).toEqual(['Hello']);
    expect(turn.used.size).toBe(0);
    // Audio finished after the wait is not taken back.
    finish(audioOf(3));
    await Promise.resolve();
    expect(turn.used.size).toBe(0);
  });
});
