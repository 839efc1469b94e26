import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DynamoSessionStore } from '../../lib/checkpoint/dynamo-store';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import { llmPortsFactory } from '../../lib/llm/configure';
import type { ServerEvent } from '../../lib/protocol/v1';
import type { LocalRuntime } from '../../local/runtime';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';
import { startRuntime, storeOf, TestClient, textOf } from './harness';

/**
 * The LLM path end to end: the real runner over the local gateway and dynalite, the real `openai`
 * SDK, and a local server speaking the OpenAI streaming format.
 */
describe('LLM turns', () => {
  let openai: FakeOpenAI;
  let runtime: LocalRuntime;
  let store: DynamoSessionStore;

  beforeAll(async () => {
    openai = await startFakeOpenAI();
    const env = readEnv(FunctionEnv, {
      OPENAI_BASE_URL: openai.baseURL,
      OPENAI_MODEL: 'gpt-test',
      PARLEY_SAFETY: 'local',
      PARLEY_LLM_BUDGET_MS: '2500',
    });
    runtime = await startRuntime({ llm: llmPortsFactory(env)('test-key') });
    store = storeOf(runtime);
  });
  afterEach(() => openai.reset());
  afterAll(async () => {
    await runtime?.close();
    await openai?.close();
  });

  const chat = (events: ServerEvent[]) => events.filter((e) => e.type === 'response.text.delta').map((e) => (e.type === 'response.text.delta' ? e.text : ''));

  it('streams an off-script answer as deltas, records the exchange and the usage', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    openai.script({ text: 'We roast our beans on Tuesdays. They come from a small farm in Colombia.', chunkChars: 6, usage: { prompt_tokens: 120, completion_tokens: 18, cached: 100 } });
    const events = await client.say('where do your coffee beans come from?');
    expect(chat(events).length).toBeGreaterThan(2);
    expect(textOf(events)).toBe('We roast our beans on Tuesdays. They come from a small farm in Colombia.');
    const completed = events.at(-1);
    expect(completed).toMatchObject({ type: 'turn.completed', usage: { llm: { 'gpt-test': { inputTokens: 120, outputTokens: 18, cachedTokens: 100 } } } });
    expect(completed).toMatchObject({ sessionUsage: { llm: { 'gpt-test': { inputTokens: 120 } } } });

    const request = openai.requestsTo('/v1/chat/completions')[0]!.body;
    expect(request.model).toBe('gpt-test');
    expect(request.messages[0].role).toBe('system');
    expect(request.messages[0].content).toContain('Parley Café');
    expect(request.messages.at(-1)).toEqual({ role: 'user', content: 'where do your coffee beans come from?' });
    expect(request.tools.map((t: { function: { name: string } }) => t.function.name)).toEqual(['pickup_wait', 'transition_to', 'end_call']);

    const head = (await store.loadHead(started.sessionId))!;
    const exchange = head.events.find((e) => e.type === 'llm_exchange');
    expect(exchange).toMatchObject({ model: 'gpt-test', response: { text: textOf(events), toolCalls: [] } });
    expect(head.checkpoint.messages.at(-1)).toEqual({ role: 'assistant', content: textOf(events) });
    client.close();
  });

  it('calls a webhook tool and answers from its result', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    openai.script({ toolCalls: [{ name: 'pickup_wait', arguments: '{}' }] }, { text: 'Right now a pickup order takes about 6 minutes.' });
    const events = await client.say('how long does it take to get my order?');
    expect(textOf(events)).toBe('Right now a pickup order takes about 6 minutes.');
    const second = openai.requestsTo('/v1/chat/completions')[1]!.body;
    const tool = second.messages.at(-1);
    expect(tool).toMatchObject({ role: 'tool', content: '{"minutes":6}' });
    expect(second.messages.at(-2)).toMatchObject({ role: 'assistant', tool_calls: [{ function: { name: 'pickup_wait' } }] });
    const head = (await store.loadHead(started.sessionId))!;
    expect(head.events.map((e) => e.type)).toEqual(expect.arrayContaining(['llm_exchange', 'action', 'tool_call']));
    expect(head.checkpoint.variables.wait).toEqual({ minutes: 6 });
    client.close();
  });

  it('moves the flow with transition_to and says the new state', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    await client.open();
    openai.script({ toolCalls: [{ name: 'transition_to', arguments: '{"state":"menu"}' }] }, { text: 'Let me show you what we have.' });
    const events = await client.say('I am not sure what I want, what would you recommend?');
    expect(events.find((e) => e.type === 'node.transition')).toMatchObject({ from: 'welcome', to: 'menu' });
    expect(textOf(events)).toMatch(/^Let me show you what we have\. We serve espresso/);
    client.close();
  });

  it('answers a malformed tool call with an error result instead of hanging', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    await client.open();
    openai.script({ toolCalls: [{ name: 'pickup_wait', arguments: '{"broken' }, { name: 'teleport', arguments: '{}' }] }, { text: 'Sorry, I could not check that.' });
    const events = await client.say('how long is the wait?');
    expect(textOf(events)).toBe('Sorry, I could not check that.');
    const results = openai.requestsTo('/v1/chat/completions')[1]!.body.messages.filter((m: { role: string }) => m.role === 'tool');
    expect(results).toHaveLength(2);
    for (const r of results) expect(r.content).toContain('error');
    client.close();
  });

  it('checks the first sentence before sending it: an unsafe answer becomes the safe response', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    openai.script({ text: 'You should kill yourself. Anyway, coffee is great.', chunkChars: 4 });
    const events = await client.say('please write me a poem about the sea');
    expect(textOf(events)).toBe("Let's keep things friendly! Can I get you something to drink?");
    expect(chat(events).join('')).not.toContain('kill');
    const head = (await store.loadHead(started.sessionId))!;
    expect(head.events.some((e) => e.type === 'safety_trip')).toBe(true);
    client.close();
  });

  it('gives the localized LLM message when the model does not answer in time, and the next turn works', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    openai.script({ hang: true });
    const failed = await client.say('who painted the mural on your wall?');
    expect(textOf(failed)).toBe("Sorry, I'm a bit slow right now. Please try again in a moment.");
    expect(failed.at(-1)?.type).toBe('turn.completed');
    const head = (await store.loadHead(started.sessionId))!;
    expect(head.events.find((e) => e.type === 'llm_error')).toMatchObject({ kind: 'llm_timeout' });
    expect(head.checkpoint.messages.some((m) => m.role === 'user' && m.content === 'who painted the mural on your wall?')).toBe(true);

    openai.script({ text: 'Mostly jazz.' });
    expect(textOf(await client.say('who painted the mural on your wall?'))).toBe('Mostly jazz.');
    client.close();
  });

  it('stops the generation on response.cancel from another invocation; its tool calls never run', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    const long = 'Let me tell you all about our coffee. '.repeat(20);
    // The end_call arrives only at the end of a slow stream that the client cancels half-way.
    openai.script({ text: long, chunkChars: 8, tokensPerSecond: 40, toolCalls: [{ name: 'end_call', arguments: '{}' }] });
    const turnId = crypto.randomUUID();
    client.send({ type: 'input.text', turnId, text: 'describe the history of your building in detail' });
    await client.until('response.text.delta');
    client.send({ type: 'response.cancel', turnId, playedMs: 400 });
    const rest = await client.until('turn.completed');
    expect(rest.some((e) => e.type === 'session.ended')).toBe(false);
    const head = (await store.loadHead(started.sessionId))!;
    expect(head.status).toBe('cancelled');
    expect(head.checkpoint.ended).toBe(false);
    expect(head.events.some((e) => e.type === 'tool_call')).toBe(false);
    const said = head.outputs.find((e) => e.type === 'response.text.done');
    expect(said?.type === 'response.text.done' ? said.text.length : 0).toBeLessThan(long.length);
    // What was sent stays in the context, and the record says how much the client played.
    expect(head.checkpoint.messages.at(-1)).toEqual({ role: 'assistant', content: said?.type === 'response.text.done' ? said.text : '' });
    expect(head.events.find((e) => e.type === 'cancelled')).toMatchObject({ playedMs: 400 });

    openai.script({ text: 'Sure, anything else?' });
    expect(textOf(await client.say('ok thanks'))).toBe('Sure, anything else?');
    client.close();
  });

  it('folds a long conversation into a summary: the stored context stays within the window', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    // The greeting and each turn add messages; past 20 (turn 9) all but 10 fold into a summary,
    // and the next fold is more than 10 messages (6 turns) away, not one turn away.
    const summarised: number[] = [];
    for (let i = 0; i < 16; i++) {
      openai.script({ text: `Answer number ${i}.` });
      if (i === 9 || i === 15) openai.script({ text: `Summary after turn ${i}: the customer asked many questions.` });
      const events = await client.say(`question number ${i} about the weather`);
      expect(textOf(events)).toBe(`Answer number ${i}.`);
      const head = (await store.loadHead(started.sessionId))!;
      expect(head.checkpoint.messages.length).toBeLessThanOrEqual(20);
      if (head.events.some((e) => e.type === 'summary')) summarised.push(i);
    }
    expect(summarised).toEqual([9, 15]);
    const head = (await store.loadHead(started.sessionId))!;
    expect(head.checkpoint.summary).toBe('Summary after turn 15: the customer asked many questions.');
    // The summary reaches the model in the system message of later turns.
    openai.script({ text: 'Noted.' });
    await client.say('one more question about the weather');
    const answer = openai
      .requestsTo('/v1/chat/completions')
      .map((r) => r.body)
      .find((b) => b.messages.at(-1)?.content === 'one more question about the weather');
    expect(answer.messages[0].content).toContain('Summary after turn 15');
    client.close();
  });

});
