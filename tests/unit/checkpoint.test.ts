import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { migrateCheckpoint } from '../../lib/checkpoint/migrations';
import { CHECKPOINT_VERSION, Checkpoint, emptyCheckpoint } from '../../lib/checkpoint/schema';
import { traceIdFor } from '../../lib/checkpoint/trace';
import { COMPRESS_ABOVE_BYTES, decodeBody, encodeBody, encodeBounded, MAX_BODY_BYTES, type TurnRecord } from '../../lib/checkpoint/record';
import { thrownParleyError } from '../support/errors';

/** The session usage a checkpoint starts with (and a pre-v3 checkpoint gets). */
const NO_USAGE = { llm: {}, ttsCharacters: 0, sttSeconds: 0 };

const fixtureV0 = (): Record<string, unknown> =>
  JSON.parse(readFileSync(new URL('../fixtures/checkpoint-v0.json', import.meta.url), 'utf8')) as Record<string, unknown>;

describe('migrateCheckpoint', () => {
  const expectedFromFixture = {
    version: 5,
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
    language: null,
    pending: null,
    summary: null,
    recentTurns: [],
    // Version 5 starts the transcript from the messages a checkpoint already had.
    transcript: [
      { role: 'assistant', text: 'Hi, welcome to Parley Café! Would you like a coffee, a tea or a hot chocolate?' },
      { role: 'user', text: 'a latte please' },
      { role: 'assistant', text: 'Great, a coffee. Small, medium or large?' },
    ],
    transcriptCut: false,
    usage: NO_USAGE,
  };

  it('migrates a version-0 checkpoint without a version field (the fixture) to the current version', () => {
    const raw = fixtureV0();
    expect(raw).not.toHaveProperty('version');
    const migrated = migrateCheckpoint(raw);
    expect(CHECKPOINT_VERSION).toBe(5);
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
      version: 5,
      currentNode: null,
      nodeHistory: [],
      variables: {},
      messages: [],
      toolState: {},
      previousIntentLeader: null,
      turnState: 'user',
      ended: false,
      language: null,
      pending: null,
      summary: null,
      recentTurns: [],
      transcript: [],
      transcriptCut: false,
      usage: NO_USAGE,
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

  it('migrates a v1 checkpoint missing optional fields to v5 with the defaults', () => {
    expect(migrateCheckpoint({ version: 1, currentNode: 'confirm', variables: { size: 'large' } })).toEqual({
      version: 5,
      currentNode: 'confirm',
      nodeHistory: [],
      variables: { size: 'large' },
      messages: [],
      toolState: {},
      previousIntentLeader: null,
      turnState: 'user',
      ended: false,
      language: null,
      pending: null,
      summary: null,
      recentTurns: [],
      transcript: [],
      transcriptCut: false,
      usage: NO_USAGE,
    });
    expect(migrateCheckpoint({ version: 1 })).toEqual(emptyCheckpoint());
  });

  it('migrates a complete v1 checkpoint to v5, keeping every field and adding language, pending, summary (null), recent turns (none), the transcript (from its messages) and usage (zero)', () => {
    const v1 = {
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
    const migrated = migrateCheckpoint(structuredClone(v1));
    expect(migrated).toEqual({
      ...v1,
      version: 5,
      language: null,
      pending: null,
      summary: null,
      recentTurns: [],
      transcript: [{ role: 'user', text: 'yes' }],
      transcriptCut: false,
      usage: NO_USAGE,
    });
  });

  it('does not mutate a v1 input', () => {
    const v1 = { version: 1, currentNode: 'confirm', variables: { size: 'large' } };
    const copy = structuredClone(v1);
    migrateCheckpoint(v1);
    expect(v1).toEqual(copy);
  });

  it('normalizes a v2 checkpoint missing optional fields to the defaults', () => {
    expect(migrateCheckpoint({ version: 2 })).toEqual(emptyCheckpoint());
    expect(migrateCheckpoint({ version: 2, currentNode: 'welcome', language: 'ru', pending: { intent: 'order_drink' } })).toEqual({
      ...emptyCheckpoint(),
      currentNode: 'welcome',
      language: 'ru',
      pending: { intent: 'order_drink', values: {}, asked: 0 },
    });
  });

  it('migrates a complete v2 checkpoint to v5, keeping every field and adding summary (null), recent turns (none), the transcript and usage (zero)', () => {
    const v2 = {
      version: 2,
      currentNode: 'welcome',
      nodeHistory: ['welcome', 'menu'],
      variables: { drink: 'tea', order: { id: 'A17' } },
      messages: [{ role: 'user', content: 'a tea' }, { role: 'tool', content: '{}', tool_call_id: 'c1' }],
      toolState: { x: 1 },
      previousIntentLeader: 'order_drink',
      turnState: 'bot',
      ended: false,
      language: 'ru',
      pending: { intent: 'order_drink', values: { drink: 'black tea', quantity: 2 }, asked: 2 },
    };
    const migrated = migrateCheckpoint(structuredClone(v2));
    expect(migrated).toEqual({ ...v2, version: 5, summary: null, recentTurns: [], transcript: [{ role: 'user', text: 'a tea' }], transcriptCut: false, usage: NO_USAGE });
    expect(Object.keys(migrated).sort()).toEqual([...Object.keys(v2), 'summary', 'recentTurns', 'transcript', 'transcriptCut', 'usage'].sort());
  });

  it('does not mutate a v2 input', () => {
    const v2 = { version: 2, currentNode: 'welcome', language: 'ru' };
    const copy = structuredClone(v2);
    migrateCheckpoint(v2);
    expect(v2).toEqual(copy);
  });

  it('migrates a complete v3 checkpoint to v5, keeping every field and remembering no turns yet', () => {
    const v3 = { version: 3, currentNode: 'welcome', summary: 'Earlier: a latte.', usage: NO_USAGE, turnState: 'bot' };
    // A summary means older lines were folded away: the transcript says so.
    expect(migrateCheckpoint(structuredClone(v3))).toEqual({ ...emptyCheckpoint(), ...v3, version: 5, recentTurns: [], transcript: [], transcriptCut: true });
  });

  it('migrates a v4 checkpoint to v5: the transcript is its messages as the user saw them', () => {
    const v4 = {
      version: 4,
      currentNode: 'menu',
      messages: [
        { role: 'system', content: 'You are the café assistant.' },
        { role: 'assistant', content: 'Hi there!' },
        { role: 'user', content: 'do you have oat milk?' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'c1', name: 'lookup_menu', arguments: '{}' }] },
        { role: 'tool', content: '{"oat":true}', tool_call_id: 'c1' },
        { role: 'assistant', content: 'We do.' },
        { role: 'assistant', content: 'It costs fifty', interrupted: true },
      ],
    };
    const migrated = migrateCheckpoint(structuredClone(v4));
    expect(migrated.version).toBe(5);
    expect(migrated.messages).toEqual(v4.messages);
    expect(migrated.transcript).toEqual([
      { role: 'assistant', text: 'Hi there!' },
      { role: 'user', text: 'do you have oat milk?' },
      { role: 'assistant', text: 'We do. It costs fifty', interrupted: true },
    ]);
    expect(migrated.transcriptCut).toBe(false);
  });

  it('keeps every field of a complete v5 checkpoint (summary, recent turns, transcript and session usage included)', () => {
    const full: Checkpoint = {
      version: 5,
      currentNode: 'welcome',
      nodeHistory: ['welcome', 'menu'],
      variables: { drink: 'tea', order: { id: 'A17' } },
      messages: [
        { role: 'user', content: 'a tea' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'c1', name: 'lookup_menu', arguments: '{"item":"tea"}' }] },
        { role: 'tool', content: '{}', tool_call_id: 'c1' },
      ],
      toolState: { x: 1 },
      previousIntentLeader: 'order_drink',
      turnState: 'bot',
      ended: false,
      language: 'ru',
      pending: { intent: 'order_drink', values: { drink: 'black tea', quantity: 2 }, asked: 2 },
      summary: 'The user, Ada, ordered a black tea and asked about oat milk.',
      recentTurns: [{ turnId: '9b2f0c56-1f0e-4a43-9b55-3f5c8f3b1d11', seq: 7 }],
      transcript: [
        { role: 'user', text: 'a tea' },
        { role: 'assistant', text: 'One black tea, coming', interrupted: true },
      ],
      transcriptCut: true,
      usage: {
        llm: {
          'gpt-4o-mini': { inputTokens: 1200, outputTokens: 340, cachedTokens: 512 },
          'gpt-4o': { inputTokens: 10, outputTokens: 2, cachedTokens: 0 },
        },
        ttsCharacters: 420,
        sttSeconds: 7.5,
      },
    };
    expect(migrateCheckpoint(structuredClone(full))).toEqual(full);
  });

  it('normalizes a v3 checkpoint missing optional fields (summary, usage, parts of usage) to the defaults', () => {
    expect(migrateCheckpoint({ version: 3 })).toEqual(emptyCheckpoint());
    expect(migrateCheckpoint({ version: 4 })).toEqual(emptyCheckpoint());
    expect(migrateCheckpoint({ version: 5 })).toEqual(emptyCheckpoint());
    expect(emptyCheckpoint()).toMatchObject({ version: 5, summary: null, recentTurns: [], transcript: [], usage: NO_USAGE });
    expect(migrateCheckpoint({ version: 3, summary: 'Earlier: a latte.', usage: { ttsCharacters: 5 } })).toEqual({
      ...emptyCheckpoint(),
      summary: 'Earlier: a latte.',
      usage: { llm: {}, ttsCharacters: 5, sttSeconds: 0 },
      transcriptCut: true,
    });
  });

  it('throws checkpoint.invalid (naming the field) for a bad v3 summary or usage', () => {
    expect(thrownParleyError(() => migrateCheckpoint({ version: 3, summary: 42 }), 'checkpoint.invalid').message).toContain('summary');
    expect(
      thrownParleyError(() => migrateCheckpoint({ version: 3, usage: { llm: { m: { inputTokens: 'many' } } } }), 'checkpoint.invalid').message,
    ).toContain('usage');
    thrownParleyError(() => migrateCheckpoint({ version: 3, usage: 'none' }), 'checkpoint.invalid');
    thrownParleyError(() => migrateCheckpoint({ version: 3, usage: { ttsCharacters: '12' } }), 'checkpoint.invalid');
  });

  it('throws checkpoint.invalid (naming the field) for a bad v2 language or pending', () => {
    expect(thrownParleyError(() => migrateCheckpoint({ version: 2, language: 7 }), 'checkpoint.invalid').message).toContain('language');
    expect(
      thrownParleyError(() => migrateCheckpoint({ version: 2, pending: { intent: 'x', asked: -1 } }), 'checkpoint.invalid').message,
    ).toContain('pending');
    thrownParleyError(() => migrateCheckpoint({ version: 2, pending: { values: {} } }), 'checkpoint.invalid');
    thrownParleyError(() => migrateCheckpoint({ version: 2, pending: { intent: 'x', values: { a: { nested: true } } } }), 'checkpoint.invalid');
  });

  it('throws checkpoint.version_unsupported for a future version', () => {
    const err = thrownParleyError(() => migrateCheckpoint({ version: 6, currentNode: 'welcome' }), 'checkpoint.version_unsupported');
    expect(err.message).toContain('5');
    expect(CHECKPOINT_VERSION + 1).toBe(6);
    thrownParleyError(() => migrateCheckpoint({ version: CHECKPOINT_VERSION + 1 }), 'checkpoint.version_unsupported');
    thrownParleyError(() => migrateCheckpoint({ version: 99 }), 'checkpoint.version_unsupported');
  });

  it.each([
    ['null', null],
    ['an array', []],
    ['a string', 'checkpoint'],
    ['a number', 1],
    ['undefined', undefined],
  ])('throws checkpoint.invalid for %s', (_, input) => {
    thrownParleyError(() => migrateCheckpoint(input), 'checkpoint.invalid');
  });

  it.each([
    ['negative', -1],
    ['non-integer', 0.5],
    ['string', '1'],
    ['NaN', Number.NaN],
  ])('throws checkpoint.invalid for a %s version', (_, version) => {
    thrownParleyError(() => migrateCheckpoint({ version }), 'checkpoint.invalid');
  });

  it('throws checkpoint.invalid (naming the field) when a v1 field has the wrong type', () => {
    const err = thrownParleyError(() => migrateCheckpoint({ version: 1, nodeHistory: 'welcome' }), 'checkpoint.invalid');
    expect(err.message).toContain('nodeHistory');
    thrownParleyError(() => migrateCheckpoint({ version: 1, messages: [{ role: 'robot', content: 'x' }] }), 'checkpoint.invalid');
  });

  it('throws checkpoint.invalid when migrated v0 data does not fit the schema', () => {
    thrownParleyError(() => migrateCheckpoint({ current_node_id: 7 }), 'checkpoint.invalid');
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

  it("flattens the seed's nested tool calls into ours ({id, name, arguments}), or the LLM would refuse the history", () => {
    const raw = {
      ...fixtureV0(),
      messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup_menu', arguments: '{"q":"tea"}' } }] }],
    };
    expect(migrateCheckpoint(raw).messages[0]!.tool_calls).toEqual([{ id: 'c1', name: 'lookup_menu', arguments: '{"q":"tea"}' }]);
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
        { type: 'intent', intent: 'order_drink', score: 0.9, leader: 'order_drink', stable: false, entities: { drink: 'latte', quantity: 2 }, atMs: 0.5 },
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
    expect(decoded.checkpoint.version).toBe(5);
    expect(decoded.checkpoint.currentNode).toBe('size');
    expect(decoded.checkpoint.variables).toEqual({ drink: 'coffee', customer_name: 'Ada', loyalty_points: 120 });
    expect(decoded.checkpoint.toolState).toEqual({ lookup_menu: { calls: 1, last_result: 'ok' } });
    expect(decoded.checkpoint.messages).toHaveLength(4);
    expect(decoded.checkpoint.nodeHistory).toEqual([]);
    expect(decoded.checkpoint.ended).toBe(false);
    expect(decoded.checkpoint.language).toBeNull();
    expect(decoded.checkpoint.pending).toBeNull();
    expect(decoded.checkpoint.summary).toBeNull();
    expect(decoded.checkpoint.usage).toEqual(NO_USAGE);
  });

  it('decodes an intent event recorded before leader, stable and entities existed, with their defaults', () => {
    const r = record(emptyCheckpoint());
    const stored = JSON.stringify({ ...body(r), events: [{ type: 'intent', intent: 'coffee', score: 1, atMs: 0.5 }] });
    expect(decodeBody({ json: stored }).events).toEqual([
      { type: 'intent', intent: 'coffee', score: 1, leader: null, stable: false, entities: {}, atMs: 0.5 },
    ]);
  });

  it('migrates a v1 checkpoint stored inside a body to v3', () => {
    const r = record(emptyCheckpoint());
    const stored = JSON.stringify({ ...body(r), checkpoint: { version: 1, currentNode: 'confirm', variables: { size: 'large' } } });
    const decoded = decodeBody({ json: stored });
    expect(decoded.checkpoint).toEqual({ ...emptyCheckpoint(), currentNode: 'confirm', variables: { size: 'large' } });
  });

  it('migrates a v2 checkpoint stored inside a body to v3 (summary null, usage zero)', () => {
    const r = record(emptyCheckpoint());
    const stored = JSON.stringify({ ...body(r), checkpoint: { version: 2, currentNode: 'welcome', language: 'tr' } });
    const decoded = decodeBody({ json: stored });
    expect(decoded.checkpoint).toEqual({ ...emptyCheckpoint(), currentNode: 'welcome', language: 'tr', summary: null, usage: NO_USAGE });
  });

  it('round-trips a v3 checkpoint with a language, a pending intent, a summary and session usage', () => {
    const r = record({
      ...emptyCheckpoint(),
      currentNode: 'welcome',
      language: 'ru',
      pending: { intent: 'order_drink', values: { drink: 'latte' }, asked: 1 },
      summary: 'Пользователь заказал латте.',
      usage: { llm: { 'gpt-x': { inputTokens: 30, outputTokens: 12, cachedTokens: 4 } }, ttsCharacters: 99, sttSeconds: 1.25 },
    });
    const decoded = decodeBody(encodeBody(r));
    expect(decoded).toEqual(body(r));
    expect(decoded.checkpoint.summary).toBe('Пользователь заказал латте.');
    expect(decoded.checkpoint.usage.llm['gpt-x']).toEqual({ inputTokens: 30, outputTokens: 12, cachedTokens: 4 });
  });

  it('round-trips a compressed record whose v3 checkpoint holds a summary and session usage', () => {
    const messages = Array.from({ length: 200 }, (_, i) => ({
      role: i % 2 ? ('assistant' as const) : ('user' as const),
      content: `Message number ${i}: a medium latte with oat milk, please.`,
    }));
    const r = record({ ...emptyCheckpoint(), messages, summary: 'Long chat about lattes.', usage: { llm: {}, ttsCharacters: 3, sttSeconds: 0 } });
    const encoded = encodeBody(r);
    expect('compressed' in encoded).toBe(true);
    expect(decodeBody(encoded)).toEqual(body(r));
  });

  it('round-trips a body holding the LLM pipeline events (exchange, tool call, safety, rounds, summary, error)', () => {
    const r = record({ ...emptyCheckpoint(), summary: 'so far', usage: { llm: { 'gpt-x': { inputTokens: 1, outputTokens: 1, cachedTokens: 0 } }, ttsCharacters: 0, sttSeconds: 0 } });
    r.events = [
      {
        type: 'llm_exchange',
        model: 'gpt-x',
        requestDigest: 'a'.repeat(64),
        request: { messages: 3, tools: ['lookup_menu'] },
        response: { text: '', toolCalls: [{ id: 'c1', name: 'lookup_menu', arguments: '{"item":"tea"}' }], finishReason: 'tool_calls' },
        usage: { inputTokens: 10, outputTokens: 5, cachedTokens: 0 },
        ms: 120,
        atMs: 3,
      },
      { type: 'tool_call', name: 'lookup_menu', arguments: '{"item":"tea"}', ok: true, result: '{"price":3}', atMs: 4 },
      { type: 'safety_trip', category: 'violence', atMs: 5 },
      { type: 'llm_rounds_exhausted', rounds: 4, atMs: 6 },
      { type: 'llm_error', kind: 'llm_timeout', detail: 'deadline', atMs: 7 },
      { type: 'summary', folded: 6, ok: true, atMs: 8 },
    ];
    expect(decodeBody(encodeBody(r))).toEqual(body(r));
  });

  it('rejects a body holding a future checkpoint version', () => {
    const stored = JSON.stringify({ ...body(record(emptyCheckpoint())), checkpoint: { version: 6 } });
    thrownParleyError(() => decodeBody({ json: stored }), 'checkpoint.version_unsupported');
  });
});

describe('encodeBounded: no turn can make a record too large to commit', () => {
  /** Text that does not compress: random bytes as hex. */
  const noise = (chars: number) => createHash('sha512').update(String(Math.random())).digest('hex').repeat(Math.ceil(chars / 128)).slice(0, chars).split('').map(() => Math.random().toString(36)[2] ?? 'x').join('');

  function huge(): TurnRecord {
    const messages = Array.from({ length: 20 }, (_, i) => ({ role: i % 2 ? ('assistant' as const) : ('user' as const), content: noise(30_000) }));
    return {
      seq: 9,
      turnId: 't',
      status: 'completed',
      createdAt: '2026-11-21T10:00:00.000Z',
      input: { kind: 'text', text: 'tell me everything' },
      outputs: [{ type: 'response.text.done', turnId: 't', text: noise(200_000) }],
      events: [
        {
          type: 'llm_exchange',
          model: 'm',
          requestDigest: 'd',
          request: { messages: 20, tools: [] },
          response: { text: noise(200_000), toolCalls: [], finishReason: 'stop' },
          usage: null,
          ms: 1,
          atMs: 1,
        },
      ],
      usage: { llm: {}, ttsCharacters: 0, sttSeconds: 0 },
      metrics: { runMs: 1, totalMs: 2 },
      checkpoint: { ...emptyCheckpoint(), messages, currentNode: 'welcome', summary: noise(20_000) },
    };
  }

  it('an ordinary record is stored as it is', () => {
    const small = { ...huge(), outputs: [], events: [], checkpoint: emptyCheckpoint() };
    const { body, clipped } = encodeBounded(small);
    expect(clipped).toBe(false);
    expect(body).toEqual(encodeBody(small));
  });

  it('an extraordinary one is clipped under the limit, keeping the newest messages and the state', () => {
    const record = huge();
    expect(Buffer.byteLength(JSON.stringify(record))).toBeGreaterThan(MAX_BODY_BYTES * 2);
    const { body, clipped } = encodeBounded(record);
    expect(clipped).toBe(true);
    expect('json' in body ? Buffer.byteLength(body.json) : body.compressed.byteLength).toBeLessThanOrEqual(MAX_BODY_BYTES);
    const decoded = decodeBody(body);
    expect(decoded.checkpoint.currentNode).toBe('welcome');
    expect(decoded.checkpoint.messages).toHaveLength(6);
    expect(decoded.checkpoint.messages.at(-1)!.content.startsWith(record.checkpoint.messages.at(-1)!.content.slice(0, 8000))).toBe(true);
    expect(decoded.outputs).toEqual([]);
  });
});
