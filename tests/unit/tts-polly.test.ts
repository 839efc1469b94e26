import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  PollyClient,
  ServiceFailureException,
  SynthesizeSpeechCommand,
  TextLengthExceededException,
  ThrottlingException,
  InvalidSampleRateException,
  type SynthesizeSpeechCommandInput,
} from '@aws-sdk/client-polly';
import { sdkStreamMixin } from '@smithy/core/serde';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ParleyError } from '../../lib/errors';
import { createSynthesizer, hasAwsCredentials } from '../../lib/speech/tts/configure';
import { PollySynthesizer, parseWordMarks, toTtsError, utf8ToUtf16Offsets } from '../../lib/speech/tts/polly';
import { TtsError, type Synthesizer, type Voice } from '../../lib/speech/tts/port';

/** Only this client is mocked (not the class), so the tests at the end can use real clients. */
const mocked = new PollyClient({ region: 'us-east-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' } });
const polly = mockClient(mocked);
const joanna: Voice = { provider: 'polly', id: 'Joanna', engine: 'neural', language: 'en' };
const pcm16k = { format: 'pcm', sampleRate: 16000 } as const;

beforeEach(() => polly.reset());
afterEach(() => polly.reset());

/** A streamed SDK body: `chunks` pushed one by one with `delayMs` between them; `state` tells how far it got. */
function streamedBody(chunks: Uint8Array[], delayMs: number) {
  const state = { emitted: 0, ended: false, destroyed: false };
  const readable = new Readable({ read() {} });
  readable.on('close', () => (state.destroyed = !state.ended));
  void (async () => {
    for (const c of chunks) {
      await sleep(delayMs);
      if (readable.destroyed) return;
      state.emitted++;
      readable.push(c);
    }
    state.ended = true;
    readable.push(null);
  })();
  return { body: sdkStreamMixin(readable), state };
}

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of it) out.push(c);
  return out;
}

const inputs = (): SynthesizeSpeechCommandInput[] => polly.commandCalls(SynthesizeSpeechCommand).map((c) => c.args[0].input);

describe('PollySynthesizer.synthesize', () => {
  it('yields the first chunk before the stream has sent its last one (true streaming)', async () => {
    const { body, state } = streamedBody([bytes(320, 1), bytes(320, 2), bytes(320, 3), bytes(320, 4)], 40);
    polly.on(SynthesizeSpeechCommand).resolves({ AudioStream: body });
    const synth = new PollySynthesizer(mocked);
    const seen: { fill: number; emittedWhenYielded: number; endedWhenYielded: boolean }[] = [];
    for await (const chunk of synth.synthesize({ text: 'Hello there.', voice: joanna, format: pcm16k })) {
      seen.push({ fill: chunk[0]!, emittedWhenYielded: state.emitted, endedWhenYielded: state.ended });
    }
    expect(seen.map((s) => s.fill)).toEqual([1, 2, 3, 4]);
    expect(seen[0]!.endedWhenYielded).toBe(false);
    expect(seen[0]!.emittedWhenYielded).toBeLessThan(4);
  });

  it('sends the request parameters: OutputFormat, SampleRate as a string, VoiceId, Engine, LanguageCode, plain text', async () => {
    polly.on(SynthesizeSpeechCommand).callsFake(() => ({ AudioStream: streamedBody([bytes(4, 0)], 1).body }));
    const synth = new PollySynthesizer(mocked);
    await collect(synth.synthesize({ text: 'Hello.', voice: joanna, format: pcm16k }));
    await collect(synth.synthesize({ text: 'Merhaba.', voice: { provider: 'polly', id: 'Burcu', engine: 'neural', language: 'tr' }, format: { format: 'mp3', sampleRate: 24000 } }));
    expect(inputs()).toEqual([
      { Text: 'Hello.', TextType: 'text', VoiceId: 'Joanna', Engine: 'neural', LanguageCode: 'en-US', OutputFormat: 'pcm', SampleRate: '16000' },
      { Text: 'Merhaba.', TextType: 'text', VoiceId: 'Burcu', Engine: 'neural', LanguageCode: 'tr-TR', OutputFormat: 'mp3', SampleRate: '24000' },
    ]);
  });

  it('leaves LanguageCode out for a voice it does not know', async () => {
    polly.on(SynthesizeSpeechCommand).callsFake(() => ({ AudioStream: streamedBody([bytes(4, 0)], 1).body }));
    const synth = new PollySynthesizer(mocked);
    await collect(synth.synthesize({ text: 'Hi.', voice: { provider: 'polly', id: 'Zorblax', language: 'en' }, format: pcm16k }));
    expect(inputs()[0]).toEqual({ Text: 'Hi.', TextType: 'text', VoiceId: 'Zorblax', OutputFormat: 'pcm', SampleRate: '16000' });
  });

  it('splits a 7,000-character text into requests of at most 3,000 characters at sentence ends, audio in order', async () => {
    const text = Array.from({ length: 180 }, (_, i) => `This is sentence number ${i + 1} of the text.`).join(' ');
    expect(text.length).toBeGreaterThan(7000);
    let call = 0;
    polly.on(SynthesizeSpeechCommand).callsFake(() => {
      call++;
      return { AudioStream: streamedBody([bytes(8, call), bytes(8, call)], 2).body };
    });
    const chunks = await collect(new PollySynthesizer(mocked).synthesize({ text, voice: joanna, format: pcm16k }));
    const texts = inputs().map((i) => i.Text!);
    expect(texts.length).toBeGreaterThanOrEqual(3);
    for (const t of texts) {
      expect(t.length).toBeLessThanOrEqual(3000);
      expect(t).toMatch(/^This is sentence number \d+ of the text\.$|^This is sentence number \d+ .* of the text\.$/);
    }
    // In order, nothing lost: the requests joined with a space are the text.
    expect(texts.join(' ')).toBe(text);
    // The audio of request k comes before that of request k+1.
    expect(chunks.map((c) => c[0])).toEqual(texts.flatMap((_, k) => [k + 1, k + 1]));
  });

  it('passes pcm on in whole samples even when the network cuts a sample in two', async () => {
    const audio = Uint8Array.from({ length: 40 }, (_, i) => i);
    const { body } = streamedBody([audio.subarray(0, 3), audio.subarray(3, 4), audio.subarray(4, 21), audio.subarray(21)], 1);
    polly.on(SynthesizeSpeechCommand).resolves({ AudioStream: body });
    const chunks = await collect(new PollySynthesizer(mocked).synthesize({ text: 'x', voice: joanna, format: pcm16k }));
    for (const c of chunks) expect(c.byteLength % 2).toBe(0);
    expect(Array.from(Buffer.concat(chunks))).toEqual(Array.from(audio));
  });

  it('passes the abort signal to the SDK; an abort mid-stream ends the iterator without an error and stops the stream', async () => {
    const { body, state } = streamedBody(Array.from({ length: 20 }, (_, i) => bytes(320, i)), 30);
    polly.on(SynthesizeSpeechCommand).resolves({ AudioStream: body });
    const controller = new AbortController();
    const got: Uint8Array[] = [];
    const started = Date.now();
    for await (const c of new PollySynthesizer(mocked).synthesize({ text: 'Hello.', voice: joanna, format: pcm16k, signal: controller.signal })) {
      got.push(c);
      if (got.length === 2) setTimeout(() => controller.abort(), 5);
    }
    expect(got.length).toBeLessThanOrEqual(3);
    expect(Date.now() - started).toBeLessThan(20 * 30);
    expect(state.ended).toBe(false);
    await sleep(10);
    expect(state.destroyed).toBe(true);
    const options = (polly.calls()[0]!.args as unknown[])[1] as { abortSignal?: AbortSignal };
    expect(options.abortSignal).toBe(controller.signal);
  });

  it('an abort before the start sends nothing; an SDK rejection after an abort is no error', async () => {
    const controller = new AbortController();
    controller.abort();
    polly.on(SynthesizeSpeechCommand).resolves({ AudioStream: streamedBody([bytes(2, 0)], 1).body });
    const synth = new PollySynthesizer(mocked);
    expect(await collect(synth.synthesize({ text: 'Hello.', voice: joanna, format: pcm16k, signal: controller.signal }))).toEqual([]);
    expect(polly.calls()).toHaveLength(0);

    const late = new AbortController();
    polly.on(SynthesizeSpeechCommand).callsFake(async () => {
      late.abort();
      throw Object.assign(new Error('Request aborted'), { name: 'AbortError' });
    });
    expect(await collect(synth.synthesize({ text: 'Hello.', voice: joanna, format: pcm16k, signal: late.signal }))).toEqual([]);
  });

  it('refuses formats Polly does not make', async () => {
    const synth = new PollySynthesizer(mocked);
    expect(synth.supports({ format: 'pcm', sampleRate: 8000 })).toBe(true);
    expect(synth.supports({ format: 'pcm', sampleRate: 16000 })).toBe(true);
    expect(synth.supports({ format: 'pcm', sampleRate: 22050 })).toBe(false);
    expect(synth.supports({ format: 'pcm', sampleRate: 24000 })).toBe(false);
    for (const sampleRate of [8000, 16000, 22050, 24000] as const) expect(synth.supports({ format: 'mp3', sampleRate })).toBe(true);
    await expect(collect(synth.synthesize({ text: 'x', voice: joanna, format: { format: 'pcm', sampleRate: 24000 } }))).rejects.toMatchObject({
      name: 'TtsError',
      code: 'tts.failed',
    });
    expect(polly.calls()).toHaveLength(0);
  });
});

describe('Polly error mapping', () => {
  const meta = (httpStatusCode?: number) => ({ $metadata: { attempts: 3, totalRetryDelay: 300, ...(httpStatusCode ? { httpStatusCode } : {}) } });
  const connection: [string, Error][] = [
    ['ECONNREFUSED', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:443'), { code: 'ECONNREFUSED', ...meta() })],
    ['ENOTFOUND', Object.assign(new Error('getaddrinfo ENOTFOUND polly.eu-west-1.amazonaws.com'), { code: 'ENOTFOUND' })],
    ['ECONNRESET', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
    ['ETIMEDOUT in the cause', new Error('fetch failed', { cause: Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }) })],
    ['TimeoutError', Object.assign(new Error('Connection timed out after 1000 ms'), { name: 'TimeoutError', ...meta() })],
    ['no response ($metadata without httpStatusCode)', Object.assign(new Error('something below HTTP broke'), meta())],
  ];
  const failed: [string, Error][] = [
    ['ServiceFailureException', new ServiceFailureException({ message: 'internal', ...meta(500) })],
    ['TextLengthExceededException', new TextLengthExceededException({ message: 'too long', ...meta(400) })],
    ['InvalidSampleRateException', new InvalidSampleRateException({ message: 'bad rate', ...meta(400) })],
    ['ThrottlingException after retries', new ThrottlingException({ message: 'slow down', ...meta(400) })],
    ['a plain bug', new TypeError('x is not a function')],
  ];

  it.each(connection)('%s -> tts.connection', async (_, error) => {
    polly.on(SynthesizeSpeechCommand).rejects(error);
    const err = await collect(new PollySynthesizer(mocked).synthesize({ text: 'Hi.', voice: joanna, format: pcm16k })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TtsError);
    expect((err as TtsError).code).toBe('tts.connection');
    expect((err as TtsError).cause).toBe(error);
  });

  it.each(failed)('%s -> tts.failed', async (_, error) => {
    polly.on(SynthesizeSpeechCommand).rejects(error);
    const err = await collect(new PollySynthesizer(mocked).synthesize({ text: 'Hi.', voice: joanna, format: pcm16k })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TtsError);
    expect((err as TtsError).code).toBe('tts.failed');
    expect(toTtsError(error).code).toBe('tts.failed');
  });

  it('a connection reset in the middle of the audio stream -> tts.connection, after the chunks that came', async () => {
    const readable = new Readable({ read() {} });
    readable.push(bytes(100, 1));
    setTimeout(() => readable.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), 20);
    polly.on(SynthesizeSpeechCommand).resolves({ AudioStream: sdkStreamMixin(readable) });
    const got: Uint8Array[] = [];
    const err = await (async () => {
      for await (const c of new PollySynthesizer(mocked).synthesize({ text: 'Hi.', voice: joanna, format: pcm16k })) got.push(c);
    })().catch((e: unknown) => e);
    expect(got).toHaveLength(1);
    expect(err).toMatchObject({ name: 'TtsError', code: 'tts.connection' });
  });
});

describe('Polly word marks', () => {
  it('converts UTF-8 byte offsets to UTF-16 offsets', () => {
    const text = 'Aé😀ж';
    const map = utf8ToUtf16Offsets(text);
    // Bytes: A(0) é(1-2) 😀(3-6) ж(7-8); UTF-16: A(0) é(1) 😀(2-3) ж(4).
    expect([0, 1, 3, 7, 9].map(map)).toEqual([0, 1, 2, 4, 5]);
    expect(map(2)).toBe(1); // inside é: its start
    expect(map(100)).toBe(text.length);
  });

  it('parses a Russian sentence: byte offsets in, UTF-16 offsets out', async () => {
    const text = 'Привет, как дела?';
    // What Polly answers for this text: Cyrillic letters are two UTF-8 bytes each.
    const json = [
      '{"time":6,"type":"word","start":0,"end":12,"value":"Привет"}',
      '{"time":512,"type":"word","start":14,"end":20,"value":"как"}',
      '{"time":747,"type":"word","start":21,"end":29,"value":"дела"}',
      '',
    ].join('\n');
    polly.on(SynthesizeSpeechCommand).resolves({ AudioStream: streamedBody([Buffer.from(json.slice(0, 50)), Buffer.from(json.slice(50))], 1).body });
    const tatyana: Voice = { provider: 'polly', id: 'Tatyana', engine: 'standard', language: 'ru' };
    const marks = await new PollySynthesizer(mocked).wordMarks({ text, voice: tatyana });
    expect(marks).toEqual([
      { timeMs: 6, start: 0, end: 6 },
      { timeMs: 512, start: 8, end: 11 },
      { timeMs: 747, start: 12, end: 16 },
    ]);
    expect(marks.map((m) => text.slice(m.start, m.end))).toEqual(['Привет', 'как', 'дела']);
    expect(inputs()).toEqual([
      { Text: text, TextType: 'text', VoiceId: 'Tatyana', Engine: 'standard', LanguageCode: 'ru-RU', OutputFormat: 'json', SpeechMarkTypes: ['word'] },
    ]);
  });

  it('a text over the limit: marks of later pieces are shifted by the earlier pieces’ audio and offsets', async () => {
    const text = 'Один два. Три четыре. Пять.';
    const durationBytes = new Map<string, number>([
      ['Один два.', 16 * 700], // 700 ms at 8 kHz 16-bit
      ['Три четыре.', 16 * 900],
    ]);
    polly.on(SynthesizeSpeechCommand).callsFake((input: SynthesizeSpeechCommandInput) => {
      const t = input.Text!;
      if (input.OutputFormat === 'pcm') {
        expect(input.SampleRate).toBe('8000');
        return { AudioStream: streamedBody([bytes(durationBytes.get(t)!, 0)], 1).body };
      }
      // One mark per word, at 100 ms steps, with the words' UTF-8 byte offsets in the piece.
      const lines: string[] = [];
      for (const m of t.matchAll(/\p{L}+/gu)) {
        const start = Buffer.byteLength(t.slice(0, m.index));
        lines.push(JSON.stringify({ time: 100 * lines.length, type: 'word', start, end: start + Buffer.byteLength(m[0]), value: m[0] }));
      }
      return { AudioStream: streamedBody([Buffer.from(lines.join('\n'))], 1).body };
    });
    const synth = new PollySynthesizer(mocked, { maxChars: 12 });
    const marks = await synth.wordMarks({ text, voice: { provider: 'polly', id: 'Tatyana', engine: 'standard', language: 'ru' } });
    expect(marks.map((m) => text.slice(m.start, m.end))).toEqual(['Один', 'два', 'Три', 'четыре', 'Пять']);
    expect(marks.map((m) => m.timeMs)).toEqual([0, 100, 700, 800, 1600]);
    // The last piece's audio is never needed.
    expect(inputs().filter((i) => i.OutputFormat === 'pcm').map((i) => i.Text)).toEqual(['Один два.', 'Три четыре.']);
  });

  it('parseWordMarks keeps only word marks', () => {
    const json = '{"time":0,"type":"sentence","start":0,"end":5,"value":"Hi yo"}\n{"time":5,"type":"word","start":0,"end":2,"value":"Hi"}\n';
    expect(parseWordMarks(json, 'Hi yo')).toEqual([{ timeMs: 5, start: 0, end: 2 }]);
  });

  it('an abort rejects word marks with the abort reason', async () => {
    const controller = new AbortController();
    polly.on(SynthesizeSpeechCommand).callsFake(async () => {
      controller.abort();
      throw Object.assign(new Error('aborted'), { name: 'AbortError' });
    });
    await expect(new PollySynthesizer(mocked).wordMarks({ text: 'Hi.', voice: joanna, signal: controller.signal })).rejects.toMatchObject({
      name: 'AbortError',
    });
  });
});

describe('createSynthesizer', () => {
  const fakeLocal: Synthesizer = { provider: 'espeak', supports: () => true, synthesize: async function* () {} };

  it('detects AWS credentials in the environment', () => {
    expect(hasAwsCredentials({})).toBe(false);
    expect(hasAwsCredentials({ AWS_ACCESS_KEY_ID: 'AKIA', AWS_SECRET_ACCESS_KEY: 's' })).toBe(true);
    expect(hasAwsCredentials({ AWS_ACCESS_KEY_ID: 'AKIA' })).toBe(false);
    expect(hasAwsCredentials({ AWS_PROFILE: 'dev' })).toBe(true);
    expect(hasAwsCredentials({ AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/token' })).toBe(true);
    expect(hasAwsCredentials({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials' })).toBe(true);
    expect(hasAwsCredentials({ AWS_LAMBDA_FUNCTION_NAME: 'parley-turn' })).toBe(true);
    expect(hasAwsCredentials({ AWS_PROFILE: '  ' })).toBe(false);
  });

  it('auto: Polly with credentials, else the local factory, else none', async () => {
    const client = mocked;
    const withCreds = await createSynthesizer('auto', { env: { AWS_PROFILE: 'dev' }, polly: () => client, local: async () => fakeLocal });
    expect(withCreds).toBeInstanceOf(PollySynthesizer);
    expect(await createSynthesizer('auto', { env: {}, polly: () => client, local: async () => fakeLocal })).toBe(fakeLocal);
    expect(await createSynthesizer('auto', { env: {} })).toBeUndefined();
    // The optional package is missing: auto speaks not at all rather than failing the start.
    const missing = async (): Promise<Synthesizer> => {
      throw new TtsError('tts.connection', 'the local synthesizer is not installed');
    };
    expect(await createSynthesizer('auto', { env: {}, local: missing })).toBeUndefined();
  });

  it('explicit choices: off, polly, local; local without a factory is a configuration error', async () => {
    expect(await createSynthesizer('off', { env: { AWS_PROFILE: 'dev' }, local: async () => fakeLocal })).toBeUndefined();
    expect(await createSynthesizer('polly', { env: {}, polly: () => mocked })).toBeInstanceOf(PollySynthesizer);
    expect(await createSynthesizer('polly', { env: {}, polly: () => fakeLocal })).toBe(fakeLocal);
    expect(await createSynthesizer('local', { env: { AWS_PROFILE: 'dev' }, local: async () => fakeLocal })).toBe(fakeLocal);
    const err = await createSynthesizer('local', { env: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ParleyError);
    expect((err as ParleyError).code).toBe('config.invalid');
    await expect(
      createSynthesizer('local', {
        local: async () => {
          throw new TtsError('tts.connection', 'missing');
        },
      }),
    ).rejects.toMatchObject({ code: 'tts.connection' });
  });
});

describe('PollySynthesizer over the real SDK and HTTP (a local stand-in server)', () => {
  const credentials = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' };
  // PollyClient speaks HTTP/2 (its default handler is NodeHttp2Handler), so the stand-in is an h2c server.
  let server: import('node:http2').Http2Server | undefined;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  async function serve(handler: (req: import('node:http2').Http2ServerRequest, res: import('node:http2').Http2ServerResponse) => void): Promise<string> {
    const { createServer } = await import('node:http2');
    const sessions = new Set<import('node:http2').ServerHttp2Session>();
    server = createServer(handler);
    server.on('session', (s) => {
      sessions.add(s);
      s.on('close', () => sessions.delete(s));
    });
    const close = server.close.bind(server);
    // Closing waits for open sessions: end them too.
    server.close = ((cb?: (err?: Error) => void) => {
      for (const s of sessions) s.destroy();
      return close(cb);
    }) as typeof server.close;
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const address = server.address() as import('node:net').AddressInfo;
    return `http://127.0.0.1:${address.port}`;
  }

  it('streams the HTTP body chunk by chunk', async () => {
    let sent = 0;
    let finished = false;
    const endpoint = await serve(async (req, res) => {
      res.writeHead(200, { 'content-type': 'audio/pcm' });
      for (let i = 1; i <= 4; i++) {
        res.write(Buffer.alloc(640, i));
        sent++;
        await sleep(60);
      }
      finished = true;
      res.end();
    });
    const client = new PollyClient({ endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
    const seen: { fill: number; finished: boolean }[] = [];
    for await (const c of new PollySynthesizer(client).synthesize({ text: 'Hi.', voice: joanna, format: pcm16k })) seen.push({ fill: c[0]!, finished });
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen[0]!.finished).toBe(false);
    expect(sent).toBe(4);
    expect([...new Set(seen.map((s) => s.fill))]).toEqual([1, 2, 3, 4]);
    client.destroy();
  });

  it('a refused connection is tts.connection; a service error answer is tts.failed', async () => {
    const endpoint = await serve((req, res) => {
      res.writeHead(500, { 'content-type': 'application/json', 'x-amzn-errortype': 'ServiceFailureException' });
      res.end(JSON.stringify({ message: 'boom' }));
    });
    const answering = new PollyClient({ endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
    const failed = await collect(new PollySynthesizer(answering).synthesize({ text: 'Hi.', voice: joanna, format: pcm16k })).catch((e: unknown) => e);
    expect(failed).toMatchObject({ name: 'TtsError', code: 'tts.failed' });
    expect((failed as TtsError).cause).toBeInstanceOf(ServiceFailureException);
    answering.destroy();

    // A port nobody listens on (the server's, after it is closed).
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    const refused = new PollyClient({ endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
    const err = await collect(new PollySynthesizer(refused).synthesize({ text: 'Hi.', voice: joanna, format: pcm16k })).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'TtsError', code: 'tts.connection' });
    refused.destroy();
  });
});
