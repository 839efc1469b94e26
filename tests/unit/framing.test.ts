import { describe, expect, it } from 'vitest';
import { frameEvent, packEvents } from '../../lib/transport/framing';
import { EventAssembler, LIMITS, ServerEvent } from '../../lib/protocol/v1';

const TURN = '3f2b8c1e-7a4d-4e2b-9c1f-5d6e7f8a9b0c';
const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

let counter = 0;
const newId = () => `part-${++counter}`;

function isWellFormed(s: string): boolean {
  // A lone surrogate would mean a code point was cut in half.
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

function deltas(payloads: string[]) {
  return payloads.map((p) => {
    const event = ServerEvent.parse(JSON.parse(p));
    if (event.type !== 'response.text.delta') throw new Error(`expected a delta, got ${event.type}`);
    return event;
  });
}

describe('frameEvent', () => {
  it('passes a small event as one payload, unchanged', () => {
    const event: ServerEvent = { type: 'response.text.delta', turnId: TURN, text: 'Hi there' };
    const payloads = frameEvent(event, newId, 300);
    expect(payloads).toEqual([JSON.stringify(event)]);
  });

  it('passes an event of exactly `limit` bytes as one payload', () => {
    const base = JSON.stringify({ type: 'response.text.done', turnId: TURN, text: '' });
    const event: ServerEvent = { type: 'response.text.done', turnId: TURN, text: 'x'.repeat(300 - bytes(base)) };
    expect(bytes(JSON.stringify(event))).toBe(300);
    expect(frameEvent(event, newId, 300)).toEqual([JSON.stringify(event)]);
  });

  const texts: Array<[string, string]> = [
    ['ASCII', 'The quick brown fox jumps over the lazy dog. '.repeat(30)],
    ['Cyrillic', 'Съешь же ещё этих мягких французских булок, да выпей чаю. '.repeat(20)],
    ['emoji', '☕🍵🍫👋🏽👨‍👩‍👧‍👦 '.repeat(60)],
    ['JSON-escaped characters', 'He said "hi" \\ then\nleft\t\u0001 "again" \\\\ \r\n'.repeat(25)],
    ['mixed', 'a"б\\😀\n'.repeat(120)],
  ];

  it.each(texts)('splits an oversized text delta (%s) into deltas within the limit that join to the original', (_, text) => {
    const event: ServerEvent = { type: 'response.text.delta', turnId: TURN, text };
    const limit = 300;
    expect(bytes(JSON.stringify(event))).toBeGreaterThan(limit);
    const payloads = frameEvent(event, newId, limit);
    expect(payloads.length).toBeGreaterThan(1);
    for (const p of payloads) expect(bytes(p)).toBeLessThanOrEqual(limit);
    const pieces = deltas(payloads);
    for (const d of pieces) {
      expect(d.turnId).toBe(TURN);
      expect(d.text.length).toBeGreaterThan(0);
      expect(isWellFormed(d.text)).toBe(true);
    }
    expect(pieces.map((d) => d.text).join('')).toBe(text);
  });

  it('never splits a surrogate pair even when the budget falls in the middle of one', () => {
    // Shift the emoji boundary by one ASCII char per case so cuts land everywhere.
    for (let pad = 0; pad < 8; pad++) {
      const text = 'x'.repeat(pad) + '😀'.repeat(200);
      const payloads = frameEvent({ type: 'response.text.delta', turnId: TURN, text }, newId, 200);
      const pieces = deltas(payloads);
      for (const d of pieces) expect(isWellFormed(d.text)).toBe(true);
      expect(pieces.map((d) => d.text).join('')).toBe(text);
    }
  });

  it('splits other oversized events into event.part pieces the EventAssembler joins back', () => {
    const text = 'Done! Your "large" cappuccino — большой — ☕🎉 will be ready.\n\\ '.repeat(40);
    const event: ServerEvent = { type: 'response.text.done', turnId: TURN, text };
    const limit = 300;
    const payloads = frameEvent(event, () => 'the-id', limit);
    expect(payloads.length).toBeGreaterThan(1);
    const parts = payloads.map((p) => ServerEvent.parse(JSON.parse(p)));
    parts.forEach((part, i) => {
      expect(bytes(payloads[i]!)).toBeLessThanOrEqual(limit);
      expect(part.type).toBe('event.part');
      if (part.type !== 'event.part') return;
      expect(part.id).toBe('the-id');
      expect(part.index).toBe(i);
      expect(part.count).toBe(payloads.length);
    });
    const assembler = new EventAssembler();
    const results = parts.map((p) => assembler.accept(p));
    expect(results.slice(0, -1).every((r) => r === undefined)).toBe(true);
    expect(results.at(-1)).toEqual(event);
  });

  it('event.part pieces reassemble in reverse order too', () => {
    const event: ServerEvent = { type: 'error', code: 'server.internal', message: 'ошибка "x" '.repeat(80), turnId: TURN };
    const parts = frameEvent(event, newId, 256).map((p) => ServerEvent.parse(JSON.parse(p)));
    expect(parts.length).toBeGreaterThan(2);
    const assembler = new EventAssembler();
    const results = [...parts].reverse().map((p) => assembler.accept(p));
    expect(results.at(-1)).toEqual(event);
  });

  it('uses a fresh id per oversized event', () => {
    const ids: string[] = [];
    const makeId = () => {
      const id = `id-${ids.length}`;
      ids.push(id);
      return id;
    };
    const event: ServerEvent = { type: 'response.text.done', turnId: TURN, text: 'y'.repeat(1000) };
    const first = frameEvent(event, makeId, 300).map((p) => JSON.parse(p) as { id: string });
    const second = frameEvent(event, makeId, 300).map((p) => JSON.parse(p) as { id: string });
    expect(new Set(first.map((p) => p.id))).toEqual(new Set(['id-0']));
    expect(new Set(second.map((p) => p.id))).toEqual(new Set(['id-1']));
  });

  it('respects the default limit (LIMITS.serverMessageBytes) for deltas and parts', () => {
    const text = 'Привет, мир! "quoted" \\ 🎉\n'.repeat(3000);
    const delta: ServerEvent = { type: 'response.text.delta', turnId: TURN, text };
    const deltaPayloads = frameEvent(delta, newId);
    expect(deltaPayloads.length).toBeGreaterThan(1);
    for (const p of deltaPayloads) expect(bytes(p)).toBeLessThanOrEqual(LIMITS.serverMessageBytes);
    expect(deltas(deltaPayloads).map((d) => d.text).join('')).toBe(text);

    const done: ServerEvent = { type: 'response.text.done', turnId: TURN, text };
    const partPayloads = frameEvent(done, newId);
    expect(partPayloads.length).toBeGreaterThan(1);
    for (const p of partPayloads) expect(bytes(p)).toBeLessThanOrEqual(LIMITS.serverMessageBytes);
    const assembler = new EventAssembler();
    let out: ServerEvent | undefined;
    for (const p of partPayloads) out = assembler.accept(ServerEvent.parse(JSON.parse(p)));
    expect(out).toEqual(done);

    const small: ServerEvent = { type: 'turn.started', turnId: TURN };
    expect(frameEvent(small, newId)).toEqual([JSON.stringify(small)]);
  });
});

describe('packEvents', () => {
  const small = (n: number): ServerEvent => ({ type: 'response.text.delta', turnId: TURN, text: `piece ${n}` });
  const receive = (payloads: string[]) => {
    const assembler = new EventAssembler();
    return payloads.flatMap((p) => assembler.receive(p));
  };

  it('sends one event as itself, not as an array', () => {
    expect(packEvents([small(1)], newId)).toEqual([JSON.stringify(small(1))]);
  });

  it('packs consecutive events into one array message, in order', () => {
    const events = [small(1), small(2), { type: 'turn.started', turnId: TURN } as ServerEvent, small(3)];
    const payloads = packEvents(events, newId);
    expect(payloads).toHaveLength(1);
    expect(JSON.parse(payloads[0]!)).toEqual(events);
    expect(receive(payloads)).toEqual(events);
  });

  it('starts a new message when the next event would not fit, every message within the limit', () => {
    const events = Array.from({ length: 40 }, (_, n) => small(n));
    const payloads = packEvents(events, newId, 300);
    expect(payloads.length).toBeGreaterThan(3);
    for (const p of payloads) expect(bytes(p)).toBeLessThanOrEqual(300);
    expect(receive(payloads)).toEqual(events);
  });

  it('frames an oversized event on its own between packed neighbours', () => {
    const huge: ServerEvent = { type: 'response.text.done', turnId: TURN, text: 'ü"\\'.repeat(400) };
    const events = [small(1), huge, small(2)];
    const payloads = packEvents(events, newId, 300);
    for (const p of payloads) expect(bytes(p)).toBeLessThanOrEqual(300);
    expect(receive(payloads)).toEqual(events);
  });

  it('sends nothing for no events', () => {
    expect(packEvents([], newId)).toEqual([]);
  });
});
