import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ParleyError } from '../../lib/errors';
import { migrateCheckpoint } from '../../lib/checkpoint/migrations';
import { CHECKPOINT_VERSION, Checkpoint, emptyCheckpoint } from '../../lib/checkpoint/schema';
import { traceIdFor } from '../../lib/checkpoint/trace';
import { COMPRESS_ABOVE_BYTES, decodeBody, encodeBody, type TurnRecord } from '../../lib/checkpoint/record';

const fixtureV0 = (): Record<string, unknown> =>
  JSON.parse(readFileSync(new URL('../fixtures/checkpoint-v0.json', import.meta.url), 'utf8')) as Record<string, unknown>;

function expectParleyError(fn: () => unknown, code: string): ParleyError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ParleyError);
    expect((err as ParleyError).code).toBe(code);
    return err as ParleyError;
  }
  throw new Error(`expected ParleyError ${code}, nothing was thrown`);
}

describe('migrateCheckpoint', () => {
  const expectedFromFixture = {
    version: 1,
    currentNode: 'size',
    nodeHistory: [],
    variables: { drink: 'coffee', customer_name: 'Ada', loyalty_points: 120 },
    messages: [
      { role: 'system', content: 'You are the ordering assistant of Parley Café.' },
      { role: 'assistant', content: 'Hi, welcome to Parley Café! Would you like a coffee, a tea or a hot chocolate?' },
      { role: 'user', content: 'a latte please' },
      { role: 'assistant', content: 'Great, a coffee. Small, medium or large?' },
    ],
    toolState: { lookup_menu: { calls: 1, last_result: 'ok' } },
    previousIntentLeader: null,
    turnState: 'user',
    ended: false,
  };

  it('migrates a version-0 checkpoint without a version field (the fixture) to the current version', () => {
    const raw = fixtureV0();
    expect(raw).not.toHaveProperty('version');
    const migrated = migrateCheckpoint(raw);
    expect(CHECKPOINT_VERSION).toBe(1);
    expect(migrated).toEqual(expectedFromFixture);
    // No snake_case leftovers.
    expect(Object.keys(migrated).sort()).toEqual(Object.keys(expectedFromFixture).sort());
  });

  it('migrates a checkpoint with an explicit version 0 the same way', () => {
    expect(migrateCheckpoint({ ...fixtureV0(), version: 0 })).toEqual(expectedFromFixture);
  });

  it('does not mutate its input', () => {
    const raw = fixtureV0();
    const copy = structuredClone(raw);
    migrateCheckpoint(raw);
    expect(raw).toEqual(copy);
  });

  it('fills defaults for a bare or null-valued version-0 checkpoint (the seed default)', () => {
    const defaults = {
      version: 1,
      currentNode: null,
      nodeHistory: [],
      variables: {},
      messages: [],
      toolState: {},
      previousIntentLeader: null,
      turnState: 'user',
      ended: false,
    };
    expect(migrateCheckpoint({})).toEqual(defaults);
    expect(
      migrateCheckpoint({
        version: 0,
        anchor_turn_id: null,
        current_node_id: null,
        messages: [],
        gathered_context: {},
        tool_state: {},
      }),
    ).toEqual(defaults);
  });

  it('normalizes a v1 checkpoint missing optional fields to the defaults', () => {
    expect(migrateCheckpoint({ version: 1, currentNode: 'confirm', variables: { size: 'large' } })).toEqual({
      version: 1,
      currentNode: 'confirm',
      nodeHistory: [],
      variables: { size: 'large' },
      messages: [],
      toolState: {},
      previousIntentLeader: null,
      turnState: 'user',
      ended: false,
    });
    expect(migrateCheckpoint({ version: 1 })).toEqual(emptyCheckpoint());
  });

  it('keeps every field of a complete v1 checkpoint', () => {
    const full: Checkpoint = {
      version: 1,
      currentNode: 'placed',
      nodeHistory: ['welcome', 'size', 'confirm'],
      variables: { drink: 'tea', size: 'small' },
      messages: [{ role: 'user', content: 'yes' }, { role: 'tool', content: '{}', tool_call_id: 'c1' }],
      toolState: { x: 1 },
      previousIntentLeader: 'yes',
      turnState: 'bot',
      ended: true,
    };
    expect(migrateCheckpoint(structuredClone(full))).toEqual(full);
  });

  it('throws checkpoint.version_unsupported for a future version', () => {
    const err = expectParleyError(() => migrateCheckpoint({ version: 2, currentNode: 'welcome' }), 'checkpoint.version_unsupported');
    expect(err.message).toContain('2');
    expectParleyError(() => migrateCheckpoint({ version: 99 }), 'checkpoint.version_unsupported');
  });

  it.each([
    ['null', null],
    ['an array', []],
    ['a string', 'checkpoint'],
    ['a number', 1],
    ['undefined', undefined],
  ])('throws checkpoint.invalid for %s', (_, input) => {
    expectParleyError(() => migrateCheckpoint(input), 'checkpoint.invalid');
  });

  it.each([
    ['negative', -1],
    ['non-integer', 0.5],
    ['string', '1'],
    ['NaN', Number.NaN],
  ])('throws checkpoint.invalid for a %s version', (_, version) => {
    expectParleyError(() => migrateCheckpoint({ version }), 'checkpoint.invalid');
  });

  it('throws checkpoint.invalid (naming the field) when a v1 field has the wrong type', () => {
    const err = expectParleyError(() => migrateCheckpoint({ version: 1, nodeHistory: 'welcome' }), 'checkpoint.invalid');
    expect(err.message).toContain('nodeHistory');
    expectParleyError(() => migrateCheckpoint({ version: 1, messages: [{ role: 'robot', content: 'x' }] }), 'checkpoint.invalid');
  });

  it('throws checkpoint.invalid when migrated v0 data does not fit the schema', () => {
    expectParleyError(() => migrateCheckpoint({ current_node_id: 7 }), 'checkpoint.invalid');
  });
});

describe('migrateCheckpoint from seed conversations with tool calls', () => {
  it('keeps an assistant message whose content is null (it only called a tool) as empty text', () => {
    const raw = {
      ...fixtureV0(),
      messages: [
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup_menu', arguments: '{}' } }] },
        { role: 'tool', content: '{"ok":true}', tool_call_id: 'c1' },
      ],
    };
    const migrated = migrateCheckpoint(raw);
    expect(migrated.messages[0]).toMatchObject({ role: 'assistant', content: '', tool_calls: [{ id: 'c1' }] });
    expect(migrated.messages[1]).toMatchObject({ role: 'tool', content: '{"ok":true}' });
  });
});

describe('traceIdFor', () => {
  const sessionA = '6f1c0e8a-2b3d-4c5e-8f90-123456789abc';
  const sessionB = '6f1c0e8a-2b3d-4c5e-8f90-123456789abd';

  it('is 32 lowercase hex digits', () => {
    for (const id of [sessionA, '', 'x', 'Ünïcödé 🎉']) expect(traceIdFor(id)).toMatch(/^[0-9a-f]{32}$/);
  });

  it('is deterministic for the same id and differs for different ids', () => {
    expect(traceIdFor(sessionA)).toBe(traceIdFor(sessionA));
    expect(traceIdFor(sessionA)).not.toBe(traceIdFor(sessionB));
  });

  it('is the first 32 hex digits of sha256("parley.trace.v1:" + id)', () => {
    for (const id of [sessionA, sessionB, 'plain-id']) {
      const expected = createHash('sha256').update(`parley.trace.v1:${id}`, 'utf8').digest('hex').slice(0, 32);
      expect(traceIdFor(id)).toBe(expected);
    }
  });

  it('matches a known vector', () => {
    // sha256("parley.trace.v1:abc"), computed outside the module.
    const full = createHash('sha256').update('parley.trace.v1:abc').digest('hex');
    expect(full).toHaveLength(64);
    expect(traceIdFor('abc')).toBe(full.slice(0, 32));
    expect(traceIdFor('abc')).not.toBe(createHash('sha256').update('abc').digest('hex').slice(0, 32));
  });
});

describe('encodeBody / decodeBody', () => {
  const TURN = '3f2b8c1e-7a4d-4e2b-9c1f-5d6e7f8a9b0c';

  function record(checkpoint: Checkpoint, text = 'Great, a coffee. Small, medium or large?'): TurnRecord {
    return {
      seq: 2,
      turnId: TURN,
      status: 'completed',
      createdAt: '2025-01-02T03:04:05.000Z',
      input: { kind: 'text', text: 'a coffee' },
      outputs: [
        { type: 'turn.started', turnId: TURN },
        { type: 'node.transition', turnId: TURN, from: 'welcome', to: 'size' },
        { type: 'response.text.done', turnId: TURN, text },
      ],
      events: [
        { type: 'intent', intent: 'coffee', score: 1, atMs: 0.5 },
        { type: 'node_transition', from: 'welcome', to: 'size', atMs: 1 },
      ],
      usage: { llm: { 'gpt-x': { inputTokens: 10, outputTokens: 5, cachedTokens: 0 } }, ttsCharacters: 12, sttSeconds: 0 },
      metrics: { runMs: 3.25, totalMs: 12 },
      checkpoint,
    };
  }

  const body = (r: TurnRecord) => ({
    input: r.input,
    outputs: r.outputs,
    events: r.events,
    usage: r.usage,
    metrics: r.metrics,
    checkpoint: r.checkpoint,
  });

  it('stores a small record as JSON and round-trips it', () => {
    const r = record({ ...emptyCheckpoint(), currentNode: 'size', variables: { drink: 'coffee' } });
    const encoded = encodeBody(r);
    expect('json' in encoded).toBe(true);
    expect('compressed' in encoded).toBe(false);
    expect(decodeBody(encoded)).toEqual(body(r));
  });

  it('compresses a large record (> COMPRESS_ABOVE_BYTES), smaller than its JSON, and round-trips it', () => {
    const messages = Array.from({ length: 200 }, (_, i) => ({
      role: i % 2 ? ('assistant' as const) : ('user' as const),
      content: `Message number ${i}: I would like a medium latte with oat milk, please. Привет! ☕`,
    }));
    const r = record({ ...emptyCheckpoint(), currentNode: 'confirm', messages, nodeHistory: ['welcome', 'size'] });
    const json = JSON.stringify(body(r));
    expect(Buffer.byteLength(json)).toBeGreaterThan(COMPRESS_ABOVE_BYTES);
    const encoded = encodeBody(r);
    expect('compressed' in encoded).toBe(true);
    if (!('compressed' in encoded)) throw new Error('unreachable');
    expect(encoded.compressed.byteLength).toBeLessThan(Buffer.byteLength(json));
    expect(decodeBody(encoded)).toEqual(body(r));
  });

  it('switches to compression right above the threshold', () => {
    const base = record(emptyCheckpoint(), '');
    const baseSize = Buffer.byteLength(JSON.stringify(body(base)));
    const atLimit = record(emptyCheckpoint(), 'a'.repeat(COMPRESS_ABOVE_BYTES - baseSize));
    expect(Buffer.byteLength(JSON.stringify(body(atLimit)))).toBe(COMPRESS_ABOVE_BYTES);
    expect('json' in encodeBody(atLimit)).toBe(true);
    const overLimit = record(emptyCheckpoint(), 'a'.repeat(COMPRESS_ABOVE_BYTES - baseSize + 1));
    expect('compressed' in encodeBody(overLimit)).toBe(true);
  });

  it('migrates a v0 checkpoint stored inside a body', () => {
    const r = record(emptyCheckpoint());
    const stored = JSON.stringify({ ...body(r), checkpoint: fixtureV0() });
    const decoded = decodeBody({ json: stored });
    expect(decoded.checkpoint.version).toBe(1);
    expect(decoded.checkpoint.currentNode).toBe('size');
    expect(decoded.checkpoint.variables).toEqual({ drink: 'coffee', customer_name: 'Ada', loyalty_points: 120 });
    expect(decoded.checkpoint.toolState).toEqual({ lookup_menu: { calls: 1, last_result: 'ok' } });
    expect(decoded.checkpoint.messages).toHaveLength(4);
    expect(decoded.checkpoint.nodeHistory).toEqual([]);
    expect(decoded.checkpoint.ended).toBe(false);
  });

  it('rejects a body holding a future checkpoint version', () => {
    const stored = JSON.stringify({ ...body(record(emptyCheckpoint())), checkpoint: { version: 2 } });
    expectParleyError(() => decodeBody({ json: stored }), 'checkpoint.version_unsupported');
  });
});
