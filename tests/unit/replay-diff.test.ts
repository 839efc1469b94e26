import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../lib/checkpoint/record';
import { emptyCheckpoint, type Checkpoint } from '../../lib/checkpoint/schema';
import type { ServerEvent } from '../../lib/protocol/v1';
import { diffObservations, type Difference } from '../../lib/replay/diff';
import { observe, type Observation, type ToolUse } from '../../lib/replay/observe';
import { textSimilarity } from '../../lib/replay/similarity';

const OPTIONS = { similarity: 0.7 };

const ORDER_BODY = { drink: 'latte', size: 'large', quantity: '1', milk: '', session: 's-1' };

/** A scripted turn that ran a webhook: the shape `observe` produces. */
const base = (): Observation => ({
  intent: 'yes',
  path: ['confirm', 'place_order'],
  variables: { drink: 'latte', size: 'large', order: { id: 42, ready_in_minutes: 5 } },
  tools: [{ kind: 'webhook', name: 'place_order', ok: true, method: 'POST', url: '/demo/orders', body: ORDER_BODY }],
  endCall: false,
  playlist: [
    { kind: 'filler', source: 'filler:one_moment' },
    { kind: 'speech', source: 'tts:place_order.0' },
    { kind: 'speech', source: 'cache:anything_else' },
  ],
  reply: 'Your order number is 42, it will be ready in 5 minutes. Can I get you anything else?',
  llm: false,
});

const diff = (change: (o: Observation) => void, options = OPTIONS): Difference[] => {
  const after = base();
  change(after);
  return diffObservations(base(), after, options);
};

const tool = (name: string, args: unknown): ToolUse => ({ kind: 'llm_tool', name, arguments: args });

describe('diffObservations', () => {
  it('finds nothing between identical observations', () => {
    expect(diffObservations(base(), base(), OPTIONS)).toEqual([]);
  });

  it('reports a changed intent, including to none', () => {
    expect(diff((o) => (o.intent = 'no'))).toEqual([{ field: 'intent', before: 'yes', after: 'no' }]);
    expect(diff((o) => (o.intent = null))).toEqual([{ field: 'intent', before: 'yes', after: null }]);
  });

  it('reports a changed path as both whole paths', () => {
    expect(diff((o) => (o.path = ['confirm', 'order_failed']))).toEqual([
      { field: 'path', before: ['confirm', 'place_order'], after: ['confirm', 'order_failed'] },
    ]);
  });

  it('reports each changed, added and removed variable by key, in key order', () => {
    const found = diff((o) => {
      o.variables = { size: 'small', order: { id: 42, ready_in_minutes: 5 }, milk: 'oat milk' };
    });
    expect(found).toEqual([
      { field: 'variables', key: 'drink', before: 'latte', after: undefined },
      { field: 'variables', key: 'milk', before: undefined, after: 'oat milk' },
      { field: 'variables', key: 'size', before: 'large', after: 'small' },
    ]);
  });

  it('compares variable values deeply: an equal copy of an object is no difference, a changed field is', () => {
    expect(diff((o) => (o.variables.order = { id: 42, ready_in_minutes: 5 }))).toEqual([]);
    expect(diff((o) => (o.variables.order = { id: 42, ready_in_minutes: 7 }))).toEqual([
      { field: 'variables', key: 'order', before: { id: 42, ready_in_minutes: 5 }, after: { id: 42, ready_in_minutes: 7 } },
    ]);
    // A number is not its string.
    expect(diff((o) => (o.variables.size = 1))).toEqual([{ field: 'variables', key: 'size', before: 'large', after: 1 }]);
  });

  it('reports changed webhook arguments with the method, url, body and ok of each side', () => {
    const found = diff((o) => (o.tools = [{ kind: 'webhook', name: 'place_order', ok: true, method: 'POST', url: '/demo/orders', body: { ...ORDER_BODY, size: 'small' } }]));
    expect(found).toEqual([
      {
        field: 'tools',
        key: 'webhook place_order',
        before: { ok: true, method: 'POST', url: '/demo/orders', body: ORDER_BODY },
        after: { ok: true, method: 'POST', url: '/demo/orders', body: { ...ORDER_BODY, size: 'small' } },
      },
    ]);
  });

  it('reports a webhook that now fails with the same request', () => {
    const found = diff((o) => (o.tools = [{ kind: 'webhook', name: 'place_order', ok: false, method: 'POST', url: '/demo/orders', body: ORDER_BODY }]));
    expect(found).toEqual([
      {
        field: 'tools',
        key: 'webhook place_order',
        before: { ok: true, method: 'POST', url: '/demo/orders', body: ORDER_BODY },
        after: { ok: false, method: 'POST', url: '/demo/orders', body: ORDER_BODY },
      },
    ]);
  });

  it('reports a removed and an added webhook with null on the side that made no call', () => {
    expect(diff((o) => (o.tools = []))).toEqual([
      { field: 'tools', key: 'webhook place_order', before: { ok: true, method: 'POST', url: '/demo/orders', body: ORDER_BODY }, after: null },
    ]);
    const before = { ...base(), tools: [] };
    expect(diffObservations(before, base(), OPTIONS)).toEqual([
      { field: 'tools', key: 'webhook place_order', before: null, after: { ok: true, method: 'POST', url: '/demo/orders', body: ORDER_BODY } },
    ]);
  });

  it('pairs LLM tool calls by name in order: the second call changed, a third tool was added', () => {
    const before = { ...base(), tools: [tool('set_variable', { name: 'size', value: 'large' }), tool('set_variable', { name: 'milk', value: 'oat' }), tool('transition_to', { state: 'confirm' })] };
    const after = {
      ...base(),
      // Another tool in between does not break the pairing of the set_variable calls.
      tools: [tool('transition_to', { state: 'confirm' }), tool('set_variable', { name: 'size', value: 'large' }), tool('set_variable', { name: 'milk', value: 'soy' }), tool('end_call', {})],
    };
    expect(diffObservations(before, after, OPTIONS)).toEqual([
      { field: 'tools', key: 'tool set_variable', before: { name: 'milk', value: 'oat' }, after: { name: 'milk', value: 'soy' } },
      { field: 'tools', key: 'tool end_call', before: null, after: {} },
    ]);
  });

  it('reports a call only made before as removed, after the paired ones', () => {
    const before = { ...base(), tools: [tool('pickup_wait', {}), tool('pickup_wait', {})] };
    const after = { ...base(), tools: [tool('pickup_wait', {})] };
    expect(diffObservations(before, after, OPTIONS)).toEqual([{ field: 'tools', key: 'tool pickup_wait', before: {}, after: null }]);
  });

  it('does not pair an LLM tool with a webhook of the same name', () => {
    const before = { ...base(), tools: [tool('pickup_wait', {})] };
    const after = { ...base(), tools: [{ kind: 'webhook' as const, name: 'pickup_wait', ok: true, method: 'GET', url: '/demo/wait-time' }] };
    expect(diffObservations(before, after, OPTIONS)).toEqual([
      { field: 'tools', key: 'tool pickup_wait', before: {}, after: null },
      { field: 'tools', key: 'webhook pickup_wait', before: null, after: { ok: true, method: 'GET', url: '/demo/wait-time' } },
    ]);
  });

  it('reports END_CALL', () => {
    expect(diff((o) => (o.endCall = true))).toEqual([{ field: 'end_call', before: false, after: true }]);
  });

  it('reports the playlist as the sources of each side', () => {
    expect(diff((o) => o.playlist.splice(0, 1))).toEqual([
      {
        field: 'playlist',
        before: ['filler:one_moment', 'tts:place_order.0', 'cache:anything_else'],
        after: ['tts:place_order.0', 'cache:anything_else'],
      },
    ]);
  });

  it('reports any change of a scripted reply, even one only in punctuation, with its similarity', () => {
    const before = base().reply;
    const found = diff((o) => (o.reply = before.replace('else?', 'else!')));
    expect(found).toEqual([{ field: 'reply', before, after: before.replace('else?', 'else!'), similarity: 1 }]);
    // Even with the lowest threshold, scripted text is compared exactly.
    expect(diff((o) => (o.reply = 'Goodbye.'), { similarity: 0 })).toHaveLength(1);
  });

  it('does not report an LLM reply at least as alike as the threshold, and reports one below it', () => {
    const llm = (reply: string): Observation => ({ ...base(), tools: [], playlist: [], reply, llm: true });
    const recorded = llm('About 6 minutes right now.');
    const replayed = llm('About 7 minutes right now.');
    // Normalized: "about 6 minutes right now" (25 characters) vs one substitution: 1 - 1/25 = 0.96.
    expect(diffObservations(recorded, replayed, { similarity: 0.7 })).toEqual([]);
    expect(diffObservations(recorded, replayed, { similarity: 0.96 })).toEqual([]);
    expect(diffObservations(recorded, replayed, { similarity: 0.97 })).toEqual([
      { field: 'reply', before: 'About 6 minutes right now.', after: 'About 7 minutes right now.', similarity: 0.96 },
    ]);
    expect(diffObservations(recorded, llm('We are open every day from seven.'), { similarity: 0.7 })).toMatchObject([{ field: 'reply' }]);
  });

  it('compares by similarity when only one side holds LLM text', () => {
    const scripted = { ...base(), reply: 'About 6 minutes right now.' };
    const fromLlm = { ...base(), reply: 'About 7 minutes right now.', llm: true };
    expect(diffObservations(scripted, fromLlm, OPTIONS)).toEqual([]);
    expect(diffObservations(fromLlm, scripted, OPTIONS)).toEqual([]);
  });

  it('lists several differences in field order: intent, path, variables, tools, end_call, playlist, reply', () => {
    const after: Observation = {
      intent: 'operator',
      path: ['confirm', 'handoff'],
      variables: { drink: 'latte', size: 'large' },
      tools: [],
      endCall: true,
      playlist: [{ kind: 'speech', source: 'cache:handoff' }],
      reply: 'Sure, I’m handing you over to a barista.',
      llm: false,
    };
    expect(diffObservations(base(), after, OPTIONS).map((d) => d.field)).toEqual(['intent', 'path', 'variables', 'tools', 'end_call', 'playlist', 'reply']);
  });
});

describe('textSimilarity', () => {
  it('is 1 for the same text modulo case, punctuation and spacing', () => {
    expect(textSimilarity('Hello, World!', '  hello   world ')).toBe(1);
    expect(textSimilarity('Привет, мир!', 'привет мир')).toBe(1);
    expect(textSimilarity('', '')).toBe(1);
  });

  it('is 0 for entirely different text of equal length', () => {
    expect(textSimilarity('abcd', 'wxyz')).toBe(0);
    expect(textSimilarity('', 'tea')).toBe(0);
  });

  it('is one minus the edit distance over the longer normalized text, to three decimals', () => {
    // kitten -> sitting: 3 edits over 7 characters.
    expect(textSimilarity('kitten', 'sitting')).toBe(0.571);
    // "don't" normalizes to "don t": one deletion from "dont" over 5 characters.
    expect(textSimilarity("don't", 'dont')).toBe(0.8);
    // One substitution over 25 characters.
    expect(textSimilarity('About 6 minutes right now.', 'About 7 minutes right now.')).toBe(0.96);
  });

  it('is symmetric', () => {
    expect(textSimilarity('a large latte', 'a latte')).toBe(textSimilarity('a latte', 'a large latte'));
    // "a latte" -> "a large latte": 6 insertions over 13 characters.
    expect(textSimilarity('a latte', 'a large latte')).toBe(0.538);
  });
});

describe('observe', () => {
  const TURN = 'turn-1';
  const before = (node: string | null): Checkpoint => ({ ...emptyCheckpoint(), currentNode: node });
  const done = (text: string): ServerEvent => ({ type: 'response.text.done', turnId: TURN, text });
  const exchange = (purpose?: 'summary'): RecordedEvent => ({
    type: 'llm_exchange',
    ...(purpose ? { purpose } : {}),
    model: 'gpt-test',
    requestDigest: 'd'.repeat(64),
    request: { messages: 3, tools: [] },
    response: { text: 'x', toolCalls: [], finishReason: 'stop' },
    usage: null,
    ms: 10,
    atMs: 1,
  });
  const observeEvents = (events: RecordedEvent[], node: string | null = 'confirm', outputs: ServerEvent[] = []) =>
    observe({ before: before(node), after: { ...before('place_order'), variables: { drink: 'latte' } }, events, outputs });

  it('starts the path at the stored node, then every node entered', () => {
    const o = observeEvents([
      { type: 'node_transition', from: 'confirm', to: 'place_order', atMs: 1 },
      { type: 'node_transition', from: 'place_order', to: 'order_failed', atMs: 2 },
    ]);
    expect(o.path).toEqual(['confirm', 'place_order', 'order_failed']);
  });

  it('starts the path at the node_migrated target when the node was migrated', () => {
    const o = observeEvents(
      [
        { type: 'node_migrated', from: 'menu', to: 'drinks_menu', reason: 'renamed', atMs: 0 },
        { type: 'node_transition', from: 'drinks_menu', to: 'confirm', atMs: 1 },
      ],
      'menu',
    );
    expect(o.path).toEqual(['drinks_menu', 'confirm']);
  });

  it('has no start node for a new session', () => {
    const o = observeEvents([{ type: 'node_transition', from: null, to: 'welcome', atMs: 1 }], null);
    expect(o.path).toEqual(['welcome']);
  });

  it('takes the intent from the intent event, else null', () => {
    const intent: RecordedEvent = { type: 'intent', intent: 'yes', score: 0.9, leader: 'yes', stable: false, entities: {}, atMs: 1 };
    expect(observeEvents([intent]).intent).toBe('yes');
    expect(observeEvents([]).intent).toBeNull();
  });

  it('parses tool call arguments as JSON, keeping text that is not JSON as it is', () => {
    const o = observeEvents([
      { type: 'tool_call', name: 'set_variable', arguments: '{"name":"size","value":"large"}', ok: true, result: 'ok', atMs: 1 },
      { type: 'tool_call', name: 'transition_to', arguments: '{"state": "conf', ok: false, result: 'invalid', atMs: 2 },
    ]);
    expect(o.tools).toEqual([
      { kind: 'llm_tool', name: 'set_variable', arguments: { name: 'size', value: 'large' } },
      { kind: 'llm_tool', name: 'transition_to', arguments: '{"state": "conf' },
    ]);
  });

  it('keeps a webhook’s method, url and parsed body; without a recorded request only its name and ok', () => {
    const o = observeEvents([
      { type: 'action', name: 'place_order', ok: true, ms: 5, attempts: 1, request: { method: 'POST', url: '/demo/orders', body: '{"drink": "latte"}' }, result: { id: 1 }, atMs: 1 },
      { type: 'action', name: 'pickup_wait', ok: false, kind: 'action_timeout', detail: 'slow', ms: 2000, attempts: 2, request: { method: 'GET', url: '/demo/wait-time' }, atMs: 2 },
      { type: 'action', name: 'legacy', ok: true, ms: 5, attempts: 1, atMs: 3 },
    ]);
    expect(o.tools).toEqual([
      { kind: 'webhook', name: 'place_order', ok: true, method: 'POST', url: '/demo/orders', body: { drink: 'latte' } },
      { kind: 'webhook', name: 'pickup_wait', ok: false, method: 'GET', url: '/demo/wait-time' },
      { kind: 'webhook', name: 'legacy', ok: true },
    ]);
    expect('body' in o.tools[1]!).toBe(false);
  });

  it('takes the reply from the last response.text.done, else empty', () => {
    const o = observeEvents([], 'confirm', [{ type: 'turn.started', turnId: TURN }, done('first'), { type: 'response.text.delta', turnId: TURN, text: 'x' }, done('second')]);
    expect(o.reply).toBe('second');
    expect(observeEvents([], 'confirm', [{ type: 'turn.started', turnId: TURN }]).reply).toBe('');
  });

  it('holds LLM text only for an answer exchange, not for a summary exchange alone', () => {
    expect(observeEvents([exchange('summary')]).llm).toBe(false);
    expect(observeEvents([exchange()]).llm).toBe(true);
    expect(observeEvents([exchange('summary'), exchange()]).llm).toBe(true);
    expect(observeEvents([]).llm).toBe(false);
  });

  it('ends the call only for session_end with reason end_call; variables come from the checkpoint after', () => {
    expect(observeEvents([{ type: 'session_end', reason: 'end_call', atMs: 1 }]).endCall).toBe(true);
    expect(observeEvents([{ type: 'session_end', reason: 'client', atMs: 1 }]).endCall).toBe(false);
    expect(observeEvents([]).variables).toEqual({ drink: 'latte' });
  });

  it('joins the items of every playlist event in order', () => {
    const o = observeEvents([
      { type: 'playlist', items: [{ kind: 'filler', source: 'filler:one_moment' }], atMs: 1 },
      { type: 'playlist', items: [{ kind: 'speech', source: 'tts:place_order.0' }, { kind: 'speech', source: 'cache:anything_else' }], atMs: 2 },
    ]);
    expect(o.playlist).toEqual([
      { kind: 'filler', source: 'filler:one_moment' },
      { kind: 'speech', source: 'tts:place_order.0' },
      { kind: 'speech', source: 'cache:anything_else' },
    ]);
  });
});
