import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readEnv, FunctionEnv } from '../../lib/config/env';
import { ParleyError } from '../../lib/errors';
import { memoryLog, type LogLine } from '../../lib/observability/log';
import { inTurnSpan, startTracing, type Tracing } from '../../lib/observability/tracing';
import { openAiTranscriber, transcriberFromEnv } from '../../lib/speech/stt/openai-transcriber';
import { SttError, type Transcriber, type TranscriptionRequest } from '../../lib/speech/stt/port';
import { startFakeOpenAI, type FakeOpenAI, type FakeRequest } from '../support/openai-server';
import { toneBytes } from '../support/pcm';

/*
 * The speech-to-text adapter on the REAL `openai` SDK against the local OpenAI-compatible server
 * (tests/support/openai-server.ts) over HTTP: the multipart request as the server parsed it, the
 * answers, retries, failures and the deadline. Nothing is mocked between the adapter and the socket.
 */

const API_KEY = 'sk-test-SECRET-0123456789abcdef';
const TRANSCRIPTIONS = '/v1/audio/transcriptions';
let fake: FakeOpenAI;
let lines: LogLine[];
let stt: Transcriber;

beforeAll(async () => {
  fake = await startFakeOpenAI();
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
  lines = [];
  stt = openAiTranscriber({ apiKey: API_KEY, baseURL: fake.baseURL, log: memoryLog(lines), backoffBaseMs: 1 });
});

/** `ms` of a 440 Hz tone as 16-bit little-endian mono PCM. */
const tone = (ms: number, sampleRate: number): Uint8Array => toneBytes(ms, sampleRate, { hz: 440, amplitude: 8000 });

const pcmRequest = (over: Partial<TranscriptionRequest> = {}): TranscriptionRequest => ({
  audio: tone(1000, 16_000),
  format: { encoding: 'pcm', sampleRate: 16_000 },
  language: 'en-US',
  ...over,
});

/** An Ogg Opus stream: an OpusHead page (pre-skip 312), then one audio page ending at `granule`. */
function oggOpus(granule: number): Uint8Array {
  const page = (flags: number, position: number, sequence: number, body: Uint8Array) => {
    const out = new Uint8Array(28 + body.byteLength);
    const view = new DataView(out.buffer);
    out.set(new TextEncoder().encode('OggS'), 0);
    out[5] = flags;
    view.setBigUint64(6, BigInt(position), true);
    view.setUint32(14, 0xabcd, true);
    view.setUint32(18, sequence, true);
    out[26] = 1;
    out[27] = body.byteLength;
    out.set(body, 28);
    return out;
  };
  const head = new Uint8Array(19);
  head.set(new TextEncoder().encode('OpusHead'), 0);
  head[8] = 1;
  head[9] = 1;
  new DataView(head.buffer).setUint16(10, 312, true);
  const pages = [page(0x02, 0, 0, head), page(0x04, granule, 1, new Uint8Array(200).fill(0x5a))];
  const out = new Uint8Array(pages[0]!.byteLength + pages[1]!.byteLength);
  out.set(pages[0]!, 0);
  out.set(pages[1]!, pages[0]!.byteLength);
  return out;
}

const ascii = (bytes: Uint8Array, at: number, length: number) => String.fromCharCode(...bytes.subarray(at, at + length));

const only = (): FakeRequest => {
  const requests = fake.requestsTo(TRANSCRIPTIONS);
  expect(requests).toHaveLength(1);
  return requests[0]!;
};

async function failure(promise: Promise<unknown>): Promise<SttError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SttError);
  return err as SttError;
}

describe('openAiTranscriber against an OpenAI-compatible server', () => {
  it('sends 16-bit PCM as a WAV file with the model and the language, and returns the trimmed text and the seconds', async () => {
    fake.scriptTranscription({ text: ' I want a large tea.\n' });
    const pcm = tone(1250, 16_000);
    const transcript = await stt.transcribe(pcmRequest({ audio: pcm }));
    expect(transcript).toEqual({ text: 'I want a large tea.', seconds: 1.25 });

    const sent = only();
    expect(sent.method).toBe('POST');
    expect(sent.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(sent.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(sent.form?.fields).toEqual({ model: 'whisper-1', language: 'en', response_format: 'json' });
    const file = sent.form!.files.file!;
    expect(file.name).toBe('utterance.wav');
    expect(file.type).toBe('audio/wav');
    const wav = file.bytes;
    const view = new DataView(wav.buffer, wav.byteOffset, wav.byteLength);
    expect(wav.byteLength).toBe(44 + pcm.byteLength);
    expect([ascii(wav, 0, 4), ascii(wav, 8, 4), ascii(wav, 12, 4), ascii(wav, 36, 4)]).toEqual(['RIFF', 'WAVE', 'fmt ', 'data']);
    expect(view.getUint32(4, true)).toBe(36 + pcm.byteLength);
    expect(view.getUint16(20, true)).toBe(1);
    expect(view.getUint16(22, true)).toBe(1);
    expect(view.getUint32(24, true)).toBe(16_000);
    expect(view.getUint32(28, true)).toBe(32_000);
    expect(view.getUint16(32, true)).toBe(2);
    expect(view.getUint16(34, true)).toBe(16);
    expect(view.getUint32(40, true)).toBe(pcm.byteLength);
    expect(Buffer.from(wav.subarray(44)).equals(Buffer.from(pcm))).toBe(true);
  });

  it('names the sample rate in the WAV header and the seconds (8 kHz)', async () => {
    fake.scriptTranscription({ text: 'yes' });
    const transcript = await stt.transcribe(pcmRequest({ audio: tone(500, 8000), format: { encoding: 'pcm', sampleRate: 8000 }, language: 'tr' }));
    expect(transcript).toEqual({ text: 'yes', seconds: 0.5 });
    const wav = only().form!.files.file!.bytes;
    expect(new DataView(wav.buffer, wav.byteOffset).getUint32(24, true)).toBe(8000);
    expect(only().form!.fields.language).toBe('tr');
  });

  it('an empty transcript is an answer, not an error; empty audio is not sent at all', async () => {
    fake.scriptTranscription({ text: '' }, { text: '  \n' });
    expect(await stt.transcribe(pcmRequest())).toEqual({ text: '', seconds: 1 });
    expect(await stt.transcribe(pcmRequest())).toEqual({ text: '', seconds: 1 });
    expect(fake.requestsTo(TRANSCRIPTIONS)).toHaveLength(2);
    expect(await stt.transcribe(pcmRequest({ audio: new Uint8Array(0) }))).toEqual({ text: '', seconds: 0 });
    expect(fake.requestsTo(TRANSCRIPTIONS)).toHaveLength(2);
  });

  it('sends Ogg Opus as audio/ogg unchanged; the seconds come from the last granule position', async () => {
    fake.scriptTranscription({ text: 'Hello.', seconds: 99 });
    const ogg = oggOpus(312 + 2.5 * 48_000);
    expect(await stt.transcribe({ audio: ogg, format: { encoding: 'ogg-opus' }, language: 'en' })).toEqual({ text: 'Hello.', seconds: 2.5 });
    const file = only().form!.files.file!;
    expect(file.name).toBe('utterance.ogg');
    expect(file.type).toBe('audio/ogg');
    expect(Buffer.from(file.bytes).equals(Buffer.from(ogg))).toBe(true);
  });

  it('Ogg bytes without a readable granule: the seconds are the ones the server reports', async () => {
    fake.scriptTranscription({ text: 'Hello.', seconds: 3.2 }, { text: 'Hello.' });
    const bytes = new Uint8Array(500).fill(7);
    expect(await stt.transcribe({ audio: bytes, format: { encoding: 'ogg-opus' }, language: 'en' })).toEqual({ text: 'Hello.', seconds: 3.2 });
    expect(await stt.transcribe({ audio: bytes, format: { encoding: 'ogg-opus' }, language: 'en' })).toEqual({ text: 'Hello.', seconds: 0 });
  });

  it('a 500 is retried, then the answer comes', async () => {
    fake.scriptTranscription({ status: 500, errorMessage: 'the GPU is busy' }, { status: 503 }, { text: 'Two coffees.' });
    expect(await stt.transcribe(pcmRequest())).toEqual({ text: 'Two coffees.', seconds: 1 });
    const requests = fake.requestsTo(TRANSCRIPTIONS);
    expect(requests).toHaveLength(3);
    // Every attempt sends the whole file again.
    for (const r of requests) expect(r.form!.files.file!.bytes.byteLength).toBe(44 + 32_000);
    expect(lines.filter((l) => l.message === 'transcription failed; retrying')).toHaveLength(2);
  });

  it('a 429 waits as long as retry-after-ms asks', async () => {
    fake.scriptTranscription({ status: 429, headers: { 'retry-after-ms': '150' } }, { text: 'ok' });
    const started = performance.now();
    expect((await stt.transcribe(pcmRequest())).text).toBe('ok');
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('three 500s: stt.failed after 3 attempts', async () => {
    fake.scriptTranscription({ status: 500 }, { status: 500 }, { status: 500 }, { text: 'never' });
    const err = await failure(stt.transcribe(pcmRequest()));
    expect(err.kind).toBe('stt.failed');
    expect(err.details).toMatchObject({ status: 500, attempts: 3 });
    expect(err.message).toMatch(/after 3 attempts/);
    expect(fake.requestsTo(TRANSCRIPTIONS)).toHaveLength(3);
  });

  it('a 400 fails at once with stt.failed, and the message carries no key', async () => {
    fake.scriptTranscription({ status: 400, errorMessage: `Invalid file format. (key ${API_KEY}, also sk-proj-abcdefgh12345678)` }, { text: 'never' });
    const err = await failure(stt.transcribe(pcmRequest()));
    expect(err.kind).toBe('stt.failed');
    expect(err.details).toMatchObject({ status: 400, attempts: 1 });
    expect(err.message).toMatch(/400 Invalid file format/);
    expect(err.message).not.toContain(API_KEY);
    expect(err.message).not.toContain('sk-proj-abcdefgh12345678');
    expect(JSON.stringify(lines)).not.toContain(API_KEY);
    expect(fake.requestsTo(TRANSCRIPTIONS)).toHaveLength(1);
  });

  it('a hanging server: stt.timeout within the deadline, the connection closed', async () => {
    fake.scriptTranscription({ hang: true }, { hang: true }, { hang: true });
    const started = Date.now();
    const err = await failure(stt.transcribe(pcmRequest({ deadline: started + 600 })));
    const took = Date.now() - started;
    expect(err.kind).toBe('stt.timeout');
    expect(took).toBeGreaterThanOrEqual(550);
    expect(took).toBeLessThan(1000);
    const requests = fake.requestsTo(TRANSCRIPTIONS);
    expect(requests.length).toBeGreaterThanOrEqual(1);
    expect(await requests[0]!.finished).toBe('aborted');
  });

  it('an attempt that hangs past attemptTimeoutMs is retried within the deadline', async () => {
    const quick = openAiTranscriber({ apiKey: API_KEY, baseURL: fake.baseURL, attemptTimeoutMs: 200, backoffBaseMs: 1 });
    fake.scriptTranscription({ hang: true }, { text: 'second time' });
    const started = Date.now();
    expect((await quick.transcribe(pcmRequest({ deadline: started + 5000 }))).text).toBe('second time');
    expect(Date.now() - started).toBeLessThan(1500);
    expect(fake.requestsTo(TRANSCRIPTIONS)).toHaveLength(2);
  });

  it("an aborted request rejects with the signal's reason and closes the connection", async () => {
    fake.scriptTranscription({ hang: true });
    const controller = new AbortController();
    const reason = new Error('newer input');
    setTimeout(() => controller.abort(reason), 100);
    await expect(stt.transcribe(pcmRequest({ signal: controller.signal }))).rejects.toBe(reason);
    expect(await only().finished).toBe('aborted');
    await expect(stt.transcribe(pcmRequest({ signal: controller.signal }))).rejects.toBe(reason);
    expect(fake.requestsTo(TRANSCRIPTIONS)).toHaveLength(1);
  });

  it('an unreachable server: stt.failed', async () => {
    const nowhere = openAiTranscriber({ baseURL: 'http://127.0.0.1:9/v1', backoffBaseMs: 1 });
    const err = await failure(nowhere.transcribe(pcmRequest({ deadline: Date.now() + 3000 })));
    expect(err.kind).toBe('stt.failed');
    expect(err.message).toMatch(/cannot reach the speech recognizer/);
  });
});

describe('transcriberFromEnv', () => {
  const env = (vars: Record<string, string>) => readEnv(FunctionEnv, vars);

  it('without PARLEY_STT_BASE_URL there is none', () => {
    expect(transcriberFromEnv(env({}))).toBeUndefined();
    expect(transcriberFromEnv(env({ OPENAI_API_KEY: API_KEY }))).toBeUndefined();
  });

  it('a self-hosted server: the model from PARLEY_STT_MODEL, no Authorization header without PARLEY_STT_API_KEY (never OPENAI_API_KEY)', async () => {
    const stt = transcriberFromEnv(env({ PARLEY_STT_BASE_URL: fake.baseURL, PARLEY_STT_MODEL: 'gpt-4o-mini-transcribe', OPENAI_API_KEY: API_KEY }))!;
    // Named for the ledger: a self-hosted recognizer is priced apart from OpenAI's service.
    expect(stt.provider).toBe('self-hosted');
    expect(openAiTranscriber({ model: 'whisper-1', apiKey: API_KEY }).provider).toBe('openai');
    fake.scriptTranscription({ text: 'hi' });
    expect((await stt.transcribe(pcmRequest())).text).toBe('hi');
    expect(only().form!.fields.model).toBe('gpt-4o-mini-transcribe');
    expect(only().headers.authorization).toBeUndefined();
  });

  it('PARLEY_STT_API_KEY is sent; the model defaults to whisper-1', async () => {
    const stt = transcriberFromEnv(env({ PARLEY_STT_BASE_URL: fake.baseURL, PARLEY_STT_API_KEY: 'local-key-1' }))!;
    fake.scriptTranscription({ text: 'hi' });
    await stt.transcribe(pcmRequest());
    expect(only().headers.authorization).toBe('Bearer local-key-1');
    expect(only().form!.fields.model).toBe('whisper-1');
  });

  it('api.openai.com falls back to OPENAI_API_KEY, and without any key is a configuration error', () => {
    expect(transcriberFromEnv(env({ PARLEY_STT_BASE_URL: 'https://api.openai.com/v1', OPENAI_API_KEY: API_KEY }))).toBeDefined();
    expect(() => transcriberFromEnv(env({ PARLEY_STT_BASE_URL: 'https://api.openai.com/v1' }))).toThrow(ParleyError);
    expect(() => transcriberFromEnv(env({ PARLEY_STT_BASE_URL: 'https://api.openai.com/v1' }))).toThrow(/PARLEY_STT_API_KEY or OPENAI_API_KEY/);
  });

  it('PARLEY_STT_BASE_URL must be a URL', () => {
    expect(() => env({ PARLEY_STT_BASE_URL: 'not a url' })).toThrow(/PARLEY_STT_BASE_URL/);
  });
});

describe('the stt.transcribe span', () => {
  let exporter: InMemorySpanExporter;
  let tracing: Tracing;
  beforeAll(async () => {
    exporter = new InMemorySpanExporter();
    tracing = await startTracing({ exporter, processor: 'simple' });
  });
  afterAll(async () => {
    await tracing?.shutdown();
  });
  const inTurn = <T>(run: () => Promise<T>) => inTurnSpan({ sessionId: 'stt-session', turnId: 't1', seq: 1, inputKind: 'audio', nodeBefore: null }, run);
  const sttSpans = () => exporter.getFinishedSpans().filter((s) => s.name === 'stt.transcribe');

  it('a child of the turn: provider, model, format, bytes, seconds, attempts; never the text', async () => {
    fake.scriptTranscription({ status: 502 }, { text: 'My secret order is a mocha.' });
    await inTurn(() => stt.transcribe(pcmRequest()));
    const [span] = sttSpans();
    const turn = exporter.getFinishedSpans().find((s) => s.name === 'parley.turn')!;
    expect(span!.parentSpanContext?.spanId).toBe(turn.spanContext().spanId);
    expect(span!.kind).toBe(SpanKind.CLIENT);
    expect(span!.attributes).toEqual({
      'parley.stt.provider': 'self-hosted',
      'parley.stt.model': 'whisper-1',
      'parley.stt.format': 'pcm/16000',
      'parley.stt.bytes': 32_000,
      'parley.stt.seconds': 1,
      'parley.language': 'en',
      'parley.stt.attempts': 2,
      'parley.stt.empty': false,
    });
    expect(JSON.stringify(span!.attributes)).not.toContain('mocha');
  });

  it('a failure marks the span with its kind', async () => {
    exporter.reset();
    fake.scriptTranscription({ status: 400, errorMessage: 'bad audio' });
    await expect(inTurn(() => stt.transcribe(pcmRequest()))).rejects.toBeInstanceOf(SttError);
    const [span] = sttSpans();
    expect(span!.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'stt.failed' });
    expect(span!.attributes['error.type']).toBe('stt.failed');
    expect(span!.attributes['parley.stt.attempts']).toBe(1);
  });
});
