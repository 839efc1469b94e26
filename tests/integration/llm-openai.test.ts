import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openAiModeration, MODERATION_UNAVAILABLE } from '../../lib/llm/moderation';
import { openAiClient } from '../../lib/llm/openai';
import { LlmError, type LlmClient, type LlmRequest, type LlmStreamEvent } from '../../lib/llm/port';
import { memoryLog, type LogLine } from '../../lib/observability/log';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';

/*
 * The adapter on the REAL `openai` SDK against a local server speaking OpenAI's wire format
 * (tests/support/openai-server.ts). Nothing is mocked between the adapter and the socket.
 */

const API_KEY = 'sk-test-SECRET-0123456789abcdef';
const CHAT = '/v1/chat/completions';
let fake: FakeOpenAI;
let lines: LogLine[];
let llm: LlmClient;

beforeAll(async () => {
  fake = await startFakeOpenAI();
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
  lines = [];
  llm = openAiClient({ apiKey: API_KEY, baseURL: fake.baseURL, defaultModel: 'gpt-4o-mini', log: memoryLog(lines) });
});

const request = (over: Partial<LlmRequest> = {}): LlmRequest => ({
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: 'You are a barista.' },
    { role: 'user', content: 'A latte, please.' },
  ],
  ...over,
});

/** Drains a stream; returns the events and the error it ended with, if any. */
async function drain(
  stream: AsyncIterable<LlmStreamEvent>,
  onEvent?: (e: LlmStreamEvent) => void,
): Promise<{ events: LlmStreamEvent[]; error: unknown; text: string }> {
  const events: LlmStreamEvent[] = [];
  let error: unknown;
  try {
    for await (const e of stream) {
      events.push(e);
      onEvent?.(e);
    }
  } catch (err) {
    error = err;
  }
  const text = events.map((e) => (e.type === 'text' ? e.delta : '')).join('');
  return { events, error, text };
}

const endOf = (events: LlmStreamEvent[]) => events.find((e): e is Extract<LlmStreamEvent, { type: 'end' }> => e.type === 'end');
const soon = () => Date.now() + 5_000;

describe('openAiClient: streaming', () => {
  it('streams plain text as several text events, then end with usage, finish reason and model', async () => {
    const text = 'Sure! One latte coming up. Anything else for you today?';
    fake.script({ text, usage: { prompt_tokens: 21, completion_tokens: 13, cached: 8 }, model: 'gpt-4o-mini-2024-07-18' });

    const { events, error } = await drain(llm.stream(request(), soon()));

    expect(error).toBeUndefined();
    const texts = events.filter((e) => e.type === 'text');
    expect(texts.length).toBeGreaterThan(3);
    expect(texts.map((e) => (e.type === 'text' ? e.delta : '')).join('')).toBe(text);
    expect(events.at(-1)).toEqual({
      type: 'end',
      toolCalls: [],
      finishReason: 'stop',
      usage: { inputTokens: 21, outputTokens: 13, cachedTokens: 8 },
      model: 'gpt-4o-mini-2024-07-18',
    });
    expect(events.filter((e) => e.type === 'end')).toHaveLength(1);
  });

  it('joins two parallel tool calls split across chunks, complete and in order, only in end', async () => {
    const a = { name: 'lookup_menu', arguments: '{"item":"latte","size":"large","milk":"oat"}' };
    const b = { name: 'place_order', arguments: '{"items":[{"name":"latte","qty":2}],"table":7}' };
    fake.script({ text: 'Let me check.', toolCalls: [a, b], chunkChars: 5 });

    const { events, error, text } = await drain(llm.stream(request(), soon()));

    expect(error).toBeUndefined();
    expect(text).toBe('Let me check.');
    const end = endOf(events)!;
    expect(end.finishReason).toBe('tool_calls');
    expect(end.toolCalls).toEqual([
      { id: expect.stringMatching(/^call_/), ...a },
      { id: expect.stringMatching(/^call_/), ...b },
    ]);
    expect(end.toolCalls[0]!.id).not.toBe(end.toolCalls[1]!.id);
    expect(JSON.parse(end.toolCalls[1]!.arguments)).toEqual({ items: [{ name: 'latte', qty: 2 }], table: 7 });
  });

  it('sends model, messages and tools in OpenAI format with stream_options.include_usage', async () => {
    fake.script({ text: 'Done.' });
    const req = request({
      messages: [
        { role: 'system', content: 'You are a barista.' },
        { role: 'user', content: 'Order a latte.' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'call_1', name: 'place_order', arguments: '{"item":"latte"}' }] },
        { role: 'tool', content: '{"ok":true}', tool_call_id: 'call_1' },
      ],
      tools: [{ name: 'place_order', description: 'Places an order', parameters: { type: 'object', properties: { item: { type: 'string' } } } }],
      temperature: 0.3,
      maxTokens: 200,
    });

    await drain(llm.stream(req, soon()));

    const [seen] = fake.requestsTo(CHAT);
    expect(seen!.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(seen!.body).toEqual({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: 'You are a barista.' },
        { role: 'user', content: 'Order a latte.' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'place_order', arguments: '{"item":"latte"}' } }] },
        { role: 'tool', content: '{"ok":true}', tool_call_id: 'call_1' },
      ],
      tools: [
        {
          type: 'function',
          function: { name: 'place_order', description: 'Places an order', parameters: { type: 'object', properties: { item: { type: 'string' } } } },
        },
      ],
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.3,
      max_completion_tokens: 200,
    });
  });

  it('paces the fake provider: the first text no earlier than firstTokenDelayMs, then tokensPerSecond', async () => {
    fake.script({ text: 'abcdefghijklmnopqrst', chunkChars: 4, firstTokenDelayMs: 150, tokensPerSecond: 50 });
    const started = performance.now();
    const at: number[] = [];

    const { error } = await drain(llm.stream(request(), soon()), (e) => e.type === 'text' && at.push(performance.now() - started));

    expect(error).toBeUndefined();
    expect(at).toHaveLength(5);
    expect(at[0]).toBeGreaterThanOrEqual(145);
    // 5 chunks at 20 ms apart: the last one no earlier than 150 + 4 * 20.
    expect(at[4]).toBeGreaterThanOrEqual(225);
  });
});

describe('openAiClient: retries and failures', () => {
  it('retries a 429 once and does not duplicate the text', async () => {
    fake.script({ status: 429, errorMessage: 'Rate limit reached' }, { text: 'Here is your latte.' });

    const { events, error, text } = await drain(llm.stream(request(), soon()));

    expect(error).toBeUndefined();
    expect(text).toBe('Here is your latte.');
    expect(endOf(events)).toBeDefined();
    expect(fake.requestsTo(CHAT)).toHaveLength(2);
    expect(lines.filter((l) => l.message.includes('retrying'))).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', status: 429, attempt: 1 });
  });

  it('waits as long as retry-after-ms asks before retrying', async () => {
    fake.script({ status: 429, headers: { 'retry-after-ms': '350' } }, { text: 'OK.' });

    const { error, text } = await drain(llm.stream(request(), soon()));

    expect(error).toBeUndefined();
    expect(text).toBe('OK.');
    const [first, second] = fake.requestsTo(CHAT);
    expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(340);
  });

  it('gives up at once when Retry-After reaches past the deadline', async () => {
    fake.script({ status: 429, headers: { 'retry-after': '30' } }, { text: 'never' });
    const started = Date.now();

    const { error } = await drain(llm.stream(request(), Date.now() + 1_000));

    expect(error).toBeInstanceOf(LlmError);
    expect(error).toMatchObject({ kind: 'llm_error', details: { status: 429, attempts: 1 } });
    expect(Date.now() - started).toBeLessThan(500);
    expect(fake.requestsTo(CHAT)).toHaveLength(1);
  });

  it('throws llm_error after maxAttempts 500s', async () => {
    fake.script({ status: 500 }, { status: 500 }, { status: 500 }, { text: 'too late' });

    const { events, error } = await drain(llm.stream(request(), soon()));

    expect(events).toEqual([]);
    expect(error).toBeInstanceOf(LlmError);
    expect(error).toMatchObject({ kind: 'llm_error', details: { status: 500, attempts: 3 } });
    expect(fake.requestsTo(CHAT)).toHaveLength(3);
  });

  it('does not retry a 400', async () => {
    fake.script({ status: 400, errorMessage: "Invalid 'messages'" }, { text: 'never' });

    const { error } = await drain(llm.stream(request(), soon()));

    expect(error).toMatchObject({ kind: 'llm_error', details: { status: 400, attempts: 1 } });
    expect((error as Error).message).toContain("Invalid 'messages'");
    expect(fake.requestsTo(CHAT)).toHaveLength(1);
  });

  it('throws llm_timeout within the deadline when the server hangs, and closes the connection', async () => {
    fake.script({ hang: true }, { hang: true }, { hang: true });
    const started = Date.now();

    const { events, error } = await drain(llm.stream(request(), started + 400));

    const elapsed = Date.now() - started;
    expect(events).toEqual([]);
    expect(error).toBeInstanceOf(LlmError);
    expect((error as LlmError).kind).toBe('llm_timeout');
    expect(elapsed).toBeGreaterThanOrEqual(350);
    expect(elapsed).toBeLessThan(900);
    await expect(fake.requestsTo(CHAT)[0]!.finished).resolves.toBe('aborted');
  });

  it('retries an attempt that makes no progress within attemptTimeoutMs', async () => {
    llm = openAiClient({ apiKey: API_KEY, baseURL: fake.baseURL, defaultModel: 'gpt-4o-mini', attemptTimeoutMs: 150, log: memoryLog(lines) });
    fake.script({ text: 'slow', firstTokenDelayMs: 5_000 }, { text: 'Fast answer.' });

    const { error, text } = await drain(llm.stream(request(), soon()));

    expect(error).toBeUndefined();
    expect(text).toBe('Fast answer.');
    expect(fake.requestsTo(CHAT)).toHaveLength(2);
    expect(lines[0]).toMatchObject({ kind: 'llm_timeout', attempt: 1 });
  });

  it('throws llm_error on a malformed stream, without retrying', async () => {
    fake.script({ malformed: true }, { text: 'never' });

    const { events, error } = await drain(llm.stream(request(), soon()));

    expect(events).toEqual([]);
    expect(error).toBeInstanceOf(LlmError);
    expect(error).toMatchObject({ kind: 'llm_error' });
    expect((error as Error).message).toMatch(/malformed/);
    expect(fake.requestsTo(CHAT)).toHaveLength(1);
  });

  it('does not retry a connection drop after text was yielded', async () => {
    fake.script({ text: 'Your latte is on its way, and the croissant too.', dropAfterChunks: 2 }, { text: 'DUPLICATE' });

    const { events, error, text } = await drain(llm.stream(request(), soon()));

    expect(text).toBe('Your latte is on'); // two chunks of 8
    expect(endOf(events)).toBeUndefined();
    expect(error).toBeInstanceOf(LlmError);
    expect(error).toMatchObject({ kind: 'llm_error', details: { attempts: 1 } });
    expect(fake.requestsTo(CHAT)).toHaveLength(1);
  });

  it('does not retry a stall after text was yielded: llm_timeout', async () => {
    llm = openAiClient({ apiKey: API_KEY, baseURL: fake.baseURL, defaultModel: 'gpt-4o-mini', attemptTimeoutMs: 150 });
    fake.script({ text: 'Your latte is on its way.', stallAfterChunks: 1 }, { text: 'DUPLICATE' });

    const { error, text } = await drain(llm.stream(request(), soon()));

    expect(text).toBe('Your lat');
    expect(error).toMatchObject({ kind: 'llm_timeout', details: { attempts: 1 } });
    expect(fake.requestsTo(CHAT)).toHaveLength(1);
  });

  it('retries a connection drop before any text', async () => {
    fake.script({ toolCalls: [{ name: 'x', arguments: '{"a":1}' }], dropAfterChunks: 1 }, { text: 'Recovered.' });

    const { error, text } = await drain(llm.stream(request(), soon()));

    expect(error).toBeUndefined();
    expect(text).toBe('Recovered.');
    expect(fake.requestsTo(CHAT)).toHaveLength(2);
  });

  it('never logs the API key or the Authorization header', async () => {
    fake.script({ status: 401, errorMessage: 'Incorrect API key provided' }, { status: 503 }, { status: 503 }, { status: 503 });
    await drain(llm.stream(request(), soon()));
    fake.script({ status: 503 }, { status: 503 }, { status: 503 });
    await drain(llm.stream(request(), soon()));

    expect(lines.length).toBeGreaterThan(0);
    const logged = JSON.stringify(lines);
    expect(logged).not.toContain(API_KEY);
    expect(logged.toLowerCase()).not.toContain('bearer');
  });
});

describe('openAiClient: abort', () => {
  it('ends quietly when the signal aborts mid-stream: no end, no error, the connection closed', async () => {
    fake.script({ text: 'One latte, two croissants, three muffins and a very long receipt.', tokensPerSecond: 40 });
    const controller = new AbortController();

    const { events, error } = await drain(llm.stream(request({ signal: controller.signal }), soon()), (e) => {
      if (e.type === 'text') controller.abort();
    });

    expect(error).toBeUndefined();
    expect(events).toHaveLength(1);
    expect(events[0]!.type).toBe('text');
    await expect(fake.requestsTo(CHAT)[0]!.finished).resolves.toBe('aborted');
  });

  it('ends quietly when the signal aborts during a retry backoff', async () => {
    fake.script({ status: 503, headers: { 'retry-after-ms': '1000' } }, { text: 'never' });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 150);
    const started = Date.now();

    const { events, error } = await drain(llm.stream(request({ signal: controller.signal }), soon()));

    expect(error).toBeUndefined();
    expect(events).toEqual([]);
    expect(Date.now() - started).toBeLessThan(700);
    expect(fake.requestsTo(CHAT)).toHaveLength(1);
  });

  it('closes the connection when the consumer stops iterating early', async () => {
    fake.script({ text: 'A long answer that the consumer will not read to the end.', tokensPerSecond: 40 });

    for await (const e of llm.stream(request(), soon())) {
      if (e.type === 'text') break;
    }

    await expect(fake.requestsTo(CHAT)[0]!.finished).resolves.toBe('aborted');
  });
});

describe('fake OpenAI server through the SDK directly', () => {
  const sdk = () => new OpenAI({ apiKey: API_KEY, baseURL: fake.baseURL, maxRetries: 0, logLevel: 'off' });

  it('works with the SDK stream helper (role in the first chunk) and answers non-streaming requests', async () => {
    fake.script({ text: 'Hello from the helper.', toolCalls: [{ name: 'f', arguments: '{"x":1}' }] }, { text: 'Plain JSON.' });

    const final = await sdk()
      .chat.completions.stream({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })
      .finalChatCompletion();
    expect(final.choices[0]!.message.content).toBe('Hello from the helper.');
    expect(final.choices[0]!.message.tool_calls?.[0]).toMatchObject({ type: 'function', function: { name: 'f', arguments: '{"x":1}' } });

    const plain = await sdk().chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    expect(plain.choices[0]!.message.content).toBe('Plain JSON.');
    expect(plain.usage?.total_tokens).toBeGreaterThan(0);
  });

  it('answers an unscripted chat request with a 500 by default', async () => {
    await expect(sdk().chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({
      status: 500,
    });
  });
});

describe('openAiModeration', () => {
  const MOD = '/v1/moderations';

  it('reports flagged text as unsafe with its first flagged category', async () => {
    fake.script({ flagged: true, categories: ['violence', 'harassment'] });
    const checker = openAiModeration({ apiKey: API_KEY, baseURL: fake.baseURL });

    await expect(checker.check('something nasty', 'en')).resolves.toEqual({ safe: false, category: 'harassment' });
    expect(fake.requestsTo(MOD)[0]!.body).toEqual({ model: 'omni-moderation-latest', input: 'something nasty' });
  });

  it('reports unflagged text as safe', async () => {
    fake.script({ flagged: false });
    const checker = openAiModeration({ apiKey: API_KEY, baseURL: fake.baseURL, model: 'text-moderation-latest' });

    await expect(checker.check('one latte please', 'en')).resolves.toEqual({ safe: true });
    expect(fake.requestsTo(MOD)[0]!.body.model).toBe('text-moderation-latest');
  });

  it('allows the text by default when the check fails, and logs it without the key', async () => {
    fake.scriptModeration({ status: 500 });
    const modLines: LogLine[] = [];
    const checker = openAiModeration({ apiKey: API_KEY, baseURL: fake.baseURL, log: memoryLog(modLines) });

    await expect(checker.check('hello', 'en')).resolves.toEqual({ safe: true });
    expect(modLines).toHaveLength(1);
    expect(modLines[0]).toMatchObject({ level: 'warn', status: 500, onError: 'allow' });
    expect(JSON.stringify(modLines)).not.toContain(API_KEY);
  });

  it("blocks when the check fails with onError 'block' (a hang hits the timeout)", async () => {
    fake.scriptModeration({ hang: true });
    const checker = openAiModeration({ apiKey: API_KEY, baseURL: fake.baseURL, onError: 'block', timeoutMs: 200 });
    const started = Date.now();

    await expect(checker.check('hello', 'en')).resolves.toEqual({ safe: false, category: MODERATION_UNAVAILABLE });
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
