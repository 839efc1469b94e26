import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { TemplateContext } from '../../lib/actions/port';
import { renderActionRequest } from '../../lib/actions/webhook';
import type { RecordedEvent } from '../../lib/checkpoint/record';
import { loadDialogueMap } from '../../lib/flow/map';
import { requestDigest, requestParts } from '../../lib/llm/digest';
import { LlmError, type LlmRequest, type LlmStreamEvent, type ToolSpec } from '../../lib/llm/port';
import { cassetteOf, DIVERGED } from '../../lib/replay/cassette';

const map = loadDialogueMap(JSON.parse(readFileSync(new URL('../../dialogue_map.json', import.meta.url), 'utf8')));
const SESSION = 'b1c2d3e4-0000-4000-8000-000000000001';
const MODEL = 'gpt-test';
const DEADLINE = Date.now() + 60_000;

const PICKUP_WAIT: ToolSpec = { name: 'pickup_wait', description: 'How many minutes a pickup order takes right now.', parameters: { type: 'object', properties: {} } };
const END_CALL: ToolSpec = { name: 'end_call', description: 'Ends the call.', parameters: { type: 'object', properties: {} } };

/** The request of an LLM turn: system prompt, an earlier exchange, the user's question. */
const request = (change: Partial<LlmRequest> = {}): LlmRequest => ({
  model: MODEL,
  messages: [
    { role: 'system', content: 'You are the counter assistant of Parley Café.' },
    { role: 'assistant', content: 'Hi, welcome to Parley Café!' },
    { role: 'user', content: 'how long does an order take?' },
  ],
  tools: [PICKUP_WAIT],
  maxTokens: 200,
  ...change,
});

const USAGE = { inputTokens: 320, outputTokens: 9, cachedTokens: 0 };

/** A recorded exchange, as the runner writes it, for `req`. */
function exchange(req: LlmRequest, response: { text?: string; toolCalls?: { id: string; name: string; arguments: string }[] } = {}, withParts = true): RecordedEvent {
  return {
    type: 'llm_exchange',
    model: 'gpt-test-2025-01-01',
    requestDigest: requestDigest(req),
    request: { messages: req.messages.length, tools: (req.tools ?? []).map((t) => t.name), ...(withParts ? { parts: requestParts(req) } : {}) },
    response: { text: response.text ?? '', toolCalls: response.toolCalls ?? [], finishReason: response.toolCalls?.length ? 'tool_calls' : 'stop' },
    usage: USAGE,
    ms: 300,
    atMs: 12,
  };
}

async function collect(stream: AsyncIterable<LlmStreamEvent>): Promise<LlmStreamEvent[]> {
  const out: LlmStreamEvent[] = [];
  for await (const e of stream) out.push(e);
  return out;
}

async function divergence(stream: AsyncIterable<LlmStreamEvent>): Promise<LlmError> {
  try {
    await collect(stream);
  } catch (err) {
    expect(err).toBeInstanceOf(LlmError);
    return err as LlmError;
  }
  throw new Error('expected the replayed request to diverge');
}

describe('cassette: LLM', () => {
  it('answers a request with the same digest with the recorded text, then the recorded end', async () => {
    const cassette = cassetteOf([exchange(request(), { text: 'About 6 minutes right now.' })], map, MODEL);
    expect(cassette.llm.defaultModel).toBe(MODEL);
    // The abort signal is not part of the request's digest.
    const events = await collect(cassette.llm.stream(request({ signal: new AbortController().signal }), DEADLINE));
    expect(events).toEqual([
      { type: 'text', delta: 'About 6 minutes right now.' },
      { type: 'end', toolCalls: [], finishReason: 'stop', usage: USAGE, model: 'gpt-test-2025-01-01' },
    ]);
    expect(cassette.divergences).toEqual([]);
  });

  it('answers a tool round with only the end event carrying the recorded tool calls', async () => {
    const calls = [{ id: 'call_1', name: 'pickup_wait', arguments: '{}' }];
    const cassette = cassetteOf([exchange(request(), { toolCalls: calls })], map, MODEL);
    expect(await collect(cassette.llm.stream(request(), DEADLINE))).toEqual([
      { type: 'end', toolCalls: calls, finishReason: 'tool_calls', usage: USAGE, model: 'gpt-test-2025-01-01' },
    ]);
  });

  it('consumes two recorded exchanges of identical requests in order, and has no third', async () => {
    const cassette = cassetteOf([exchange(request(), { text: 'first' }), exchange(request(), { text: 'second' })], map, MODEL);
    expect((await collect(cassette.llm.stream(request(), DEADLINE)))[0]).toEqual({ type: 'text', delta: 'first' });
    expect((await collect(cassette.llm.stream(request(), DEADLINE)))[0]).toEqual({ type: 'text', delta: 'second' });
    const err = await divergence(cassette.llm.stream(request(), DEADLINE));
    expect(err.kind).toBe('llm_error');
    expect(cassette.divergences).toEqual([{ kind: 'llm', name: MODEL, reasons: ['the recording made no such LLM call'] }]);
  });

  it('finds the recorded exchange by digest, whatever its position', async () => {
    const second = request({ messages: [...request().messages, { role: 'assistant', content: 'About 6 minutes.' }, { role: 'user', content: 'thanks' }] });
    const cassette = cassetteOf([exchange(request(), { text: 'first' }), exchange(second, { text: 'You are welcome.' })], map, MODEL);
    expect((await collect(cassette.llm.stream(second, DEADLINE)))[0]).toEqual({ type: 'text', delta: 'You are welcome.' });
    expect((await collect(cassette.llm.stream(request(), DEADLINE)))[0]).toEqual({ type: 'text', delta: 'first' });
    expect(cassette.divergences).toEqual([]);
  });

  const system = (content: string) => ({ role: 'system' as const, content });
  const msgs = request().messages;
  it.each<[string, Partial<LlmRequest>, string[]]>([
    ['the model', { model: 'gpt-other' }, ['the model changed']],
    ['the tools', { tools: [PICKUP_WAIT, END_CALL] }, ['the tools offered changed']],
    ['no tools at all', { tools: undefined }, ['the tools offered changed']],
    ['max tokens', { maxTokens: 100 }, ['temperature or max tokens changed']],
    ['temperature', { temperature: 0.2 }, ['temperature or max tokens changed']],
    ['the system prompt', { messages: [system('You are a pirate.'), msgs[1]!, msgs[2]!] }, ['the system prompt changed']],
    ['one message', { messages: [msgs[0]!, msgs[1]!, { role: 'user', content: 'how long does it take?' }] }, ['message 2 changed']],
    ['two messages', { messages: [msgs[0]!, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: 'how long?' }] }, ['messages 1, 2 changed']],
    ['the number of messages', { messages: [...msgs, { role: 'assistant', content: 'Six.' }, { role: 'user', content: 'ok' }] }, ['5 messages instead of 3']],
    ['the model and the system prompt', { model: 'gpt-other', messages: [system('You are a pirate.'), msgs[1]!, msgs[2]!] }, ['the model changed', 'the system prompt changed']],
    ['the system prompt and the count', { messages: [system('You are a pirate.'), msgs[2]!] }, ['the system prompt changed', '2 messages instead of 3']],
  ])('a request with a different %s diverges, saying what changed', async (_what, change, reasons) => {
    const cassette = cassetteOf([exchange(request(), { text: 'About 6 minutes right now.' })], map, MODEL);
    const replayed = request(change);
    const err = await divergence(cassette.llm.stream(replayed, DEADLINE));
    expect(err.kind).toBe('llm_error');
    expect(err.message).toBe(DIVERGED);
    expect(cassette.divergences).toEqual([{ kind: 'llm', name: replayed.model, reasons }]);
  });

  it('says only that the request changed when the recording has no part digests', async () => {
    const cassette = cassetteOf([exchange(request(), { text: 'x' }, false)], map, MODEL);
    await divergence(cassette.llm.stream(request({ model: 'gpt-other' }), DEADLINE));
    expect(cassette.divergences).toEqual([{ kind: 'llm', name: 'gpt-other', reasons: ['the request changed'] }]);
  });

  it('says the recording made no LLM call when it holds none', async () => {
    const cassette = cassetteOf([], map, MODEL);
    await divergence(cassette.llm.stream(request(), DEADLINE));
    expect(cassette.divergences).toEqual([{ kind: 'llm', name: MODEL, reasons: ['the recording made no such LLM call'] }]);
  });
});

describe('cassette: safety', () => {
  it('trips once with the recorded category, then is safe', async () => {
    const cassette = cassetteOf([{ type: 'safety_trip', category: 'harassment', atMs: 3 }], map, MODEL);
    expect(await cassette.safety.check('You are rude.', 'en')).toEqual({ safe: false, category: 'harassment' });
    expect(await cassette.safety.check('You are rude.', 'en')).toEqual({ safe: true });
  });

  it('is safe when the recording did not trip', async () => {
    const cassette = cassetteOf([exchange(request(), { text: 'Hi.' })], map, MODEL);
    expect(await cassette.safety.check('Hi.', 'en')).toEqual({ safe: true });
  });
});

describe('cassette: webhooks', () => {
  const context = (variables: Record<string, unknown>): TemplateContext => ({ session: { variables, language: 'en', node: 'place_order', id: SESSION } });
  const LATTE = context({ drink: 'latte', size: 'large', quantity: 1, milk: '' });
  const MOCHA = context({ drink: 'mocha', size: 'large', quantity: 1, milk: '' });
  const bodyOf = (drink: string) => `{"drink": "${drink}", "size": "large", "quantity": "1", "milk": "", "session": "${SESSION}"}`;
  const LATTE_REQUEST = { method: 'POST', url: '/demo/orders', body: bodyOf('latte') };
  const MOCHA_REQUEST = { method: 'POST', url: '/demo/orders', body: bodyOf('mocha') };
  const RESULT = { id: 42, ready_in_minutes: 5 };

  const recorded = (extra: Partial<Extract<RecordedEvent, { type: 'action' }>> = {}): RecordedEvent => ({
    type: 'action',
    name: 'place_order',
    ok: true,
    ms: 120,
    attempts: 1,
    request: LATTE_REQUEST,
    result: RESULT,
    atMs: 7,
    ...extra,
  });

  it('renders the sample map’s place_order as expected (the fixture the cases below rely on)', () => {
    expect(renderActionRequest(map.actions.place_order!, LATTE).request).toEqual(LATTE_REQUEST);
    expect(renderActionRequest(map.actions.place_order!, MOCHA).request).toEqual(MOCHA_REQUEST);
  });

  it('answers the same rendered request with the recorded result and timing', async () => {
    const cassette = cassetteOf([recorded()], map, MODEL);
    expect(await cassette.actions.run('place_order', LATTE)).toEqual({ ok: true, result: RESULT, ms: 120, attempts: 1, request: LATTE_REQUEST });
    expect(cassette.divergences).toEqual([]);
  });

  it('answers a different request with a failure and records the divergence with both requests', async () => {
    const cassette = cassetteOf([recorded()], map, MODEL);
    expect(await cassette.actions.run('place_order', MOCHA)).toEqual({ ok: false, kind: 'action_failed', detail: DIVERGED, ms: 0, attempts: 0, request: MOCHA_REQUEST });
    expect(cassette.divergences).toEqual([{ kind: 'webhook', name: 'place_order', reasons: ['the request changed'], recorded: LATTE_REQUEST, replayed: MOCHA_REQUEST }]);
  });

  it('uses each recorded call once: a second identical call has no recording', async () => {
    const cassette = cassetteOf([recorded()], map, MODEL);
    expect((await cassette.actions.run('place_order', LATTE)).ok).toBe(true);
    expect(await cassette.actions.run('place_order', LATTE)).toMatchObject({ ok: false, detail: DIVERGED });
    expect(cassette.divergences).toEqual([{ kind: 'webhook', name: 'place_order', reasons: ['the recording made no such webhook call'], replayed: LATTE_REQUEST }]);
  });

  it('says the recording made no such call for an action it never ran', async () => {
    const cassette = cassetteOf([recorded()], map, MODEL);
    expect(await cassette.actions.run('pickup_wait', LATTE)).toEqual({
      ok: false,
      kind: 'action_failed',
      detail: DIVERGED,
      ms: 0,
      attempts: 0,
      request: { method: 'GET', url: '/demo/wait-time' },
    });
    expect(cassette.divergences).toEqual([
      { kind: 'webhook', name: 'pickup_wait', reasons: ['the recording made no such webhook call'], replayed: { method: 'GET', url: '/demo/wait-time' } },
    ]);
  });

  it('replays a recorded timeout as that timeout', async () => {
    const cassette = cassetteOf([recorded({ ok: false, kind: 'action_timeout', detail: 'no answer within 3000 ms', ms: 6000, attempts: 2, result: undefined })], map, MODEL);
    expect(await cassette.actions.run('place_order', LATTE)).toEqual({
      ok: false,
      kind: 'action_timeout',
      detail: 'no answer within 3000 ms',
      ms: 6000,
      attempts: 2,
      request: LATTE_REQUEST,
    });
    expect(cassette.divergences).toEqual([]);
  });

  it('replays any other recorded failure as action_failed', async () => {
    const cassette = cassetteOf([recorded({ ok: false, kind: 'action_failed', detail: 'HTTP 503', ms: 40, attempts: 2, result: undefined })], map, MODEL);
    expect(await cassette.actions.run('place_order', LATTE)).toEqual({ ok: false, kind: 'action_failed', detail: 'HTTP 503', ms: 40, attempts: 2, request: LATTE_REQUEST });
  });

  it('answers a recorded success without a result with null', async () => {
    const cassette = cassetteOf([recorded({ result: undefined })], map, MODEL);
    expect(await cassette.actions.run('place_order', LATTE)).toMatchObject({ ok: true, result: null });
  });

  it('matches an old recording without a request by name alone', async () => {
    const { request: _none, ...old } = recorded() as Extract<RecordedEvent, { type: 'action' }>;
    const cassette = cassetteOf([old], map, MODEL);
    expect(await cassette.actions.run('place_order', MOCHA)).toEqual({ ok: true, result: RESULT, ms: 120, attempts: 1, request: MOCHA_REQUEST });
    expect(cassette.divergences).toEqual([]);
  });

  it('pairs repeated calls with the recording that has the same request, not merely the next one', async () => {
    const cassette = cassetteOf([recorded(), recorded({ request: MOCHA_REQUEST, result: { id: 43, ready_in_minutes: 6 } })], map, MODEL);
    expect(await cassette.actions.run('place_order', MOCHA)).toMatchObject({ ok: true, result: { id: 43, ready_in_minutes: 6 } });
    expect(await cassette.actions.run('place_order', LATTE)).toMatchObject({ ok: true, result: RESULT });
    expect(cassette.divergences).toEqual([]);
  });
});
