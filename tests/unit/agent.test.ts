import { describe, expect, it } from 'vitest';
import type { ActionOutcome, ActionRunner, TemplateContext } from '../../lib/actions/port';
import type { RecordedEvent } from '../../lib/checkpoint/record';
import { loadDialogueMap, type DialogueMap, type StateLlm } from '../../lib/flow/map';
import { type AgentContext, type AgentOutcome, runAgent, toolSpecs } from '../../lib/llm/agent';
import {
  type ChatMessage,
  LlmError,
  type LlmClient,
  type LlmRequest,
  type LlmStreamEvent,
  type LlmUsage,
  type SafetyChecker,
  type ToolCall,
} from '../../lib/llm/port';

// ---------------------------------------------------------------------------------------------------
// Fakes

/** A scripted stream step: an event to yield, or something to do (and await) between events. */
type Step = LlmStreamEvent | (() => unknown);

interface FakeCall {
  request: LlmRequest;
  /** A deep copy of the request's messages as they were when the request was made. */
  messages: ChatMessage[];
  deadline: number;
  /** The text deltas actually yielded to the agent. */
  emitted: string[];
  /** Whether the request's signal was aborted when the stream ended (null while it runs). */
  abortedAtEnd: boolean | null;
}

/**
 * A fake LlmClient: call n of stream() plays scripts[n]. Between steps it stops (like the real
 * adapter: no `end` event) once request.signal is aborted, unless `ignoreAbort` (a misbehaving
 * adapter that still delivers the end event).
 */
function fakeLlm(scripts: Step[][], options: { ignoreAbort?: boolean; log?: string[]; defaultModel?: string } = {}): LlmClient & { calls: FakeCall[] } {
  const calls: FakeCall[] = [];
  return {
    defaultModel: options.defaultModel ?? 'fake-default',
    calls,
    async *stream(request: LlmRequest, deadline: number): AsyncGenerator<LlmStreamEvent> {
      const call: FakeCall = { request, messages: structuredClone(request.messages), deadline, emitted: [], abortedAtEnd: null };
      calls.push(call);
      const script = scripts[calls.length - 1];
      if (!script) throw new Error(`fake LLM: stream() called ${calls.length} times, only ${scripts.length} scripted`);
      try {
        for (const step of script) {
          if (request.signal?.aborted && !options.ignoreAbort) return;
          if (typeof step === 'function') {
            await step();
            continue;
          }
          if (step.type === 'text') {
            call.emitted.push(step.delta);
            options.log?.push(`emit:${step.delta}`);
          }
          yield step;
        }
      } finally {
        call.abortedAtEnd = request.signal?.aborted ?? false;
      }
    },
  };
}

const text = (delta: string): LlmStreamEvent => ({ type: 'text', delta });
const usage = (inputTokens: number, outputTokens: number, cachedTokens = 0): LlmUsage => ({ inputTokens, outputTokens, cachedTokens });
function end(toolCalls: ToolCall[] = [], model = 'gpt-fake', u: LlmUsage | null = usage(10, 5, 0)): LlmStreamEvent {
  return { type: 'end', toolCalls, finishReason: toolCalls.length ? 'tool_calls' : 'stop', usage: u, model };
}
const call = (id: string, name: string, args: unknown): ToolCall => ({ id, name, arguments: typeof args === 'string' ? args : JSON.stringify(args) });
const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

function fakeSafety(
  verdict: (text: string) => { safe: boolean; category?: string } = () => ({ safe: true }),
  log?: string[],
): SafetyChecker & { checks: { text: string; language: string }[] } {
  const checks: { text: string; language: string }[] = [];
  return {
    checks,
    async check(text, language) {
      checks.push({ text, language });
      log?.push(`check:${text}`);
      await tick();
      return verdict(text);
    },
  };
}

function fakeActions(
  handler: (name: string, context: TemplateContext) => ActionOutcome | Promise<ActionOutcome> = () => ({ ok: true, result: { price: 3.5 }, ms: 12, attempts: 1 }),
): ActionRunner & { calls: { name: string; context: TemplateContext }[] } {
  const calls: { name: string; context: TemplateContext }[] = [];
  return {
    calls,
    async run(name, context) {
      calls.push({ name, context: structuredClone(context) });
      return handler(name, context);
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The map and the context

const map: DialogueMap = loadDialogueMap({
  name: 'Agent test',
  language: 'en',
  initial_state: 'chat',
  messages: {
    not_understood: 'Sorry?',
    action_failed: 'That failed.',
    action_timeout: 'That took too long.',
    llm_error: 'I cannot answer now.',
    llm_timeout: 'I am too slow today.',
    internal_error: 'Oops.',
  },
  intents: {},
  actions: {
    menu_lookup: { type: 'webhook', url: 'http://menu.test/items/{{ args.item }}', result_variable: 'menu' },
    order_place: { type: 'webhook', url: 'http://menu.test/orders', body: '{"drink":"{{ args.drink }}"}', result_variable: 'order' },
  },
  tools: {
    lookup_menu: {
      description: 'Look up a menu item and its price.',
      parameters: { type: 'object', properties: { item: { type: 'string' } }, required: ['item'] },
      webhook: 'menu_lookup',
    },
    place_order: { description: 'Place an order.', webhook: 'order_place' },
  },
  llm: { safe_response: "Let's talk about coffee instead.", window: 6 },
  states: {
    chat: {
      system_response: { playlist: [{ type: 'tts', text_template: 'Hi!' }] },
      llm: { system_prompt: 'You are the barista of Parley Café.', tools: ['lookup_menu', 'transition_to', 'set_variable', 'end_call'] },
    },
    checkout: { system_response: { playlist: [{ type: 'tts', text_template: 'Paying now.' }] } },
  },
});
const SETTINGS: StateLlm = map.states.chat!.llm!;
const HISTORY: ChatMessage[] = [
  { role: 'user', content: 'hi' },
  { role: 'assistant', content: 'Hello! What can I get you?' },
  { role: 'user', content: 'how much is a latte?' },
];
const TEMPLATE: TemplateContext = { session: { variables: { customer: 'Ada' }, language: 'en', node: 'chat' } };

interface Harness {
  ctx: AgentContext;
  controller: AbortController;
}

function harness(overrides: Partial<AgentContext> & { llm: LlmClient }): Harness {
  const controller = new AbortController();
  const ctx: AgentContext = {
    map,
    settings: SETTINGS,
    safety: fakeSafety(),
    actions: fakeActions(),
    language: 'en',
    system: 'You are the barista of Parley Café.',
    summary: null,
    history: structuredClone(HISTORY),
    template: structuredClone(TEMPLATE),
    deadline: 1_000_000,
    signal: controller.signal,
    now: () => 1000,
    at: () => 7,
    ...overrides,
  };
  return { ctx, controller };
}

/** Runs the generator to its end, recording each delta (and letting the caller react to it). */
async function drive(
  gen: AsyncGenerator<string, AgentOutcome, void>,
  onDelta?: (delta: string) => unknown,
): Promise<{ deltas: string[]; outcome: AgentOutcome }> {
  const deltas: string[] = [];
  let step = await gen.next();
  while (!step.done) {
    deltas.push(step.value);
    await onDelta?.(step.value);
    step = await gen.next();
  }
  return { deltas, outcome: step.value };
}

const ofType = <T extends RecordedEvent['type']>(events: RecordedEvent[], type: T) =>
  events.filter((e): e is Extract<RecordedEvent, { type: T }> => e.type === type);
const toolMessages = (messages: ChatMessage[]) => messages.filter((m): m is Extract<ChatMessage, { role: 'tool' }> => m.role === 'tool');
const parsed = (content: string) => JSON.parse(content) as Record<string, unknown>;

/** Every tool call of every assistant message is answered by a tool message with its id. */
function unansweredToolCalls(messages: ChatMessage[]): string[] {
  const answered = new Set(toolMessages(messages).map((m) => m.tool_call_id));
  return messages.flatMap((m) => (m.role === 'assistant' ? (m.tool_calls ?? []).map((c) => c.id) : [])).filter((id) => !answered.has(id));
}

// ---------------------------------------------------------------------------------------------------

describe('runAgent: a plain answer', () => {
  it('yields the deltas in order, returns their text, one assistant message and one llm_exchange', async () => {
    const llm = fakeLlm([[text('A latte'), text(' is 3.50.'), text(' Anything'), text(' else?'), end([], 'gpt-a', usage(120, 9, 64))]]);
    const { ctx } = harness({ llm });
    const { deltas, outcome } = await drive(runAgent(ctx));

    expect(deltas.join('')).toBe('A latte is 3.50. Anything else?');
    expect(outcome.text).toBe(deltas.join(''));
    expect(outcome.messages).toEqual([{ role: 'assistant', content: 'A latte is 3.50. Anything else?' }]);
    expect(outcome).toMatchObject({ unsafe: false, cancelled: false, error: null, endCall: false, transitionTo: null, variables: {} });
    expect(outcome.usage).toEqual({ 'gpt-a': { inputTokens: 120, outputTokens: 9, cachedTokens: 64 } });

    const exchanges = ofType(outcome.events, 'llm_exchange');
    expect(exchanges).toHaveLength(1);
    expect(exchanges[0]!.requestDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(exchanges[0]).toMatchObject({
      model: 'gpt-a',
      request: { messages: 4, tools: ['lookup_menu', 'transition_to', 'set_variable', 'end_call'] },
      response: { text: 'A latte is 3.50. Anything else?', toolCalls: [], finishReason: 'stop' },
      usage: { inputTokens: 120, outputTokens: 9, cachedTokens: 64 },
      atMs: 7,
    });
    expect(llm.calls).toHaveLength(1);
  });

  it('sends the system prompt (with the running summary), the history and the state tools; the deadline goes to the client', async () => {
    const llm = fakeLlm([[text('Sure.'), end()]]);
    const { ctx } = harness({
      llm,
      summary: 'Ada ordered an espresso earlier.',
      settings: { ...SETTINGS, model: 'gpt-state', temperature: 0.3, max_tokens: 200 },
      deadline: 54_321,
    });
    await drive(runAgent(ctx));
    const [first] = llm.calls;
    expect(first!.request.model).toBe('gpt-state');
    expect(first!.request.temperature).toBe(0.3);
    expect(first!.request.maxTokens).toBe(200);
    expect(first!.deadline).toBe(54_321);
    expect(first!.request.signal).toBeInstanceOf(AbortSignal);
    expect(first!.messages[0]!.role).toBe('system');
    expect(first!.messages[0]!.content).toContain('You are the barista of Parley Café.');
    expect(first!.messages[0]!.content).toContain('Ada ordered an espresso earlier.');
    expect(first!.messages.slice(1)).toEqual(HISTORY);
    expect(first!.request.tools!.map((t) => t.name)).toEqual(['lookup_menu', 'transition_to', 'set_variable', 'end_call']);
    expect(first!.request.tools![0]!.parameters).toEqual(map.tools.lookup_menu!.parameters);
  });

  it('uses the client default model without a state model and sends no tools when the state offers none', async () => {
    const llm = fakeLlm([[text('Sure.'), end()]], { defaultModel: 'gpt-default' });
    const { ctx } = harness({ llm, settings: { ...SETTINGS, tools: [] } });
    await drive(runAgent(ctx));
    expect(llm.calls[0]!.request.model).toBe('gpt-default');
    expect(llm.calls[0]!.request.tools).toBeUndefined();
    expect(llm.calls[0]!.messages[0]).toEqual({ role: 'system', content: 'You are the barista of Parley Café.' });
  });

  it('computes the same request digest for the same request and another for a different one', async () => {
    const run = async (history: ChatMessage[]) => {
      const llm = fakeLlm([[text('Sure.'), end()]]);
      const { outcome } = await drive(runAgent(harness({ llm, history }).ctx));
      return ofType(outcome.events, 'llm_exchange')[0]!.requestDigest;
    };
    const a = await run(HISTORY);
    expect(await run(structuredClone(HISTORY))).toBe(a);
    expect(await run([...HISTORY.slice(0, 2), { role: 'user', content: 'how much is a mocha?' }])).not.toBe(a);
  });

  it('merges usage per model over the rounds (and ignores a round without usage)', async () => {
    const llm = fakeLlm([
      [end([call('c1', 'set_variable', { name: 'size', value: 'large' })], 'gpt-a', usage(100, 10, 50))],
      [end([call('c2', 'set_variable', { name: 'milk', value: 'oat' })], 'gpt-b', usage(7, 3, 1))],
      [end([call('c3', 'set_variable', { name: 'sugar', value: false })], 'gpt-b', null)],
      [text('Done.'), end([], 'gpt-a', usage(200, 20, 100))],
    ]);
    const { outcome } = await drive(runAgent(harness({ llm }).ctx));
    expect(outcome.usage).toEqual({
      'gpt-a': { inputTokens: 300, outputTokens: 30, cachedTokens: 150 },
      'gpt-b': { inputTokens: 7, outputTokens: 3, cachedTokens: 1 },
    });
    const exchanges = ofType(outcome.events, 'llm_exchange');
    expect(exchanges.map((e) => e.model)).toEqual(['gpt-a', 'gpt-b', 'gpt-b', 'gpt-a']);
    expect(exchanges[2]!.usage).toBeNull();
    expect(new Set(exchanges.map((e) => e.requestDigest)).size).toBe(4);
    expect(outcome.variables).toEqual({ size: 'large', milk: 'oat', sugar: false });
    expect(outcome.text).toBe('Done.');
  });
});

describe('runAgent: the first-sentence safety check', () => {
  it('yields nothing before the first sentence is complete and checked', async () => {
    const log: string[] = [];
    const llm = fakeLlm([[text('Hello'), text(' there.'), text(' How can'), text(' I help?'), end()]], { log });
    const safety = fakeSafety(() => ({ safe: true }), log);
    const { deltas, outcome } = await drive(runAgent(harness({ llm, safety }).ctx), (d) => log.push(`yield:${d}`));

    expect(deltas.join('')).toBe('Hello there. How can I help?');
    const firstYield = log.findIndex((l) => l.startsWith('yield:'));
    const check = log.findIndex((l) => l.startsWith('check:'));
    expect(check).toBeGreaterThanOrEqual(0);
    expect(check).toBeLessThan(firstYield);
    // The sentence was only known complete once text after it had arrived.
    expect(log.slice(0, check)).toEqual(['emit:Hello', 'emit: there.', 'emit: How can']);
    expect(safety.checks).toHaveLength(1);
    expect(safety.checks[0]!.text.trim()).toBe('Hello there.');
    expect(safety.checks[0]!.language).toBe('en');
    expect(outcome.text).toBe('Hello there. How can I help?');
  });

  it('checks only the first sentence: later sentences are not checked again', async () => {
    const safety = fakeSafety();
    const llm = fakeLlm([[text('One. '), text('Two. '), text('Three. '), text('Four.'), end()]]);
    const { deltas } = await drive(runAgent(harness({ llm, safety, language: 'ru' }).ctx));
    expect(deltas.join('')).toBe('One. Two. Three. Four.');
    expect(safety.checks).toEqual([{ text: 'One. ', language: 'ru' }]);
  });

  it('an unsafe first sentence: nothing is yielded, the generation is aborted, a safety_trip is recorded', async () => {
    const safety = fakeSafety((t) => (t.includes('hurt') ? { safe: false, category: 'violence' } : { safe: true }));
    const actions = fakeActions();
    const llm = fakeLlm([[text('I will'), text(' hurt you.'), text(' Then'), text(' more.'), end([call('c1', 'end_call', {})])]]);
    const { deltas, outcome } = await drive(runAgent(harness({ llm, safety, actions }).ctx));

    expect(deltas).toEqual([]);
    expect(outcome.text).toBe('');
    expect(outcome.unsafe).toBe(true);
    expect(outcome.messages).toEqual([]);
    expect(outcome.endCall).toBe(false);
    expect(ofType(outcome.events, 'safety_trip')).toEqual([{ type: 'safety_trip', category: 'violence', atMs: 7 }]);
    expect(llm.calls).toHaveLength(1);
    expect(llm.calls[0]!.abortedAtEnd).toBe(true);
    // The rest of the generation was never pulled.
    expect(llm.calls[0]!.emitted).toEqual(['I will', ' hurt you.', ' Then']);
    expect(actions.calls).toEqual([]);
  });

  it('an unsafe verdict without a category is recorded as "unsafe"', async () => {
    const llm = fakeLlm([[text('Bad.'), text(' Worse.'), end()]]);
    const { outcome } = await drive(runAgent(harness({ llm, safety: fakeSafety(() => ({ safe: false })) }).ctx));
    expect(ofType(outcome.events, 'safety_trip')[0]!.category).toBe('unsafe');
  });

  it('checks a one-sentence answer without anything after it once, at the end, before yielding it', async () => {
    const log: string[] = [];
    const safety = fakeSafety(() => ({ safe: true }), log);
    const llm = fakeLlm([[text('Sure'), text(' thing'), end()]], { log });
    const { deltas, outcome } = await drive(runAgent(harness({ llm, safety }).ctx), (d) => log.push(`yield:${d}`));
    expect(safety.checks.map((c) => c.text)).toEqual(['Sure thing']);
    expect(log).toEqual(['emit:Sure', 'emit: thing', 'check:Sure thing', 'yield:Sure thing']);
    expect(deltas).toEqual(['Sure thing']);
    expect(outcome.text).toBe('Sure thing');
  });

  it('an unsafe one-sentence answer yields nothing', async () => {
    const llm = fakeLlm([[text('Something'), text(' awful'), end()]]);
    const { deltas, outcome } = await drive(runAgent(harness({ llm, safety: fakeSafety(() => ({ safe: false, category: 'hate' })) }).ctx));
    expect(deltas).toEqual([]);
    expect(outcome).toMatchObject({ unsafe: true, text: '', messages: [] });
    expect(ofType(outcome.events, 'safety_trip')).toHaveLength(1);
  });
});

describe('runAgent: a webhook tool round trip', () => {
  it('runs the action with the parsed args, answers the model with the JSON result, and asks again', async () => {
    const actions = fakeActions(() => ({ ok: true, result: { item: 'latte', price: 3.5 }, ms: 40, attempts: 1 }));
    const llm = fakeLlm([
      [text('Let me check.'), end([call('c1', 'set_variable', { name: 'size', value: 'large' }), call('c2', 'lookup_menu', { item: 'latte' })])],
      [text('A large latte is 3.50.'), end()],
    ]);
    const { ctx } = harness({ llm, actions });
    const { deltas, outcome } = await drive(runAgent(ctx));

    expect(actions.calls).toHaveLength(1);
    expect(actions.calls[0]!.name).toBe('menu_lookup');
    expect(actions.calls[0]!.context.args).toEqual({ item: 'latte' });
    // The variable set earlier in the same turn is visible to the action; the caller's context is untouched.
    expect(actions.calls[0]!.context.session).toEqual({ variables: { customer: 'Ada', size: 'large' }, language: 'en', node: 'chat' });
    expect(ctx.template).toEqual(TEMPLATE);

    const assistantCall: ChatMessage = {
      role: 'assistant',
      content: 'Let me check.',
      tool_calls: [call('c1', 'set_variable', { name: 'size', value: 'large' }), call('c2', 'lookup_menu', { item: 'latte' })],
    };
    const results = toolMessages(outcome.messages);
    expect(results.map((m) => m.tool_call_id)).toEqual(['c1', 'c2']);
    expect(JSON.parse(results[1]!.content)).toEqual({ item: 'latte', price: 3.5 });

    expect(llm.calls).toHaveLength(2);
    expect(llm.calls[1]!.messages).toEqual([...llm.calls[0]!.messages, assistantCall, results[0], results[1]]);
    expect(outcome.messages).toEqual([assistantCall, results[0], results[1], { role: 'assistant', content: 'A large latte is 3.50.' }]);
    expect(deltas.join('')).toBe('Let me check.A large latte is 3.50.');
    expect(outcome.text).toBe(deltas.join(''));

    expect(ofType(outcome.events, 'action')).toEqual([{ type: 'action', name: 'menu_lookup', ok: true, ms: 40, attempts: 1, result: { item: 'latte', price: 3.5 }, atMs: 7 }]);
    expect(ofType(outcome.events, 'tool_call').map((e) => [e.name, e.ok])).toEqual([
      ['set_variable', true],
      ['lookup_menu', true],
    ]);
    expect(ofType(outcome.events, 'llm_exchange').map((e) => e.response.toolCalls.length)).toEqual([2, 0]);
  });

  it('tool calls run only after their generation ended (never while it streams)', async () => {
    const log: string[] = [];
    const actions = fakeActions((name) => {
      log.push(`action:${name}`);
      return { ok: true, result: {}, ms: 1, attempts: 1 };
    });
    const llm = fakeLlm([[text('Checking'), text(' now.'), () => log.push('before-end'), end([call('c1', 'lookup_menu', { item: 'tea' })])], [text('OK.'), end()]]);
    await drive(runAgent(harness({ llm, actions }).ctx));
    expect(log).toEqual(['before-end', 'action:menu_lookup']);
  });

  it('a failing action answers the model with an error result instead of throwing, and the loop goes on', async () => {
    const actions = fakeActions(() => ({ ok: false, kind: 'action_timeout', detail: 'no answer within 3000 ms', ms: 3000, attempts: 2 }));
    const llm = fakeLlm([[end([call('c1', 'lookup_menu', { item: 'latte' })])], [text('Sorry, the menu is unavailable.'), end()]]);
    const { outcome } = await drive(runAgent(harness({ llm, actions }).ctx));

    const [result] = toolMessages(outcome.messages);
    expect(result!.tool_call_id).toBe('c1');
    expect(parsed(result!.content).error).toEqual(expect.stringContaining('action_timeout'));
    expect(llm.calls).toHaveLength(2);
    expect(llm.calls[1]!.messages.at(-1)).toEqual(result);
    expect(outcome.text).toBe('Sorry, the menu is unavailable.');
    expect(outcome.error).toBeNull();
    expect(ofType(outcome.events, 'action')[0]).toMatchObject({ ok: false, kind: 'action_timeout', detail: 'no answer within 3000 ms', attempts: 2 });
    expect(ofType(outcome.events, 'tool_call')[0]).toMatchObject({ name: 'lookup_menu', ok: false });
  });

  it('a null action result reaches the model as JSON null', async () => {
    const actions = fakeActions(() => ({ ok: true, result: undefined, ms: 1, attempts: 1 }));
    const llm = fakeLlm([[end([call('c1', 'lookup_menu', { item: 'x' })])], [text('OK.'), end()]]);
    const { outcome } = await drive(runAgent(harness({ llm, actions }).ctx));
    expect(toolMessages(outcome.messages)[0]!.content).toBe('null');
  });
});

describe('runAgent: tool call validation', () => {
  it.each([
    ['an unknown tool name', call('c1', 'order_pizza', { size: 'xl' })],
    ['an empty name', call('c1', '', { item: 'latte' })],
    ['a whitespace name', call('c1', '   ', { item: 'latte' })],
    ['whitespace-only arguments', call('c1', 'lookup_menu', ' \n\t ')],
    ['empty arguments', call('c1', 'lookup_menu', '')],
    ['invalid JSON', call('c1', 'lookup_menu', '{"item": "latte"')],
    ['a JSON array', call('c1', 'lookup_menu', '["latte"]')],
    ['JSON null', call('c1', 'lookup_menu', 'null')],
    ['a JSON string', call('c1', 'lookup_menu', '"latte"')],
    ['a JSON number', call('c1', 'lookup_menu', '42')],
    ['a tool declared in map.tools that the state does not offer', call('c1', 'place_order', { drink: 'latte' })],
    ['a built-in tool the state does not offer', call('c1', 'end_call', {})],
  ])('%s: an error result goes back to the model and the loop continues', async (_, bad) => {
    const actions = fakeActions();
    const settings = bad.name === 'end_call' ? { ...SETTINGS, tools: ['lookup_menu'] } : SETTINGS;
    const llm = fakeLlm([[end([bad])], [text('Let me try that differently.'), end()]]);
    const { outcome } = await drive(runAgent(harness({ llm, actions, settings }).ctx));

    expect(actions.calls).toEqual([]);
    const [result] = toolMessages(outcome.messages);
    expect(result!.tool_call_id).toBe('c1');
    expect(parsed(result!.content)).toHaveProperty('error');
    expect(typeof parsed(result!.content).error).toBe('string');
    expect(llm.calls).toHaveLength(2);
    expect(llm.calls[1]!.messages.at(-1)).toEqual(result);
    expect(outcome.text).toBe('Let me try that differently.');
    expect(outcome).toMatchObject({ error: null, endCall: false, transitionTo: null, variables: {} });
    expect(ofType(outcome.events, 'tool_call')).toEqual([expect.objectContaining({ ok: false, name: bad.name, arguments: bad.arguments })]);
  });

  it('one bad call does not stop the good ones of the same round', async () => {
    const actions = fakeActions();
    const llm = fakeLlm([[end([call('c1', 'lookup_menu', '{oops'), call('c2', 'lookup_menu', { item: 'tea' })])], [text('Tea is 2.'), end()]]);
    const { outcome } = await drive(runAgent(harness({ llm, actions }).ctx));
    expect(actions.calls.map((c) => c.context.args)).toEqual([{ item: 'tea' }]);
    const results = toolMessages(outcome.messages);
    expect(results.map((m) => [m.tool_call_id, 'error' in parsed(m.content)])).toEqual([
      ['c1', true],
      ['c2', false],
    ]);
  });

  it('toolSpecs describes the built-ins, the transition_to states and the declared tools', () => {
    const specs = toolSpecs(map, SETTINGS);
    expect(specs.map((s) => s.name)).toEqual(SETTINGS.tools);
    expect(specs.find((s) => s.name === 'transition_to')!.parameters).toMatchObject({ properties: { state: { enum: ['chat', 'checkout'] } } });
    expect(specs.find((s) => s.name === 'lookup_menu')!.description).toBe('Look up a menu item and its price.');
  });
});

describe('runAgent: built-in tools', () => {
  const oneCall = async (c: ToolCall, settings: StateLlm = SETTINGS) => {
    const llm = fakeLlm([[end([c])], [text('OK.'), end()]]);
    const { outcome } = await drive(runAgent(harness({ llm, settings }).ctx));
    expect(llm.calls).toHaveLength(2);
    return { outcome, result: parsed(toolMessages(outcome.messages)[0]!.content) };
  };

  it('transition_to a state of the map sets transitionTo', async () => {
    const { outcome, result } = await oneCall(call('t1', 'transition_to', { state: 'checkout' }));
    expect(outcome.transitionTo).toBe('checkout');
    expect(result).not.toHaveProperty('error');
  });

  it.each([
    ['an unknown state', { state: 'nowhere' }],
    ['a number', { state: 5 }],
    ['no state', {}],
  ])('transition_to with %s answers an error and does not move', async (_, args) => {
    const { outcome, result } = await oneCall(call('t1', 'transition_to', args));
    expect(outcome.transitionTo).toBeNull();
    expect(result).toHaveProperty('error');
  });

  // Regression, fixed (lib/llm/agent.ts, builtin(), case 'transition_to'): `!ctx.map.states[state]` looks the
  // name up through the prototype chain, so 'constructor', 'toString' or '__proto__' (model output,
  // which a user can steer) count as states and become outcome.transitionTo, which run-turn then
  // enters. Fix: `!Object.hasOwn(ctx.map.states, state)`.
  it.each(['constructor', 'toString', '__proto__'])('transition_to %s (an Object.prototype name) is an unknown state', async (state) => {
    const { outcome, result } = await oneCall(call('t1', 'transition_to', { state }));
    expect(result).toHaveProperty('error');
    expect(outcome.transitionTo).toBeNull();
  });

  it('set_variable stores strings, numbers and booleans into outcome.variables', async () => {
    const llm = fakeLlm([
      [
        end([
          call('v1', 'set_variable', { name: 'size', value: 'large' }),
          call('v2', 'set_variable', { name: 'shots', value: 2 }),
          call('v3', 'set_variable', { name: '_decaf', value: true }),
        ]),
      ],
      [text('Noted.'), end()],
    ]);
    const { outcome } = await drive(runAgent(harness({ llm }).ctx));
    expect(outcome.variables).toEqual({ size: 'large', shots: 2, _decaf: true });
    expect(toolMessages(outcome.messages).every((m) => !('error' in parsed(m.content)))).toBe(true);
  });

  it.each([
    ['a name starting with a digit', { name: '1st', value: 'x' }],
    ['a name with a dash', { name: 'milk-type', value: 'oat' }],
    ['an empty name', { name: '', value: 'x' }],
    ['a missing name', { value: 'x' }],
    ['a non-string name', { name: 7, value: 'x' }],
    ['an object value', { name: 'order', value: { id: 1 } }],
    ['an array value', { name: 'items', value: [1, 2] }],
    ['a null value', { name: 'size', value: null }],
    ['a missing value', { name: 'size' }],
    ['a string value longer than 500 characters (the checkpoint stays small)', { name: 'notes', value: 'x'.repeat(501) }],
  ])('set_variable with %s answers an error and stores nothing', async (_, args) => {
    const { outcome, result } = await oneCall(call('v1', 'set_variable', args));
    expect(result).toHaveProperty('error');
    expect(outcome.variables).toEqual({});
  });

  // Regression, fixed (lib/llm/agent.ts, builtin(), case 'set_variable'): the name regex admits '__proto__';
  // `out.variables['__proto__'] = value` with a primitive value is silently ignored by JavaScript, so
  // the model is told `{"ok":true}` but nothing is stored. Fix: reject it (or store with
  // Object.defineProperty / a null-prototype object).
  it('set_variable __proto__ is either stored or answered with an error, never a silent ok', async () => {
    const { outcome, result } = await oneCall(call('v1', 'set_variable', { name: '__proto__', value: 'x' }));
    expect('error' in result || Object.hasOwn(outcome.variables, '__proto__')).toBe(true);
  });

  it('end_call sets endCall (with or without a reason), and the model still answers', async () => {
    for (const args of [{}, { reason: 'the user said goodbye' }]) {
      const { outcome, result } = await oneCall(call('e1', 'end_call', args));
      expect(outcome.endCall).toBe(true);
      expect(result).not.toHaveProperty('error');
      expect(outcome.text).toBe('OK.');
    }
  });
});

describe('runAgent: cancellation', () => {
  it.each([
    ['an adapter that stops at the abort', false],
    ['an adapter that still delivers the end event', true],
  ])('an abort mid-stream cancels, and the tool calls of that generation never run (%s)', async (_, ignoreAbort) => {
    const actions = fakeActions();
    const controller = new AbortController();
    const llm = fakeLlm(
      [
        [text('Sure. '), text('Let me'), () => controller.abort(), end([call('c1', 'end_call', {}), call('c2', 'lookup_menu', { item: 'x' }), call('c3', 'transition_to', { state: 'checkout' })])],
        [text('Round two.'), end()],
      ],
      { ignoreAbort },
    );
    const { ctx } = harness({ llm, actions, signal: controller.signal });
    const { deltas, outcome } = await drive(runAgent(ctx));

    expect(outcome.cancelled).toBe(true);
    expect(actions.calls).toEqual([]);
    expect(outcome.endCall).toBe(false);
    expect(outcome.transitionTo).toBeNull();
    expect(toolMessages(outcome.messages)).toEqual([]);
    expect(outcome.messages.some((m) => m.role === 'assistant' && m.tool_calls?.length)).toBe(false);
    expect(ofType(outcome.events, 'tool_call')).toEqual([]);
    expect(llm.calls).toHaveLength(1);
    expect(llm.calls[0]!.abortedAtEnd).toBe(true);
    expect(deltas.join('')).toBe('Sure. Let me');
    expect(outcome.text).toBe('Sure. Let me');
  });

  it('the consumer aborting while it handles a delta stops the stream and every later round', async () => {
    const actions = fakeActions();
    const controller = new AbortController();
    const llm = fakeLlm([
      [text('Hello. '), text('I will'), text(' end'), text(' the call.'), end([call('c1', 'end_call', {})])],
      [text('Bye.'), end()],
    ]);
    const { ctx } = harness({ llm, actions, signal: controller.signal });
    const { deltas, outcome } = await drive(runAgent(ctx), () => controller.abort());

    expect(deltas).toEqual(['Hello. I will']);
    expect(outcome.cancelled).toBe(true);
    expect(outcome.endCall).toBe(false);
    expect(llm.calls).toHaveLength(1);
    expect(llm.calls[0]!.emitted).toEqual(['Hello. ', 'I will']);
    expect(llm.calls[0]!.abortedAtEnd).toBe(true);
    expect(ofType(outcome.events, 'llm_exchange')).toEqual([]);
  });

  it('an abort during a tool call keeps the later calls of that round from running', async () => {
    const controller = new AbortController();
    const actions = fakeActions(() => {
      controller.abort();
      return { ok: true, result: {}, ms: 1, attempts: 1 };
    });
    const llm = fakeLlm([[end([call('c1', 'lookup_menu', { item: 'a' }), call('c2', 'lookup_menu', { item: 'b' }), call('c3', 'end_call', {})])], [text('Next.'), end()]]);
    const { outcome } = await drive(runAgent(harness({ llm, actions, signal: controller.signal }).ctx));
    expect(actions.calls.map((c) => c.context.args)).toEqual([{ item: 'a' }]);
    expect(outcome.endCall).toBe(false);
    expect(outcome.cancelled).toBe(true);
  });

  // Regression, fixed (lib/llm/agent.ts, runAgent's round loop): nothing checks ctx.signal before a round
  // starts, and `ctx.signal.addEventListener('abort', stop)` never fires on a signal that is already
  // aborted, so after an abort during a tool call (or before runAgent starts) a new generation is
  // requested with a live signal and its text is yielded to the client after the cancel; only
  // afterwards is `cancelled` set. Fix: at the top of each round,
  // `if (ctx.signal.aborted) { out.cancelled = true; break; }` (and abort `generation` at once when
  // ctx.signal is already aborted).
  it('an abort during a tool call starts no further round and yields nothing more', async () => {
    const controller = new AbortController();
    const actions = fakeActions(() => {
      controller.abort();
      return { ok: true, result: { price: 2 }, ms: 1, attempts: 1 };
    });
    const llm = fakeLlm([[end([call('c1', 'lookup_menu', { item: 'tea' })])], [text('Tea is 2 euros.'), end([call('c2', 'end_call', {})])]]);
    const { deltas, outcome } = await drive(runAgent(harness({ llm, actions, signal: controller.signal }).ctx));
    expect(outcome.cancelled).toBe(true);
    expect(deltas).toEqual([]);
    expect(llm.calls).toHaveLength(1);
  });

  it('a signal aborted before the agent starts makes no request', async () => {
    const controller = new AbortController();
    controller.abort();
    const llm = fakeLlm([[text('Hello there.'), end()]]);
    const { deltas, outcome } = await drive(runAgent(harness({ llm, signal: controller.signal }).ctx));
    expect(outcome.cancelled).toBe(true);
    expect(deltas).toEqual([]);
    expect(llm.calls).toHaveLength(0);
  });

  // Regression, fixed (lib/llm/agent.ts, the tool loop `if (ctx.signal.aborted) break;`): an abort between
  // two tool calls of one round leaves the assistant message's later tool_calls without a tool
  // message; run-turn stores outcome.messages in the checkpoint as they are, and chat-completions
  // servers reject the next turn's request ("tool_call_ids did not have response messages"). Fix:
  // answer every remaining call with an error result, e.g. `{"error":"cancelled"}`, instead of breaking
  // (or drop the unanswered calls from the assistant message).
  it('an abort between tool calls leaves no tool call unanswered in the messages', async () => {
    const controller = new AbortController();
    const actions = fakeActions(() => {
      controller.abort();
      return { ok: true, result: {}, ms: 1, attempts: 1 };
    });
    const llm = fakeLlm([[end([call('c1', 'lookup_menu', { item: 'a' }), call('c2', 'lookup_menu', { item: 'b' })])], [text('Next.'), end()]]);
    const { outcome } = await drive(runAgent(harness({ llm, actions, signal: controller.signal }).ctx));
    expect(outcome.cancelled).toBe(true);
    expect(actions.calls).toHaveLength(1);
    expect(unansweredToolCalls(outcome.messages)).toEqual([]);
  });
});

describe('runAgent: bounds', () => {
  it('a model that always calls a tool stops after max_rounds requests with llm_rounds_exhausted', async () => {
    const actions = fakeActions();
    const always = (i: number): Step[] => [end([call(`c${i}`, 'lookup_menu', { item: `item${i}` })])];
    const llm = fakeLlm([always(1), always(2), always(3), always(4), always(5)]);
    const { deltas, outcome } = await drive(runAgent(harness({ llm, actions, settings: { ...SETTINGS, max_rounds: 3 } }).ctx));

    expect(llm.calls).toHaveLength(3);
    expect(actions.calls).toHaveLength(3);
    expect(ofType(outcome.events, 'llm_rounds_exhausted')).toEqual([{ type: 'llm_rounds_exhausted', rounds: 3, atMs: 7 }]);
    expect(ofType(outcome.events, 'llm_exchange')).toHaveLength(3);
    expect(deltas).toEqual([]);
    expect(unansweredToolCalls(outcome.messages)).toEqual([]);
  });

  it('an answer in the last allowed round is not "exhausted"', async () => {
    const llm = fakeLlm([[end([call('c1', 'lookup_menu', { item: 'a' })])], [text('Here you go.'), end()]]);
    const { outcome } = await drive(runAgent(harness({ llm, settings: { ...SETTINGS, max_rounds: 2 } }).ctx));
    expect(llm.calls).toHaveLength(2);
    expect(outcome.text).toBe('Here you go.');
    expect(ofType(outcome.events, 'llm_rounds_exhausted')).toEqual([]);
  });

  it('max_rounds 1 with a tool call: exactly one request', async () => {
    const llm = fakeLlm([[end([call('c1', 'set_variable', { name: 'a', value: 1 })])], [text('never'), end()]]);
    const { outcome } = await drive(runAgent(harness({ llm, settings: { ...SETTINGS, max_rounds: 1 } }).ctx));
    expect(llm.calls).toHaveLength(1);
    expect(ofType(outcome.events, 'llm_rounds_exhausted')).toHaveLength(1);
  });

  it('a deadline already passed: llm_timeout without any request', async () => {
    const llm = fakeLlm([[text('never'), end()]]);
    const { deltas, outcome } = await drive(runAgent(harness({ llm, now: () => 5000, deadline: 5000 }).ctx));
    expect(outcome.error).toBe('llm_timeout');
    expect(llm.calls).toHaveLength(0);
    expect(deltas).toEqual([]);
    expect(outcome.messages).toEqual([]);
  });

  it('a deadline passing during a tool round: no further request, llm_timeout, the round so far kept', async () => {
    let now = 1000;
    const actions = fakeActions(() => {
      now = 9000;
      return { ok: true, result: { price: 2 }, ms: 8000, attempts: 1 };
    });
    const llm = fakeLlm([[end([call('c1', 'lookup_menu', { item: 'tea' })])], [text('never'), end()]]);
    const { outcome } = await drive(runAgent(harness({ llm, actions, now: () => now, deadline: 5000 }).ctx));
    expect(llm.calls).toHaveLength(1);
    expect(outcome.error).toBe('llm_timeout');
    expect(outcome.messages.map((m) => m.role)).toEqual(['assistant', 'tool']);
  });
});

describe('runAgent: LLM failures', () => {
  it.each([
    ['llm_timeout' as const, new LlmError('llm_timeout', 'no answer within the deadline after 3 attempts', { attempts: 3 })],
    ['llm_error' as const, new LlmError('llm_error', 'HTTP 500 from the model server', { status: 500 })],
  ])('an LlmError (%s) becomes outcome.error and an llm_error event; nothing is thrown', async (kind, err) => {
    const llm = fakeLlm([
      [
        () => {
          throw err;
        },
      ],
    ]);
    const { deltas, outcome } = await drive(runAgent(harness({ llm }).ctx));
    expect(outcome.error).toBe(kind);
    expect(ofType(outcome.events, 'llm_error')).toEqual([{ type: 'llm_error', kind, detail: err.message, atMs: 7 }]);
    expect(deltas).toEqual([]);
    expect(outcome.messages).toEqual([]);
    expect(llm.calls).toHaveLength(1);
  });

  it('a failure mid-stream keeps what was already sent, adds no assistant message and asks no more', async () => {
    const llm = fakeLlm([
      [
        text('Hello. '),
        text('I was'),
        () => {
          throw new LlmError('llm_error', 'connection reset');
        },
        end(),
      ],
      [text('never'), end()],
    ]);
    const { deltas, outcome } = await drive(runAgent(harness({ llm }).ctx));
    expect(deltas.join('')).toBe('Hello. I was');
    expect(outcome.text).toBe('Hello. I was');
    expect(outcome.error).toBe('llm_error');
    expect(outcome.messages).toEqual([]);
    expect(llm.calls).toHaveLength(1);
  });

  it('a failure in the second round keeps the first round and its tool results', async () => {
    const llm = fakeLlm([
      [end([call('c1', 'set_variable', { name: 'size', value: 'small' })])],
      [
        () => {
          throw new LlmError('llm_timeout', 'slow');
        },
      ],
    ]);
    const { outcome } = await drive(runAgent(harness({ llm }).ctx));
    expect(outcome.error).toBe('llm_timeout');
    expect(outcome.variables).toEqual({ size: 'small' });
    expect(outcome.messages.map((m) => m.role)).toEqual(['assistant', 'tool']);
  });

  it('any other error from the client is an llm_error', async () => {
    const llm = fakeLlm([
      [
        () => {
          throw new TypeError('fetch failed');
        },
      ],
    ]);
    const { outcome } = await drive(runAgent(harness({ llm }).ctx));
    expect(outcome.error).toBe('llm_error');
    expect(ofType(outcome.events, 'llm_error')[0]).toMatchObject({ kind: 'llm_error', detail: 'fetch failed' });
  });

  // Regression, fixed (lib/llm/agent.ts, runAgent's catch): `(err as Error).message.slice(0, 200)` throws a
  // TypeError out of the generator when the client rejects with something that is not an Error (a
  // string, a plain object). Fix: `detail: (err instanceof Error ? err.message : String(err)).slice(0, 200)`.
  it('a non-Error thrown by the client is still an llm_error, not an exception', async () => {
    const llm = fakeLlm([
      [
        () => {
          throw 'socket hang up';
        },
      ],
    ]);
    const { outcome } = await drive(runAgent(harness({ llm }).ctx));
    expect(outcome.error).toBe('llm_error');
  });

  it('the llm_error detail is cut to 200 characters', async () => {
    const llm = fakeLlm([
      [
        () => {
          throw new LlmError('llm_error', 'x'.repeat(1000));
        },
      ],
    ]);
    const { outcome } = await drive(runAgent(harness({ llm }).ctx));
    expect(ofType(outcome.events, 'llm_error')[0]!.detail).toHaveLength(200);
  });
});
