import { describe, expect, it } from 'vitest';
import type { ActionRunner, TemplateContext } from '../../lib/actions/port';
import { type Checkpoint, emptyCheckpoint, type LlmMessage } from '../../lib/checkpoint/schema';
import { loadDialogueMap, type DialogueMap } from '../../lib/flow/map';
import { type LlmClient, LlmError, type LlmRequest, type LlmStreamEvent, type LlmUsage, type SafetyChecker } from '../../lib/llm/port';
import type { Usage } from '../../lib/protocol/v1';
import { addUsage, answerWithLlm, foldContext, type LlmPorts, llmSettingsFor } from '../../lib/runner/llm-turn';

// ---------------------------------------------------------------------------------------------------
// Fakes

type Step = LlmStreamEvent | (() => unknown);

/** A fake LlmClient: call n of stream() plays scripts[n] and records the request. */
function fakeLlm(scripts: Step[][], defaultModel = 'gpt-summary'): LlmClient & { calls: { request: LlmRequest; deadline: number }[] } {
  const calls: { request: LlmRequest; deadline: number }[] = [];
  return {
    defaultModel,
    calls,
    async *stream(request: LlmRequest, deadline: number): AsyncGenerator<LlmStreamEvent> {
      calls.push({ request: { ...request, messages: structuredClone(request.messages) }, deadline });
      const script = scripts[calls.length - 1];
      if (!script) throw new Error(`fake LLM: stream() called ${calls.length} times, only ${scripts.length} scripted`);
      for (const step of script) {
        if (request.signal?.aborted) return;
        if (typeof step === 'function') {
          await step();
          continue;
        }
        yield step;
      }
    },
  };
}

const text = (delta: string): LlmStreamEvent => ({ type: 'text', delta });
const end = (model = 'gpt-summary', usage: LlmUsage | null = { inputTokens: 300, outputTokens: 40, cachedTokens: 0 }): LlmStreamEvent => ({
  type: 'end',
  toolCalls: [],
  finishReason: 'stop',
  usage,
  model,
});
const safeAlways: SafetyChecker = { check: async () => ({ safe: true }) };
const ports = (client: LlmClient): LlmPorts => ({ client, safety: safeAlways, budgetMs: 15_000 });
const noActions: ActionRunner = {
  run: async () => {
    throw new Error('no action expected');
  },
};

// ---------------------------------------------------------------------------------------------------
// Fixtures

const MESSAGES = {
  not_understood: 'Sorry?',
  action_failed: 'That failed.',
  action_timeout: 'That took too long.',
  llm_error: 'I cannot answer now.',
  llm_timeout: 'I am too slow today.',
  internal_error: 'Oops.',
};
const playlist = { playlist: [{ type: 'tts', text_template: 'Hello.' }] };

function makeMap(withDefault: boolean): DialogueMap {
  return loadDialogueMap({
    name: 'LLM turn test',
    language: 'en',
    languages: ['ru'],
    initial_state: 'welcome',
    messages: MESSAGES,
    intents: {},
    llm: {
      ...(withDefault ? { default: { system_prompt: 'You are the default assistant.', max_rounds: 2 } } : {}),
      safe_response: 'Let us talk about coffee.',
    },
    states: {
      welcome: { system_response: playlist },
      barista: {
        system_response: playlist,
        llm: {
          system_prompt: { en: 'You serve {{ session.variables.customer }} in English.', ru: 'Вы обслуживаете {{ session.variables.customer }}.' },
          tools: ['end_call'],
          model: 'gpt-barista',
        },
      },
    },
  });
}

const user = (content: string): LlmMessage => ({ role: 'user', content });
const assistant = (content: string, toolCallIds: string[] = []): LlmMessage =>
  toolCallIds.length
    ? { role: 'assistant', content, tool_calls: toolCallIds.map((id) => ({ id, name: 'lookup_menu', arguments: '{"item":"tea"}' })) }
    : { role: 'assistant', content };
const tool = (id: string, content = '{"price":2}'): LlmMessage => ({ role: 'tool', content, tool_call_id: id });

/** 8 plain messages: u0 a0 u1 a1 u2 a2 u3 a3. */
const plain = (n = 8): LlmMessage[] => Array.from({ length: n }, (_, i) => (i % 2 ? assistant(`answer ${(i - 1) / 2}`) : user(`question ${i / 2}`)));

const checkpointWith = (messages: LlmMessage[], summary: string | null = null): Checkpoint => ({ ...emptyCheckpoint(), currentNode: 'barista', messages, summary });

const fold = (checkpoint: Checkpoint, window: number, p: LlmPorts | undefined, everything?: boolean) =>
  foldContext({ checkpoint, window, ports: p, language: 'en', now: () => 1_000_000, at: () => 42, ...(everything === undefined ? {} : { everything }) });

/** A tool message in `kept` whose call is not in `kept` too. */
function orphans(kept: readonly LlmMessage[]): string[] {
  const calls = new Set(kept.flatMap((m) => (m.role === 'assistant' ? ((m.tool_calls as { id: string }[] | undefined) ?? []).map((c) => c.id) : [])));
  return kept.filter((m) => m.role === 'tool' && !calls.has(m.tool_call_id as string)).map((m) => m.tool_call_id as string);
}

// ---------------------------------------------------------------------------------------------------

describe('llmSettingsFor', () => {
  const withDefault = makeMap(true);
  const withoutDefault = makeMap(false);

  it("a state's own settings beat the map default", () => {
    const settings = llmSettingsFor(withDefault, 'barista');
    expect(settings).toBe(withDefault.states.barista!.llm);
    expect(settings!.model).toBe('gpt-barista');
  });

  it('a state without its own settings gets the map default', () => {
    expect(llmSettingsFor(withDefault, 'welcome')).toBe(withDefault.llm!.default);
    expect(llmSettingsFor(withDefault, 'welcome')!.max_rounds).toBe(2);
    expect(llmSettingsFor(withDefault, null)).toBe(withDefault.llm!.default);
    expect(llmSettingsFor(withDefault, 'no_such_state')).toBe(withDefault.llm!.default);
  });

  it('no settings anywhere: undefined', () => {
    expect(llmSettingsFor(withoutDefault, 'welcome')).toBeUndefined();
    expect(llmSettingsFor(withoutDefault, null)).toBeUndefined();
    expect(llmSettingsFor(withoutDefault, 'barista')).toBe(withoutDefault.states.barista!.llm);
  });
});

describe('addUsage', () => {
  const total: Usage = {
    llm: { 'gpt-a': { inputTokens: 100, outputTokens: 10, cachedTokens: 50 } },
    ttsCharacters: 77,
    sttSeconds: 3.5,
  };

  it('adds per model: a known model is summed, a new model is added, speech totals stay', () => {
    const sum = addUsage(total, {
      'gpt-a': { inputTokens: 20, outputTokens: 2, cachedTokens: 5 },
      'gpt-b': { inputTokens: 7, outputTokens: 1, cachedTokens: 0 },
    });
    expect(sum).toEqual({
      llm: {
        'gpt-a': { inputTokens: 120, outputTokens: 12, cachedTokens: 55 },
        'gpt-b': { inputTokens: 7, outputTokens: 1, cachedTokens: 0 },
      },
      ttsCharacters: 77,
      sttSeconds: 3.5,
    });
  });

  it('does not mutate the total, and adding nothing changes nothing', () => {
    const copy = structuredClone(total);
    addUsage(total, { 'gpt-a': { inputTokens: 1, outputTokens: 1, cachedTokens: 1 } });
    expect(total).toEqual(copy);
    expect(addUsage(total, {})).toEqual(total);
    expect(addUsage({ llm: {}, ttsCharacters: 0, sttSeconds: 0 }, {})).toEqual({ llm: {}, ttsCharacters: 0, sttSeconds: 0 });
  });

  it('accumulates over several turns', () => {
    let sum: Usage = { llm: {}, ttsCharacters: 0, sttSeconds: 0 };
    for (let i = 0; i < 3; i++) sum = addUsage(sum, { m: { inputTokens: 10, outputTokens: 1, cachedTokens: 2 } });
    expect(sum.llm).toEqual({ m: { inputTokens: 30, outputTokens: 3, cachedTokens: 6 } });
  });
});

describe('answerWithLlm', () => {
  it('renders the localized system prompt, passes the summary and the stored messages, and gives the budget as the deadline', async () => {
    const map = makeMap(true);
    const client = fakeLlm([[text('Готово.'), end('gpt-barista')]]);
    const checkpoint = checkpointWith([user('привет'), assistant('Здравствуйте!'), user('латте, пожалуйста')], 'Ада пришла за кофе.');
    const template: TemplateContext = { session: { variables: { customer: 'Ада' }, language: 'ru', node: 'barista' } };
    const gen = answerWithLlm({
      map,
      ports: ports(client),
      actions: noActions,
      settings: map.states.barista!.llm!,
      checkpoint,
      language: 'ru',
      template,
      signal: new AbortController().signal,
      now: () => 50_000,
      at: () => 1,
    });
    const deltas: string[] = [];
    let step = await gen.next();
    while (!step.done) {
      deltas.push(step.value);
      step = await gen.next();
    }
    expect(deltas.join('')).toBe('Готово.');
    expect(step.value.text).toBe('Готово.');
    expect(client.calls).toHaveLength(1);
    const [{ request, deadline }] = client.calls as [{ request: LlmRequest; deadline: number }];
    expect(deadline).toBe(65_000);
    expect(request.model).toBe('gpt-barista');
    expect(request.messages[0]!.role).toBe('system');
    expect(request.messages[0]!.content).toContain('Вы обслуживаете Ада.');
    expect(request.messages[0]!.content).toContain('Ада пришла за кофе.');
    expect(request.messages.slice(1)).toEqual(checkpoint.messages);
    expect(request.tools!.map((t) => t.name)).toEqual(['end_call']);
  });
});

describe('foldContext', () => {
  it('under (or at) the window nothing changes and no LLM call is made', async () => {
    const client = fakeLlm([]);
    for (const n of [0, 3, 6]) {
      const checkpoint = checkpointWith(plain(n), 'old summary');
      const result = await fold(checkpoint, 6, ports(client));
      expect(result.checkpoint).toEqual(checkpoint);
      expect(result.event).toBeNull();
      expect(result.usage).toEqual({});
    }
    expect(client.calls).toHaveLength(0);
  });

  it('over the window: all but half a window fold into an LLM summary that includes the previous one', async () => {
    const client = fakeLlm([[text('  Ada asked two questions'), text(' about lattes.  '), end('gpt-summary', { inputTokens: 300, outputTokens: 40, cachedTokens: 8 })]]);
    const messages = plain(8);
    const checkpoint = checkpointWith(messages, 'Ada is a regular.');
    const copy = structuredClone(checkpoint);
    const result = await fold(checkpoint, 4, ports(client));

    // Half a window stays, so the next summary is window/2 messages away, not one turn away.
    expect(result.checkpoint.messages).toEqual(messages.slice(6));
    expect(result.checkpoint.summary).toBe('Ada asked two questions about lattes.');
    expect(result.event).toEqual({ type: 'summary', folded: 6, ok: true, atMs: 42 });
    expect(result.usage).toEqual({ 'gpt-summary': { inputTokens: 300, outputTokens: 40, cachedTokens: 8 } });
    // Everything else of the checkpoint stays; the input is not mutated.
    expect({ ...result.checkpoint, messages: copy.messages, summary: copy.summary }).toEqual(copy);
    expect(checkpoint).toEqual(copy);

    expect(client.calls).toHaveLength(1);
    const { request } = client.calls[0]!;
    expect(request.model).toBe('gpt-summary');
    const prompt = request.messages.map((m) => m.content).join('\n');
    expect(prompt).toContain('Ada is a regular.');
    for (const m of messages.slice(0, 6)) expect(prompt).toContain(m.content);
    for (const m of messages.slice(6)) expect(prompt).not.toContain(m.content);
  });

  it('without a previous summary the request does not invent one', async () => {
    const client = fakeLlm([[text('Short summary.'), end()]]);
    const result = await fold(checkpointWith(plain(8)), 4, ports(client));
    expect(result.checkpoint.summary).toBe('Short summary.');
    expect(client.calls[0]!.request.messages.map((m) => m.content).join('\n')).not.toMatch(/summary so far/i);
  });

  it('tool results are not put into the summary transcript as user or assistant text', async () => {
    const client = fakeLlm([[text('Tea costs 2.'), end()]]);
    const messages = [user('tea price?'), assistant('', ['c1']), tool('c1', '{"secret_internal_field":1}'), assistant('Tea is 2.'), user('thanks'), assistant('Welcome!')];
    await fold(checkpointWith(messages), 2, ports(client));
    const prompt = client.calls[0]!.request.messages.map((m) => m.content).join('\n');
    expect(prompt).toContain('tea price?');
    expect(prompt).toContain('Tea is 2.');
    expect(prompt).not.toContain('secret_internal_field');
  });

  it('without LLM ports the old messages are dropped and the previous summary is kept', async () => {
    const messages = plain(8);
    const result = await fold(checkpointWith(messages, 'kept summary'), 3, undefined);
    expect(result.checkpoint.messages).toEqual(messages.slice(7));
    expect(result.checkpoint.summary).toBe('kept summary');
    expect(result.event).toEqual({ type: 'summary', folded: 7, ok: false, atMs: 42 });
    expect(result.usage).toEqual({});
  });

  it('never starts the kept window on a tool message (a call and its results stay together)', async () => {
    const messages = [
      user('u0'),
      assistant('a0'),
      user('what do tea and coffee cost?'),
      assistant('', ['c1', 'c2']),
      tool('c1'),
      tool('c2'),
      assistant('Tea is 2, coffee 3.'),
      user('ok'),
    ];
    // window 4: the plain cut (index 4) would fall between the call (3) and its results (4, 5).
    for (const p of [undefined, ports(fakeLlm([[text('Prices asked.'), end()]]))]) {
      const result = await fold(checkpointWith(messages), 4, p);
      const kept = result.checkpoint.messages;
      expect(kept.length).toBeGreaterThan(0);
      expect(kept[0]!.role).not.toBe('tool');
      expect(orphans(kept)).toEqual([]);
      expect(messages.slice(messages.length - kept.length)).toEqual(kept);
      expect(result.event).toMatchObject({ type: 'summary', folded: messages.length - kept.length });
      expect(kept.length).toBeLessThanOrEqual(4);
    }
  });

  it('a cut that would fall between a call and its result moves past the result', async () => {
    const messages = [user('u0'), assistant('a0'), user('u1'), assistant('', ['c1']), tool('c1'), assistant('Tea is 2.')];
    // window 4 keeps 2: the plain cut (index 4) is the tool result, so the result folds with its call.
    const result = await fold(checkpointWith(messages), 4, undefined);
    expect(result.checkpoint.messages).toEqual(messages.slice(5));
    expect(orphans(result.checkpoint.messages)).toEqual([]);
  });

  it('only tool messages after the cut: everything folds', async () => {
    const messages = [user('u0'), assistant('', ['c1', 'c2', 'c3']), tool('c1'), tool('c2'), tool('c3')];
    const result = await fold(checkpointWith(messages), 2, undefined);
    expect(result.checkpoint.messages).toEqual([]);
    expect(result.event).toMatchObject({ type: 'summary', folded: 5 });
  });

  it('everything: true folds all messages, even under the window', async () => {
    const client = fakeLlm([[text('All of it.'), end()]]);
    const messages = plain(4);
    const result = await fold(checkpointWith(messages, 'before'), 20, ports(client), true);
    expect(result.checkpoint.messages).toEqual([]);
    expect(result.checkpoint.summary).toBe('All of it.');
    expect(result.event).toEqual({ type: 'summary', folded: 4, ok: true, atMs: 42 });
    const prompt = client.calls[0]!.request.messages.map((m) => m.content).join('\n');
    for (const m of messages) expect(prompt).toContain(m.content);

    const dropped = await fold(checkpointWith(messages, 'before'), 20, undefined, true);
    expect(dropped.checkpoint.messages).toEqual([]);
    expect(dropped.checkpoint.summary).toBe('before');
  });

  it.each([
    [
      'an LlmError before any text',
      [
        () => {
          throw new LlmError('llm_timeout', 'slow');
        },
      ],
    ],
    [
      'an error after part of the summary',
      [
        text('Half a sum'),
        () => {
          throw new LlmError('llm_error', 'reset');
        },
      ],
    ],
    ['an empty summary', [text('   '), end()]],
  ])('a failing summary (%s) keeps the previous summary and still drops the old messages', async (_, script) => {
    const client = fakeLlm([script as Step[]]);
    const messages = plain(8);
    const result = await fold(checkpointWith(messages, 'previous summary'), 4, ports(client));
    expect(result.checkpoint.summary).toBe('previous summary');
    expect(result.checkpoint.messages).toEqual(messages.slice(6));
    expect(result.event).toEqual({ type: 'summary', folded: 6, ok: false, atMs: 42 });
    expect(client.calls).toHaveLength(1);
  });

  it('a failing summary without a previous one leaves the summary null', async () => {
    const client = fakeLlm([
      [
        () => {
          throw new Error('network down');
        },
      ],
    ]);
    const result = await fold(checkpointWith(plain(8)), 4, ports(client));
    expect(result.checkpoint.summary).toBeNull();
    expect(result.checkpoint.messages).toHaveLength(2);
  });
});
