import { describe, expect, it } from 'vitest';
import type { ActionRunner } from '../../lib/actions/port';
import { emptyCheckpoint, type Checkpoint } from '../../lib/checkpoint/schema';
import type { FaqIndex } from '../../lib/faq/port';
import type { IntentClassifier } from '../../lib/flow/classifier';
import { loadDialogueMap } from '../../lib/flow/map';
import type { LlmClient, LlmRequest, LlmStreamEvent } from '../../lib/llm/port';
import type { ServerEvent } from '../../lib/protocol/v1';
import { isCue, runTurn, type TurnOutcome } from '../../lib/runner/run-turn';

/** pipecat-flows' context strategies, applied when the LLM moves the flow into a state. */
const map = loadDialogueMap({
  name: 'Context strategies',
  language: 'en',
  initial_state: 'lobby',
  prompts: { 'cache:lobby': 'Lobby.', 'cache:support': 'Support here.', 'cache:fresh': 'Fresh start.' },
  messages: {
    not_understood: '?',
    action_failed: 'failed',
    action_timeout: 'timeout',
    llm_error: 'llm error',
    llm_timeout: 'llm timeout',
    internal_error: 'internal',
  },
  intents: { hello: { examples: ['hello'] } },
  llm: { safe_response: 'Let us stay friendly.', window: 50 },
  states: {
    lobby: {
      system_response: { playlist: [{ type: 'cache', key: 'cache:lobby' }] },
      transitions: { hello: 'lobby' },
      llm: { system_prompt: 'You are the lobby.', tools: ['transition_to'] },
    },
    support: {
      system_response: { playlist: [{ type: 'cache', key: 'cache:support' }] },
      transitions: { hello: 'lobby' },
      llm: { system_prompt: 'You are support.', context: 'reset_with_summary' },
    },
    fresh: {
      system_response: { playlist: [{ type: 'cache', key: 'cache:fresh' }] },
      transitions: { hello: 'lobby' },
      llm: { system_prompt: 'You start fresh.', context: 'reset' },
    },
  },
});

/** Answers each request with the next scripted response; records the requests. */
function scriptedLlm(responses: Array<{ text?: string; toolCalls?: Array<{ name: string; arguments: string }> }>) {
  const requests: LlmRequest[] = [];
  const client: LlmClient = {
    defaultModel: 'fake',
    async *stream(request: LlmRequest): AsyncGenerator<LlmStreamEvent> {
      requests.push(request);
      const r = responses.shift() ?? { text: 'ok.' };
      if (r.text) yield { type: 'text', delta: r.text };
      yield {
        type: 'end',
        toolCalls: (r.toolCalls ?? []).map((c, i) => ({ id: `call-${requests.length}-${i}`, ...c })),
        finishReason: r.toolCalls ? 'tool_calls' : 'stop',
        usage: { inputTokens: 10, outputTokens: 5, cachedTokens: 0 },
        model: 'fake',
      };
    },
  };
  return { client, requests };
}

const classifier: IntentClassifier = { classify: async () => ({ intent: null, score: 0, leader: null, entities: {} }) };
const faq: FaqIndex = { search: () => null };
const actions: ActionRunner = { run: async () => ({ ok: true, result: null, ms: 0, attempts: 1 }) };
let now = 0;
const clock = { nowMs: () => (now += 1), monotonicMs: () => (now += 1) };

async function turn(checkpoint: Checkpoint, text: string, llm: LlmClient): Promise<{ events: ServerEvent[]; outcome: TurnOutcome }> {
  const gen = runTurn({
    turnId: 't',
    input: { kind: 'text', text },
    checkpoint,
    map,
    classifier,
    faq,
    actions,
    clock,
    llm: { client: llm, safety: { check: async () => ({ safe: true }) }, budgetMs: 10_000 },
  });
  const events: ServerEvent[] = [];
  let step = await gen.next();
  while (!step.done) {
    if (!isCue(step.value)) events.push(step.value);
    step = await gen.next();
  }
  return { events, outcome: step.value };
}

const earlier: Checkpoint = {
  ...emptyCheckpoint(),
  currentNode: 'lobby',
  messages: [
    { role: 'assistant', content: 'Lobby.' },
    { role: 'user', content: 'my printer is broken' },
    { role: 'assistant', content: 'Sorry to hear that.' },
  ],
};

describe('context strategies on entering an LLM state', () => {
  it('reset_with_summary: the conversation so far becomes a summary the next prompt carries', async () => {
    const { client, requests } = scriptedLlm([
      { toolCalls: [{ name: 'transition_to', arguments: '{"state":"support"}' }] },
      { text: 'Let me hand you to support.' },
      { text: 'The customer reports a broken printer.' },
    ]);
    const { events, outcome } = await turn(earlier, 'I need support please', client);
    expect(events).toContainEqual({ type: 'node.transition', turnId: 't', from: 'lobby', to: 'support' });
    expect(outcome.checkpoint.summary).toBe('The customer reports a broken printer.');
    expect(outcome.checkpoint.messages).toEqual([]);
    // The summary request saw the whole conversation, the new turn included.
    const summaryRequest = requests[2]!;
    expect(summaryRequest.messages.at(-1)?.content).toContain('my printer is broken');
    expect(summaryRequest.messages.at(-1)?.content).toContain('I need support please');
    expect(outcome.events.some((e) => e.type === 'summary' && e.ok)).toBe(true);

    const next = scriptedLlm([{ text: 'How can support help?' }]);
    await turn(outcome.checkpoint, 'what now', next.client);
    expect(next.requests[0]!.messages[0]!.content).toContain('You are support.');
    expect(next.requests[0]!.messages[0]!.content).toContain('The customer reports a broken printer.');
    expect(next.requests[0]!.messages.some((m) => m.content === 'my printer is broken')).toBe(false);
  });

  it('reset: the context starts over, without a summary', async () => {
    const { client, requests } = scriptedLlm([
      { toolCalls: [{ name: 'transition_to', arguments: '{"state":"fresh"}' }] },
      { text: 'Starting over.' },
    ]);
    const { outcome } = await turn({ ...earlier, summary: 'an old summary' }, 'start over', client);
    expect(outcome.checkpoint.currentNode).toBe('fresh');
    expect(outcome.checkpoint.messages).toEqual([]);
    expect(outcome.checkpoint.summary).toBeNull();
    expect(requests).toHaveLength(2);
  });

  it('append: entering a state without a reset keeps the conversation', async () => {
    const { client } = scriptedLlm([{ text: 'Sure.' }]);
    const { outcome } = await turn(earlier, 'tell me more', client);
    expect(outcome.checkpoint.messages.map((m) => m.content)).toEqual(['Lobby.', 'my printer is broken', 'Sorry to hear that.', 'tell me more', 'Sure.']);
    expect(outcome.checkpoint.usage.llm.fake).toEqual({ inputTokens: 10, outputTokens: 5, cachedTokens: 0 });
  });

  it('an LLM that says nothing (an empty answer) does not leave the user in silence', async () => {
    const { client } = scriptedLlm([{ text: '' }]);
    const { events } = await turn(earlier, 'hmm', client);
    expect(events).toContainEqual({ type: 'response.text.done', turnId: 't', text: '? Lobby.' });
  });
});
