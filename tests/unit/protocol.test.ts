import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import * as z from 'zod/mini';
import { parseClientMessage, type ParseResult } from '../../lib/protocol/parse';
import { EventAssembler, LIMITS, ServerEvent } from '../../lib/protocol/v1';

const TURN = '3f2b8c1e-7a4d-4e2b-9c1f-5d6e7f8a9b0c';
const SESSION = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
const TOKEN = 'r'.repeat(32);

function ok(raw: unknown) {
  const result = parseClientMessage(typeof raw === 'string' ? raw : JSON.stringify(raw));
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.message}`);
  return result.message;
}

function fail(raw: unknown): Extract<ParseResult, { ok: false }> {
  const result = parseClientMessage(typeof raw === 'string' ? raw : JSON.stringify(raw));
  if (result.ok) throw new Error(`expected an error, got ${JSON.stringify(result.message)}`);
  return result;
}

describe('parseClientMessage: valid messages', () => {
  it('accepts hello with and without auth', () => {
    expect(ok({ type: 'hello', version: '1' })).toEqual({ type: 'hello', version: '1' });
    expect(ok({ type: 'hello', version: '1', auth: { apiKey: 'secret-key' } })).toEqual({
      type: 'hello',
      version: '1',
      auth: { apiKey: 'secret-key' },
    });
  });

  it('accepts session.start for a new session, with metadata', () => {
    expect(ok({ type: 'session.start' })).toEqual({ type: 'session.start' });
    expect(ok({ type: 'session.start', metadata: { page: '/shop', visits: 3, vip: true } })).toEqual({
      type: 'session.start',
      metadata: { page: '/shop', visits: 3, vip: true },
    });
  });

  it('accepts session.start to resume (sessionId + resumeToken)', () => {
    expect(ok({ type: 'session.start', sessionId: SESSION, resumeToken: TOKEN })).toEqual({
      type: 'session.start',
      sessionId: SESSION,
      resumeToken: TOKEN,
    });
  });

  it('accepts input.text', () => {
    expect(ok({ type: 'input.text', turnId: TURN, text: 'a coffee please' })).toEqual({
      type: 'input.text',
      turnId: TURN,
      text: 'a coffee please',
    });
  });

  it('accepts response.cancel with and without playedMs', () => {
    expect(ok({ type: 'response.cancel', turnId: TURN })).toEqual({ type: 'response.cancel', turnId: TURN });
    expect(ok({ type: 'response.cancel', turnId: TURN, playedMs: 1250 })).toEqual({
      type: 'response.cancel',
      turnId: TURN,
      playedMs: 1250,
    });
  });

  it('accepts session.stop with and without a reason', () => {
    expect(ok({ type: 'session.stop' })).toEqual({ type: 'session.stop' });
    expect(ok({ type: 'session.stop', reason: 'user closed the widget' })).toEqual({
      type: 'session.stop',
      reason: 'user closed the widget',
    });
  });

  it('tolerates unknown extra fields (and strips them)', () => {
    const message = ok({ type: 'input.text', turnId: TURN, text: 'hi', clientVersion: '9.9', extra: { a: 1 } });
    expect(message.type).toBe('input.text');
    expect(message).not.toHaveProperty('extra');
    const stop = ok({ type: 'session.stop', somethingNew: true });
    expect(stop.type).toBe('session.stop');
  });
});

describe('parseClientMessage: errors', () => {
  it('rejects a message over LIMITS.clientMessageBytes with protocol.too_large', () => {
    const text = 'x'.repeat(LIMITS.clientMessageBytes);
    const error = fail({ type: 'input.text', turnId: TURN, text });
    expect(error.code).toBe('protocol.too_large');
    expect(error.message).toContain(String(LIMITS.clientMessageBytes));
  });

  it('checks the size before JSON parsing (oversized garbage is too_large, not invalid_json)', () => {
    const error = fail('{'.repeat(LIMITS.clientMessageBytes + 1));
    expect(error.code).toBe('protocol.too_large');
  });

  it('measures the size in UTF-8 bytes, not characters', () => {
    // Each Cyrillic letter is 2 bytes: fewer characters than the limit, more bytes.
    const raw = 'я'.repeat(LIMITS.clientMessageBytes / 2 + 10);
    expect(raw.length).toBeLessThan(LIMITS.clientMessageBytes);
    expect(fail(raw).code).toBe('protocol.too_large');
  });

  it('accepts a message exactly at the limit as far as size goes', () => {
    const base = JSON.stringify({ type: 'session.stop', reason: '' });
    const padded = base + ' '.repeat(LIMITS.clientMessageBytes - base.length);
    expect(Buffer.byteLength(padded)).toBe(LIMITS.clientMessageBytes);
    expect(parseClientMessage(padded).ok).toBe(true);
  });

  it.each(['', 'not json', '{"type":"hello",', "{'type':'hello'}"])('rejects %j as protocol.invalid_json', (raw) => {
    expect(fail(raw).code).toBe('protocol.invalid_json');
  });

  it('rejects an unknown type', () => {
    expect(fail({ type: 'input.audio', turnId: TURN }).code).toBe('protocol.invalid_message');
    expect(fail({ text: 'no type' }).code).toBe('protocol.invalid_message');
  });

  it.each([null, 42, '"a string"', '[]', 'true'])('rejects the JSON value %j as protocol.invalid_message', (value) => {
    const raw = typeof value === 'string' ? value : JSON.stringify(value);
    const error = fail(raw);
    expect(error.code).toBe('protocol.invalid_message');
    expect(error.turnId).toBeUndefined();
  });

  it('rejects input.text without turnId', () => {
    const error = fail({ type: 'input.text', text: 'hello' });
    expect(error.code).toBe('protocol.invalid_message');
    expect(error.message).toContain('turnId');
    expect(error.turnId).toBeUndefined();
  });

  it('rejects a non-UUID turnId and echoes it back', () => {
    const error = fail({ type: 'input.text', turnId: 'turn-1', text: 'hello' });
    expect(error.code).toBe('protocol.invalid_message');
    expect(error.message).toContain('turnId');
    expect(error.turnId).toBe('turn-1');
  });

  it('rejects response.cancel with a non-UUID turnId', () => {
    expect(fail({ type: 'response.cancel', turnId: '12345' }).code).toBe('protocol.invalid_message');
  });

  it.each(['', '   ', '\n\t '])('rejects empty/whitespace text %j and echoes the turnId', (text) => {
    const error = fail({ type: 'input.text', turnId: TURN, text });
    expect(error.code).toBe('protocol.invalid_message');
    expect(error.message).toContain('text');
    expect(error.turnId).toBe(TURN);
  });

  it('rejects sessionId without resumeToken', () => {
    const error = fail({ type: 'session.start', sessionId: SESSION });
    expect(error.code).toBe('protocol.invalid_message');
    expect(error.message).toContain('resumeToken');
  });

  it('rejects resumeToken without sessionId', () => {
    const error = fail({ type: 'session.start', resumeToken: TOKEN });
    expect(error.code).toBe('protocol.invalid_message');
    expect(error.message).toContain('resumeToken');
  });

  it('does not echo a non-string turnId', () => {
    const error = fail({ type: 'input.text', turnId: 12, text: 'x' });
    expect(error.code).toBe('protocol.invalid_message');
    expect(error.turnId).toBeUndefined();
  });
});

describe('parseClientMessage: readable messages', () => {
  // The schemas are zod/mini, which loads no error-message locale: without the one ../protocol/parse
  // sets, every issue would read "Invalid input". These are the texts classic zod gave.
  const cases: Array<[string, unknown, string]> = [
    ['text too long', { type: 'input.text', turnId: TURN, text: 'x'.repeat(4001) }, 'text: Too big: expected string to have <=4000 characters'],
    ['a non-UUID turnId', { type: 'input.text', turnId: 'nope', text: 'hi' }, 'turnId: Invalid UUID'],
    ['blank text', { type: 'input.text', turnId: TURN, text: '   ' }, 'text: text must not be empty'],
    ['an empty version', { type: 'hello', version: '' }, 'version: Too small: expected string to have >=1 characters'],
    ['a missing version', { type: 'hello' }, 'version: Invalid input: expected string, received undefined'],
    [
      'an unknown type',
      { type: 'nope' },
      "type: Invalid discriminator value. Expected 'hello' | 'session.start' | 'input.text' | 'input.partial' | 'input.audio' | 'input.audio.commit' | 'speech.renew' | 'response.cancel' | 'session.stop'",
    ],
    ['an array', [], 'Invalid input: expected object, received array'],
    [
      'sessionId without resumeToken',
      { type: 'session.start', sessionId: SESSION },
      'resumeToken: sessionId and resumeToken go together: both to resume, neither to start a new session',
    ],
    ['a __proto__ metadata key', '{"type":"session.start","metadata":{"__proto__":1}}', 'metadata: __proto__ is not allowed as a key'],
    [
      'an unknown audio format',
      { type: 'session.start', audio: { format: 'wav', sampleRate: 44100 } },
      'audio.format: Invalid option: expected one of "pcm"|"mp3"; audio.sampleRate: Invalid input',
    ],
    ['an extra audio key', { type: 'session.start', audio: { format: 'pcm', sampleRate: 16000, x: 1 } }, 'audio: Unrecognized key: "x"'],
    ['a fractional playedMs', { type: 'response.cancel', turnId: TURN, playedMs: -1.5 }, 'playedMs: Invalid input: expected int, received number'],
    ['a string playedMs', { type: 'response.cancel', turnId: TURN, playedMs: '3' }, 'playedMs: Invalid input: expected number, received string'],
    ['a reason too long', { type: 'session.stop', reason: 'r'.repeat(201) }, 'reason: Too big: expected string to have <=200 characters'],
  ];

  it.each(cases)('explains %s', (_, raw, message) => {
    expect(fail(raw).message).toBe(message);
  });

  it('sets the English locale itself, whatever else was loaded', async () => {
    const saved = z.config().localeError;
    z.config({ localeError: undefined });
    try {
      vi.resetModules();
      const fresh = await import('../../lib/protocol/parse');
      const result = fresh.parseClientMessage(JSON.stringify({ type: 'hello', version: '' }));
      expect(result).toMatchObject({ ok: false, message: 'version: Too small: expected string to have >=1 characters' });
    } finally {
      z.config({ localeError: saved });
    }
  });
});

describe('EventAssembler', () => {
  const original: ServerEvent = { type: 'response.text.done', turnId: TURN, text: 'Hello, "world" — привет 👋' };

  function partsOf(event: ServerEvent, count: number, id: string = randomUUID()): ServerEvent[] {
    const json = JSON.stringify(event);
    const size = Math.ceil(json.length / count);
    return Array.from({ length: count }, (_, index) => ({
      type: 'event.part' as const,
      id,
      index,
      count,
      data: json.slice(index * size, (index + 1) * size),
    }));
  }

  it('passes normal events through unchanged', () => {
    const assembler = new EventAssembler();
    const event: ServerEvent = { type: 'turn.started', turnId: TURN };
    expect(assembler.accept(event)).toBe(event);
  });

  it('joins parts arriving in order', () => {
    const assembler = new EventAssembler();
    const parts = partsOf(original, 3);
    expect(assembler.accept(parts[0]!)).toBeUndefined();
    expect(assembler.accept(parts[1]!)).toBeUndefined();
    expect(assembler.accept(parts[2]!)).toEqual(original);
  });

  it('joins parts arriving in any order', () => {
    const parts = partsOf(original, 4);
    for (const order of [
      [3, 2, 1, 0],
      [1, 3, 0, 2],
      [2, 0, 3, 1],
    ]) {
      const assembler = new EventAssembler();
      const results = order.map((i) => assembler.accept(parts[i]!));
      expect(results.slice(0, -1)).toEqual([undefined, undefined, undefined]);
      expect(results.at(-1)).toEqual(original);
    }
  });

  it('keeps interleaved part streams with different ids apart, and passes other events through meanwhile', () => {
    const assembler = new EventAssembler();
    const other: ServerEvent = { type: 'response.text.done', turnId: TURN, text: 'something else entirely' };
    const a = partsOf(original, 2, 'a');
    const b = partsOf(other, 2, 'b');
    expect(assembler.accept(a[0]!)).toBeUndefined();
    expect(assembler.accept(b[1]!)).toBeUndefined();
    const passing: ServerEvent = { type: 'session.ended', reason: 'end_call' };
    expect(assembler.accept(passing)).toBe(passing);
    expect(assembler.accept(b[0]!)).toEqual(other);
    expect(assembler.accept(a[1]!)).toEqual(original);
  });

  it('assembles a single-part event', () => {
    const assembler = new EventAssembler();
    expect(assembler.accept(partsOf(original, 1)[0]!)).toEqual(original);
  });
});

describe('ServerEvent schema', () => {
  const traceId = '0123456789abcdef0123456789abcdef';

  it('accepts session.started with a 32-hex traceId', () => {
    const event = { type: 'session.started', sessionId: SESSION, resumeToken: TOKEN, traceId, resumed: false, node: 'welcome', audio: null };
    expect(ServerEvent.parse(event)).toEqual(event);
  });

  it.each([
    ['too short', traceId.slice(1)],
    ['too long', traceId + '0'],
    ['uppercase', traceId.toUpperCase()],
    ['non-hex', 'g'.repeat(32)],
    ['with dashes', '01234567-89ab-cdef-0123-456789abcdef'],
  ])('rejects session.started with a malformed traceId (%s)', (_, bad) => {
    const event = { type: 'session.started', sessionId: SESSION, resumeToken: TOKEN, traceId: bad, resumed: false, node: 'welcome' };
    expect(ServerEvent.safeParse(event).success).toBe(false);
  });

  it('accepts the other events the server produces', () => {
    const events = [
      { type: 'hello.ack', version: '1' },
      { type: 'turn.started', turnId: TURN },
      { type: 'response.text.delta', turnId: TURN, text: 'Hi' },
      { type: 'response.text.done', turnId: TURN, text: 'Hi' },
      { type: 'node.transition', turnId: TURN, from: null, to: 'welcome' },
      { type: 'node.transition', turnId: TURN, from: 'welcome', to: 'size' },
      { type: 'session.ended', reason: 'end_call' },
      { type: 'session.stopped', reason: 'client' },
      { type: 'error', code: 'protocol.invalid_json', message: 'not JSON' },
      { type: 'error', code: 'turn.conflict', message: 'busy', turnId: TURN },
      { type: 'event.part', id: 'x', index: 0, count: 2, data: '{"ty' },
    ];
    for (const event of events) expect(ServerEvent.safeParse(event).success, JSON.stringify(event)).toBe(true);
  });

  it('fills usage defaults on turn.completed', () => {
    const parsed = ServerEvent.parse({ type: 'turn.completed', turnId: TURN, usage: {}, metrics: { runMs: 3, totalMs: 9, t1: 2 } });
    expect(parsed).toEqual({
      type: 'turn.completed',
      turnId: TURN,
      usage: { llm: {}, ttsCharacters: 0, sttSeconds: 0 },
      metrics: { runMs: 3, totalMs: 9, t1: 2 },
    });
  });

  it('rejects an error event with an unknown code and an event.part with a negative index', () => {
    expect(ServerEvent.safeParse({ type: 'error', code: 'nope', message: 'x' }).success).toBe(false);
    expect(ServerEvent.safeParse({ type: 'event.part', id: 'x', index: -1, count: 2, data: '' }).success).toBe(false);
    expect(ServerEvent.safeParse({ type: 'event.part', id: 'x', index: 0, count: 0, data: '' }).success).toBe(false);
  });
});
