import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import { llmPortsFactory } from '../../lib/llm/configure';
import { isSecretKey, memoryLog, powertoolsLog, redact, redactingLog, redactString, type LogLine } from '../../lib/observability/log';
import { PROTOCOL_VERSION, type ServerEvent, type ServerEventOf } from '../../lib/protocol/v1';
import { emptyAudioCache } from '../../lib/speech/audio-cache';
import { voiceFor } from '../../lib/speech/tts/voice';
import type { SpeechDeps } from '../../lib/session/dispatch';
import { createEspeakSynthesizer, type EspeakSynthesizer } from '../../local/speech/espeak';
import { sampleMap, startRuntime, TestClient } from '../integration/harness';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';

/*
 * Item 11 of issue 6: logs never contain secrets, API keys or audio, and PARLEY_LOG_REDACT_TEXT keeps
 * what was said out of them too. The unit part checks the redactor; the session part drives real
 * sessions through the local runtime (API key, audio, LLM turns, a failing LLM whose error names the
 * key, resume, cancel, stop) with the very adapter Lambda uses (Powertools Logger behind
 * powertoolsLog) at DEBUG, and searches every line it printed.
 */

const API_KEY = 'parley-hygiene-key-5b7f2c9e1d';
const OPENAI_KEY = 'sk-hygiene-SECRET-0123456789abcdefXYZ';
const PCM16K = { format: 'pcm', sampleRate: 16000 } as const;

describe('the redactor', () => {
  it('blanks the credentials of a SigV4-presigned URL (a Transcribe grant) and keeps the rest', () => {
    const url =
      'wss://transcribestreaming.eu-west-1.amazonaws.com:8443/stream-transcription-websocket?language-code=en-US&media-encoding=pcm&sample-rate=16000' +
      '&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLE%2F20261121%2Feu-west-1%2Ftranscribe%2Faws4_request&X-Amz-Date=20261121T140000Z' +
      '&X-Amz-Expires=300&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLETOKEN&X-Amz-Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef&X-Amz-SignedHeaders=host';
    const clean = redactString(url);
    expect(clean).not.toMatch(/ASIAEXAMPLE|EXAMPLETOKEN|0123456789abcdef/);
    expect(clean).toContain('X-Amz-Credential=[redacted]&X-Amz-Date=20261121T140000Z');
    expect(clean).toContain('X-Amz-Security-Token=[redacted]&X-Amz-Signature=[redacted]&X-Amz-SignedHeaders=host');
    expect(clean).toContain('language-code=en-US&media-encoding=pcm&sample-rate=16000');
  });

  it('replaces secret keys at any depth, whatever they hold', () => {
    const data = {
      apiKey: 'k1',
      nested: { deeper: [{ resumeToken: 'r', 'x-api-key': 'k2', Authorization: 'Bearer abc', password: 1, jwtSecret: 's', audio: 'AAAA' }] },
      auth: { apiKey: 'k3' },
      usage: { inputTokens: 12, outputTokens: 3 },
      metrics: { timeToFirstAudioMs: 120, audioMs: 800 },
      connectionId: 'abc=',
    };
    expect(redact(data)).toEqual({
      apiKey: '[redacted]',
      nested: { deeper: [{ resumeToken: '[redacted]', 'x-api-key': '[redacted]', Authorization: '[redacted]', password: '[redacted]', jwtSecret: '[redacted]', audio: '[redacted]' }] },
      auth: '[redacted]',
      // Plural tokens are counts, not credentials.
      usage: { inputTokens: 12, outputTokens: 3 },
      // Numbers under audio keys are measures, not sound.
      metrics: { timeToFirstAudioMs: 120, audioMs: 800 },
      connectionId: 'abc=',
    });
    for (const key of ['apiKey', 'api_key', 'OPENAI_API_KEY', 'token', 'resumeTokenHash', 'clientSecret', 'secretAccessKey', 'sessionToken', 'cookie']) expect(isSecretKey(key), key).toBe(true);
    expect(redact({ audioBase64: 'AAAA', pcm: 'AAAA', audio: { data: 'AAAA' } })).toEqual({ audioBase64: '[redacted]', pcm: '[redacted]', audio: '[redacted]' });
    for (const key of ['inputTokens', 'cachedTokens', 'text', 'turnId', 'sessionId', 'traceId', 'principal', 'key', 'code']) expect(isSecretKey(key), key).toBe(false);
  });

  it('replaces long base64 runs and binary values by their size, and masks secret-shaped strings', () => {
    const audio = Buffer.alloc(3000, 7).toString('base64');
    expect(redactString(`chunk ${audio} end`)).toBe('chunk [binary 3000 bytes] end');
    expect(redact({ chunk: Buffer.alloc(640), view: new Int16Array(10) })).toEqual({ chunk: '[binary 640 bytes]', view: '[binary 20 bytes]' });
    // A short base64 value (an id) stays.
    expect(redactString('abc=')).toBe('abc=');
    expect(redactString(`401 Incorrect API key provided: ${OPENAI_KEY}.`)).toBe('401 Incorrect API key provided: [redacted].');
    expect(redactString('Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl')).toBe('Authorization: Bearer [redacted]');
    expect(redactString('token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl here')).toBe('token [redacted] here');
    expect(redactString('wss://x.example/prod?apiKey=abc123&x=1')).toBe('wss://x.example/prod?apiKey=[redacted]&x=1');
    const error = redact({ error: new Error(`failed with ${OPENAI_KEY}`) }) as { error: { message: string; stack: string } };
    expect(error.error.message).toBe('failed with [redacted]');
    expect(error.error.stack).not.toContain(OPENAI_KEY);
  });

  it('with redactText, what was said becomes its length; ids and numbers stay', () => {
    const data = { turnId: 't1', input: { kind: 'text', text: 'my name is Ada' }, messages: [{ role: 'user', content: 'hello' }, { role: 'assistant', content: 'hi!' }], transcript: 'abc', seq: 3 };
    expect(redact(data, { redactText: true })).toEqual({ turnId: 't1', input: '[text 18 chars]', messages: '[text 21 chars]', transcript: '[text 3 chars]', seq: 3 });
    expect(redact({ text: 'stays' })).toEqual({ text: 'stays' });
  });

  it('never throws: cycles, deep nesting, __proto__ keys, throwing getters', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(redact(cyclic)).toEqual({ a: 1, self: '[circular]' });
    let deep: unknown = 'bottom';
    for (let i = 0; i < 10_000; i++) deep = { d: deep };
    expect(() => JSON.stringify(redact(deep))).not.toThrow();
    const poisoned = JSON.parse('{"__proto__":{"polluted":1},"text":"x"}');
    const cleaned = redact(poisoned) as Record<string, unknown>;
    expect(Object.getPrototypeOf(cleaned)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const lines: LogLine[] = [];
    const log = redactingLog(memoryLog(lines));
    log.info('odd', { get boom(): never { throw new Error('getter'); } } as Record<string, unknown>);
    expect(lines).toEqual([{ level: 'info', message: 'odd', logData: 'unloggable' }]);
  });

  it('the persistent keys of `with` are redacted too, and the message itself', () => {
    const lines: LogLine[] = [];
    redactingLog(memoryLog(lines)).with({ apiKey: 'k', sessionId: 's' }).warn(`key ${OPENAI_KEY} seen`, { ok: true });
    expect(lines).toEqual([{ apiKey: '[redacted]', sessionId: 's', ok: true, level: 'warn', message: 'key [redacted] seen' }]);
  });
});

describe('lines below the level', () => {
  it('are dropped before they are cleaned: a turn pays nothing for info lines when only warnings are written', () => {
    let reads = 0;
    const data = {
      get turn() {
        reads += 1;
        return { id: 't' };
      },
    };
    const log = powertoolsLog(new Logger({ serviceName: 'test', logLevel: 'WARN' }));
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      log.info('turn committed', data);
      log.debug('detail', data);
      expect(reads).toBe(0);
      log.warn('something odd', data);
      expect(reads).toBeGreaterThan(0);
    } finally {
      write.mockRestore();
    }
  });
});

describe('a real session logs no secret, no audio, and with PARLEY_LOG_REDACT_TEXT no text', () => {
  let espeak: EspeakSynthesizer;
  let openai: FakeOpenAI;
  /** Everything Powertools printed, as printed. */
  const printed: string[] = [];

  beforeAll(async () => {
    // POWERTOOLS_DEV: the Logger prints through the global console, where the spies catch every line.
    vi.stubEnv('POWERTOOLS_DEV', 'true');
    for (const method of ['debug', 'info', 'warn', 'error', 'log', 'trace'] as const) {
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => void printed.push(args.map(String).join(' ')));
    }
    espeak = await createEspeakSynthesizer();
    openai = await startFakeOpenAI();
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
    await openai?.close();
    await espeak?.close();
  });

  /** Drives the sessions; returns what must never be logged, and what was said. */
  async function converse(redactText: boolean) {
    printed.length = 0;
    openai.reset();
    const map = sampleMap();
    const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'gpt-test', PARLEY_SAFETY: 'local', PARLEY_LLM_BUDGET_MS: '5000' });
    const speech: SpeechDeps = { synthesizer: espeak, cache: emptyAudioCache, voiceFor: (language) => voiceFor(map, language, 'espeak'), timing: { neutralAfterMs: 100 } };
    const log = powertoolsLog(new Logger({ serviceName: 'parley-hygiene', logLevel: 'DEBUG' }), { redactText });
    const runtime = await startRuntime({ log, apiKeys: [API_KEY], llm: llmPortsFactory(env, { log })(OPENAI_KEY), speech });
    const said: string[] = [];
    const received: ServerEvent[] = [];
    try {
      // A wrong key in hello, then the right one: in the query string and in hello.
      const refused = await TestClient.connect(runtime.wsUrl);
      refused.send({ type: 'hello', version: PROTOCOL_VERSION, auth: { apiKey: `${API_KEY}-wrong` } });
      await refused.next('error');

      const client = await TestClient.connect(runtime.wsUrl);
      client.send({ type: 'hello', version: PROTOCOL_VERSION, auth: { apiKey: API_KEY } });
      await client.next('hello.ack');
      client.send({ type: 'session.start', audio: PCM16K });
      const started = await client.next('session.started');
      client.sessionId = started.sessionId;
      received.push(started, ...(await client.until('turn.completed')));

      const say = async (text: string) => {
        said.push(text);
        const events = await client.say(text);
        received.push(...events);
        return events;
      };
      await say('a latte please');
      // An LLM answer, spoken.
      openai.script({ text: 'We roast our beans on Tuesdays. They come from Colombia.', chunkChars: 6 });
      await say('where do your coffee beans come from?');
      // A failing LLM whose error names the key, as OpenAI's 401 does.
      openai.script({ status: 401, errorMessage: `Incorrect API key provided: ${OPENAI_KEY}. You can find your API key at the dashboard.` });
      await say('who painted the mural on your wall?');
      const last = [...received].reverse().find((e): e is ServerEventOf<'turn.completed'> => e.type === 'turn.completed')!;
      client.send({ type: 'response.cancel', turnId: last.turnId, playedMs: 300 });
      // Bad input carrying the key and text.
      client.send({ type: 'input.text', turnId: 'not-a-uuid', text: `my key is ${API_KEY}` });
      await client.next('error');
      client.close();

      // Resume on a new connection (key in the query string), then stop.
      const again = await TestClient.connect(`${runtime.wsUrl}/?apiKey=${API_KEY}`);
      again.send({ type: 'hello', version: PROTOCOL_VERSION });
      await again.next('hello.ack');
      again.send({ type: 'session.start', sessionId: started.sessionId, resumeToken: started.resumeToken, audio: PCM16K });
      const resumed = await again.next('session.started');
      received.push(resumed);
      again.sessionId = resumed.sessionId;
      said.push('a small tea');
      received.push(...(await again.say('a small tea')));
      again.send({ type: 'session.stop', reason: 'hygiene test' });
      await again.until('session.stopped');
      again.close();

      // What a debugging line might dump: every event the client got (resume tokens, audio, replies)
      // and the user's input, through the same adapter.
      log.with({ sessionId: started.sessionId }).debug('events sent', { events: received, input: { kind: 'text', text: said[0] } });

      const audio = received.filter((e): e is ServerEventOf<'response.audio.delta'> => e.type === 'response.audio.delta').map((e) => e.audio);
      expect(audio.length).toBeGreaterThan(0);
      const replies = received.filter((e): e is ServerEventOf<'response.text.done'> => e.type === 'response.text.done').map((e) => e.text);
      return { tokens: [...new Set([started.resumeToken, resumed.resumeToken])], audio, said, replies, llmRequests: openai.requestsTo('/v1/chat/completions').length };
    } finally {
      await runtime.close();
    }
  }

  function expectClean(output: string, secrets: { tokens: string[]; audio: string[] }) {
    expect(output).not.toContain(API_KEY);
    expect(output).not.toContain(OPENAI_KEY);
    expect(output).not.toContain('0123456789abcdefXYZ');
    for (const token of secrets.tokens) expect(output).not.toContain(token);
    for (const chunk of secrets.audio) expect(output).not.toContain(chunk.slice(0, 64));
    expect(output).not.toMatch(/[A-Za-z0-9+/]{257,}/);
  }

  it('default: no API key, OpenAI key, resume token or audio in any line', async () => {
    const secrets = await converse(false);
    expect(secrets.llmRequests).toBeGreaterThanOrEqual(2);
    const output = printed.join('\n');
    // The session was logged (so the search below searched something), the LLM failure included.
    expect(output).toContain('turn committed');
    expect(output).toContain('llm request failed');
    expect(output).toContain('events sent');
    // Without the option the dumped replies are there as they were said.
    expect(output).toContain(secrets.replies[0]!.slice(0, 20));
    expectClean(output, secrets);
  });

  it('PARLEY_LOG_REDACT_TEXT: no user or bot text either', async () => {
    const secrets = await converse(true);
    const output = printed.join('\n');
    expect(output).toContain('turn committed');
    expect(output).toContain('events sent');
    expectClean(output, secrets);
    for (const text of [...secrets.said, ...secrets.replies]) expect(output).not.toContain(text);
  });
});
