import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { LIMITS, type ServerEvent, type ServerEventOf } from '../../lib/protocol/v1';
import { emptyAudioCache } from '../../lib/speech/audio-cache';
import { openAiTranscriber } from '../../lib/speech/stt/openai-transcriber';
import { transcribeAccess } from '../../lib/speech/stt/transcribe-access';
import type { SynthesisRequest, Synthesizer } from '../../lib/speech/tts/port';
import { voiceFor } from '../../lib/speech/tts/voice';
import type { LocalRuntime, LocalRuntimeOptions } from '../../local/runtime';
import { sampleMap, startRuntime, storeOf, tableSnapshot, TestClient, textOf } from './harness';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';
import { recordFault } from '../support/fault-table';
import { toneBytes } from '../support/pcm';

/*
 * Voice input end to end: the real local gateway, dynalite and handlers, a real WebSocket client.
 * Uploaded utterances go to the local OpenAI-compatible test server over HTTP; Transcribe access is
 * the real issuer with STS answered by aws-sdk-client-mock; partial transcripts prepare audio with a
 * synthesizer that counts what it is asked to say.
 */

const map = sampleMap();
const TRANSCRIPTIONS = '/v1/audio/transcriptions';
const RATE = 16_000;
let fake: FakeOpenAI;
const runtimes: LocalRuntime[] = [];
const clients: TestClient[] = [];

beforeAll(async () => {
  fake = await startFakeOpenAI();
});
afterEach(async () => {
  clients.splice(0).forEach((c) => c.close());
  await Promise.all(runtimes.splice(0).map((r) => r.close()));
  fake.reset();
});
afterAll(async () => {
  await fake.close();
});

async function runtimeWith(options: Partial<LocalRuntimeOptions>): Promise<LocalRuntime> {
  const runtime = await startRuntime(options);
  runtimes.push(runtime);
  return runtime;
}

async function client(runtime: LocalRuntime): Promise<TestClient> {
  const c = await TestClient.connect(runtime.wsUrl);
  clients.push(c);
  return c;
}

const uploads = () => ({ stt: { transcriber: openAiTranscriber({ baseURL: fake.baseURL, apiKey: 'test', backoffBaseMs: 1 }) } });

/** `ms` of a quiet tone as 16-bit little-endian mono PCM at 16 kHz. */
const utterance = (ms: number): Buffer => Buffer.from(toneBytes(ms, RATE));

/** Sends the utterance as input.audio chunks of at most `chunkBytes`, then commits it; returns the chunk count. */
function upload(c: TestClient, turnId: string, pcm: Buffer, chunkBytes = 10_500, speech?: { sinceFirstAudioMs: number }): number {
  let count = 0;
  for (let at = 0; at < pcm.length; at += chunkBytes, count++) {
    c.send({ type: 'input.audio', turnId, seq: count, audio: pcm.subarray(at, at + chunkBytes).toString('base64') });
  }
  c.send({ type: 'input.audio.commit', turnId, sessionId: c.sessionId, chunks: count, ...(speech ? { speech } : {}) });
  return count;
}

async function eventsUntil(c: TestClient, stop: (e: ServerEvent) => boolean): Promise<ServerEvent[]> {
  const events: ServerEvent[] = [];
  for (;;) {
    const event = await c.take();
    events.push(event);
    if (stop(event)) return events;
  }
}

const utteranceItems = async (runtime: LocalRuntime) => (await tableSnapshot(runtime)).filter((i) => i.pk?.S?.startsWith('UTT#'));
const voiceStart = { type: 'session.start', speechInput: { encoding: 'pcm', sampleRate: RATE } } as const;

describe('uploaded utterances (the self-hostable path)', () => {
  it('transcribes the chunks at the recognizer and runs the turn on the transcript; the record says it was spoken', async () => {
    const runtime = await runtimeWith(uploads());
    const c = await client(runtime);
    const { started } = await c.open(voiceStart);
    expect(started.speechInput).toEqual({ mode: 'upload', language: 'en-US', encoding: 'pcm', sampleRate: RATE });

    fake.scriptTranscription({ text: 'I would like a large cappuccino', seconds: 2.5 });
    const pcm = utterance(2500);
    const turnId = crypto.randomUUID();
    const chunks = upload(c, turnId, pcm, 10_500, { sinceFirstAudioMs: 2900 });
    expect(chunks).toBeGreaterThan(5);
    const events = await eventsUntil(c, (e) => e.type === 'turn.completed' || e.type === 'error');

    expect(events[0]).toEqual({ type: 'input.transcript', turnId, text: 'I would like a large cappuccino' });
    const done = events.find((e): e is ServerEventOf<'response.text.done'> => e.type === 'response.text.done');
    expect(done?.text).toMatch(/large cappuccino/i);
    const completed = events.at(-1) as ServerEventOf<'turn.completed'>;
    expect(completed.type).toBe('turn.completed');
    expect(completed.usage.sttSeconds).toBe(2.5);
    // Priced as a self-hosted recognizer (nothing by default), not as Transcribe.
    expect(completed.usage.sttSecondsByProvider).toEqual({ 'self-hosted': 2.5 });
    expect(completed.cost?.lines.filter((l) => l.item === 'stt')).toEqual([expect.objectContaining({ quantity: 2.5, detail: 'self-hosted', usd: 0 })]);
    // t1 is the first audio, 2.9 s before the commit arrived; t2 (the transcript) and the rest follow it.
    expect(completed.metrics.t2).toBeGreaterThanOrEqual(2900);
    expect(completed.metrics.t3).toBeGreaterThanOrEqual(completed.metrics.t2!);

    // The recognizer got the whole utterance, in order, as one WAV file.
    const [request] = fake.requestsTo(TRANSCRIPTIONS);
    const file = request!.form!.files.file!;
    expect(file.bytes.length).toBe(44 + pcm.length);
    expect(Buffer.from(file.bytes.subarray(44)).equals(pcm)).toBe(true);
    expect(request!.form!.fields.language).toBe('en');

    const head = await storeOf(runtime).loadHead(c.sessionId!);
    expect(head?.input).toEqual({ kind: 'text', text: 'I would like a large cappuccino', source: 'speech', stt: { provider: 'self-hosted', audioMs: 2500 } });
    expect(head?.checkpoint.usage.sttSeconds).toBe(2.5);
    // Once read, the chunks are gone.
    expect(await utteranceItems(runtime)).toEqual([]);
  });

  it('seed 000: an empty transcript listens again: no turn, no LLM call, nothing stored', async () => {
    const runtime = await runtimeWith(uploads());
    const c = await client(runtime);
    await c.open(voiceStart);
    const before = (await tableSnapshot(runtime)).filter((i) => i.pk?.S?.startsWith('SESS#'));
    fake.scriptTranscription({ text: '   ', seconds: 1 });
    const turnId = crypto.randomUUID();
    upload(c, turnId, utterance(1000));
    expect(await c.take()).toEqual({ type: 'input.transcript', turnId, text: '' });
    // Nothing follows for that turn: the next thing the client hears is the answer to its next input.
    expect(await c.say('hello there')).toContainEqual(expect.objectContaining({ type: 'turn.completed' }));
    expect(fake.requestsTo('/v1/chat/completions')).toEqual([]);
    const head = await storeOf(runtime).loadHead(c.sessionId!);
    expect(head?.seq).toBe(1);
    expect(head?.input).toEqual({ kind: 'text', text: 'hello there' });
    expect(before.find((i) => i.sk?.S === 'TURN#000000001')).toBeUndefined();
    recordFault({ area: 'speech input', fault: 'the recognizer hears nothing in an uploaded utterance (blank transcript)', outcome: '`input.transcript` with empty text and nothing after it: no turn, no LLM call, nothing stored; the next input runs as turn 1' });
  });

  it('seed 000: a recognizer failure is reported as stt.failed with the turn id, stores nothing, and the next utterance is tried afresh', async () => {
    const runtime = await runtimeWith(uploads());
    const c = await client(runtime);
    await c.open(voiceStart);
    const before = await tableSnapshot(runtime);
    fake.scriptTranscription({ status: 400, errorMessage: 'unsupported audio' });
    const failed = crypto.randomUUID();
    upload(c, failed, utterance(800));
    const error = await c.next('error');
    expect(error).toMatchObject({ code: 'stt.failed', turnId: failed });
    expect(error.message).toMatch(/say it again/);
    const after = (await tableSnapshot(runtime)).filter((i) => !i.pk?.S?.startsWith('CONN#') && !i.pk?.S?.startsWith('RATE#'));
    expect(after).toEqual(before.filter((i) => !i.pk?.S?.startsWith('CONN#') && !i.pk?.S?.startsWith('RATE#')));

    fake.scriptTranscription({ text: 'what is on the menu', seconds: 1 });
    const next = crypto.randomUUID();
    upload(c, next, utterance(1000));
    const events = await eventsUntil(c, (e) => e.type === 'turn.completed' || e.type === 'error');
    expect(events[0]).toEqual({ type: 'input.transcript', turnId: next, text: 'what is on the menu' });
    expect(events.at(-1)?.type).toBe('turn.completed');
    recordFault({ area: 'speech input', fault: 'the recognizer refuses an uploaded utterance (HTTP 400)', outcome: '`stt.failed` with the turn id, nothing stored (the table as before); the next utterance is transcribed and answered' });
  });

  it('refuses a commit whose chunks did not all arrive, and an utterance over the limit; nothing runs', async () => {
    const runtime = await runtimeWith(uploads());
    const c = await client(runtime);
    await c.open(voiceStart);
    const turnId = crypto.randomUUID();
    c.send({ type: 'input.audio', turnId, seq: 0, audio: utterance(100).toString('base64') });
    c.send({ type: 'input.audio', turnId, seq: 2, audio: utterance(100).toString('base64') });
    c.send({ type: 'input.audio.commit', turnId, chunks: 3 });
    expect(await c.next('error')).toMatchObject({ code: 'protocol.invalid_message', turnId, message: expect.stringMatching(/1 never arrived \(seq 1\)/) });

    const big = crypto.randomUUID();
    const count = upload(c, big, utterance(33_000));
    expect(count).toBeLessThanOrEqual(LIMITS.audioChunks);
    expect(await c.next('error', 15_000)).toMatchObject({ code: 'protocol.too_large', turnId: big });
    expect(fake.requestsTo(TRANSCRIPTIONS)).toEqual([]);
    expect(await utteranceItems(runtime)).toEqual([]);
    recordFault({ area: 'speech input', fault: 'an `input.audio.commit` whose pieces did not all arrive; an utterance over 1 MiB', outcome: '`protocol.invalid_message` naming the missing pieces (after waiting 3 s for late ones); `protocol.too_large`; the recognizer never asked, the pieces deleted' });
  });

  it('refuses a chunk that is not base64 or too long, by the protocol; and speech.renew, which is for live sessions', async () => {
    const runtime = await runtimeWith(uploads());
    const c = await client(runtime);
    await c.open(voiceStart);
    c.send({ type: 'speech.renew' });
    expect(await c.next('error')).toMatchObject({ code: 'protocol.order', message: expect.stringMatching(/uploads its utterances/) });
    const turnId = crypto.randomUUID();
    c.send({ type: 'input.audio', turnId, seq: 0, audio: 'not base64!' });
    expect(await c.next('error')).toMatchObject({ code: 'protocol.invalid_message', turnId });
    c.send({ type: 'input.audio', turnId, seq: 0, audio: 'A'.repeat(LIMITS.audioChunkChars + 4) });
    expect(await c.next('error')).toMatchObject({ code: 'protocol.invalid_message', turnId });
  });
});

describe('without voice', () => {
  it('a server with no recognizer answers stt.unavailable; typed turns still work', async () => {
    const runtime = await runtimeWith({});
    const c = await client(runtime);
    c.send({ type: 'hello', version: '1' });
    await c.next('hello.ack');
    c.send(voiceStart);
    const started = await c.next('session.started');
    expect(started.speechInput).toBeNull();
    expect(await c.next('error')).toMatchObject({ code: 'stt.unavailable' });
    c.sessionId = started.sessionId;
    await c.until('turn.completed');
    expect(textOf(await c.say('what is on the menu'))).toMatch(/menu|espresso|cappuccino/i);
  });

  it('a session that did not ask for voice input gets protocol.order for every voice message, and nothing is stored', async () => {
    const runtime = await runtimeWith({ ...uploads(), ...transcribeStt() });
    const c = await client(runtime);
    const { started } = await c.open();
    expect(started.speechInput).toBeUndefined();
    const before = await tableSnapshot(runtime);
    const turnId = crypto.randomUUID();
    for (const message of [
      { type: 'speech.renew' },
      { type: 'input.partial', turnId, text: 'a large' },
      { type: 'input.audio', turnId, seq: 0, audio: 'AAAA' },
      { type: 'input.audio.commit', turnId, chunks: 1 },
      { type: 'input.text', turnId, text: 'a large latte', source: 'speech', speech: { sinceFirstAudioMs: 900 } },
    ]) {
      c.send(message);
      const error = await c.next('error');
      expect(error.code, message.type).toBe('protocol.order');
      expect(error.message).toMatch(/did not ask for voice input/);
    }
    expect(sts.commandCalls(AssumeRoleCommand)).toEqual([]);
    const keep = (i: Record<string, unknown>) => !String((i.pk as { S?: string })?.S).startsWith('CONN#');
    expect((await tableSnapshot(runtime)).filter(keep)).toEqual(before.filter(keep));
  });
});

// STS answered by aws-sdk-client-mock; the issuer itself is the real one.
const stsClient = new STSClient({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIAOWN', secretAccessKey: 'own-secret' } });
const sts = mockClient(stsClient);
const ASSUMED = { AccessKeyId: 'ASIAVOICE', SecretAccessKey: 'voice-secret', SessionToken: 'voice-token' };
function transcribeStt() {
  sts.reset();
  sts.on(AssumeRoleCommand).resolves({ Credentials: { ...ASSUMED, Expiration: new Date(Date.now() + 900_000) } });
  return { stt: { access: transcribeAccess({ sts: stsClient, roleArn: 'arn:aws:iam::123456789012:role/Transcribe', region: 'eu-west-1' }) } };
}

describe('live transcription (Amazon Transcribe on the client)', () => {
  it('issues scoped access after session.started and on speech.renew; the final transcript runs as a spoken turn with its stages', async () => {
    const runtime = await runtimeWith(transcribeStt());
    const c = await client(runtime);
    c.send({ type: 'hello', version: '1' });
    await c.next('hello.ack');
    c.send(voiceStart);
    const started = await c.next('session.started');
    expect(started.speechInput).toEqual({ mode: 'transcribe', language: 'en-US', encoding: 'pcm', sampleRate: RATE });
    const access = await c.next('speech.access');
    expect(access).toMatchObject({ region: 'eu-west-1', languageCode: 'en-US', encoding: 'pcm', sampleRate: RATE, credentials: { accessKeyId: 'ASIAVOICE', secretAccessKey: 'voice-secret', sessionToken: 'voice-token' } });
    expect(new URL(access.url).host).toBe('transcribestreaming.eu-west-1.amazonaws.com:8443');
    expect(access.urlExpiresAt - Date.now()).toBeLessThanOrEqual(300_000);
    const [assumed] = sts.commandCalls(AssumeRoleCommand).map((call) => call.args[0].input);
    expect(JSON.parse(assumed!.Policy!).Statement).toEqual([{ Effect: 'Allow', Action: 'transcribe:StartStreamTranscriptionWebSocket', Resource: '*' }]);
    expect(assumed!.DurationSeconds).toBe(900);
    c.sessionId = started.sessionId;
    await c.until('turn.completed');

    c.send({ type: 'speech.renew' });
    expect((await c.next('speech.access')).credentials.accessKeyId).toBe('ASIAVOICE');
    expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(2);

    // Uploads do not fit this mode.
    const stray = crypto.randomUUID();
    c.send({ type: 'input.audio', turnId: stray, seq: 0, audio: 'AAAA' });
    expect(await c.next('error')).toMatchObject({ code: 'protocol.order', turnId: stray, message: expect.stringMatching(/transcribes live/) });
    c.send({ type: 'input.audio.commit', turnId: stray, chunks: 1 });
    expect(await c.next('error')).toMatchObject({ code: 'protocol.order', turnId: stray });

    const turnId = crypto.randomUUID();
    c.send({ type: 'input.text', turnId, sessionId: c.sessionId, text: 'what is on the menu', source: 'speech', speech: { sinceFirstAudioMs: 1800, sinceFinalMs: 300, audioMs: 1700 } });
    const events = await c.until('turn.completed');
    const completed = events.at(-1) as ServerEventOf<'turn.completed'>;
    expect(completed.metrics.t2).toBe(1500);
    expect(completed.metrics.t3).toBeGreaterThanOrEqual(1800);
    expect(completed.usage.sttSeconds).toBe(1.7);
    expect(completed.cost?.lines.filter((l) => l.item === 'stt')).toEqual([expect.objectContaining({ quantity: 1.7, detail: 'streaming', usd: 0.00068 })]);
    const head = await storeOf(runtime).loadHead(c.sessionId!);
    expect(head?.input).toEqual({ kind: 'text', text: 'what is on the menu', source: 'speech', stt: { provider: 'transcribe', audioMs: 1700 } });
  });

  it('an STS failure answers stt.unavailable after session.started; the session works', async () => {
    const stt = transcribeStt();
    sts.on(AssumeRoleCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDenied' }));
    const runtime = await runtimeWith(stt);
    const c = await client(runtime);
    c.send({ type: 'hello', version: '1' });
    await c.next('hello.ack');
    c.send(voiceStart);
    const started = await c.next('session.started');
    expect(started.speechInput?.mode).toBe('transcribe');
    expect(await c.next('error')).toMatchObject({ code: 'stt.unavailable' });
    await c.until('turn.completed');
    recordFault({ area: 'speech input', fault: 'STS refuses to issue Transcribe access (AccessDenied) at session.start', outcome: '`session.started`, then `stt.unavailable`; the greeting runs and the session works' });
  });
});

/** A synthesizer that makes silence slowly and remembers what it was asked to say. */
function slowSynthesizer(delayMs: number): Synthesizer & { texts: string[] } {
  const texts: string[] = [];
  return {
    provider: 'test',
    texts,
    supports: (f) => f.format === 'pcm',
    async *synthesize(request: SynthesisRequest) {
      texts.push(request.text);
      await new Promise((r) => setTimeout(r, delayMs));
      yield new Uint8Array(request.format.sampleRate / 10); // 50 ms of 16-bit silence
    },
  };
}

describe('early work on partial transcripts (seed 004)', () => {
  const speechRuntime = async (synth: Synthesizer) =>
    runtimeWith({ ...uploads(), speech: { synthesizer: synth, cache: emptyAudioCache, voiceFor: (language) => voiceFor(map, language, 'polly') } });
  const audioStart = { ...voiceStart, audio: { format: 'pcm', sampleRate: RATE } } as const;

  it('a right guess: the answer is rendered ahead, the turn plays it without synthesizing again; the record says so', async () => {
    const synth = slowSynthesizer(150);
    const runtime = await speechRuntime(synth);
    const c = await client(runtime);
    await c.open(audioStart);
    const greeted = synth.texts.length;
    const before = await tableSnapshot(runtime);
    const turnId = crypto.randomUUID();
    c.send({ type: 'input.partial', turnId, sessionId: c.sessionId, text: 'a large cappuccino' });
    // The partial is answered by nothing: wait until its audio was made, then check nothing was stored.
    await vi.waitFor(() => expect(synth.texts.some((t) => /large cappuccino/i.test(t))).toBe(true), POLL);
    const keep = (i: Record<string, unknown>) => !String((i.pk as { S?: string })?.S).startsWith('CONN#');
    expect((await tableSnapshot(runtime)).filter(keep)).toEqual(before.filter(keep));
    expect(c.events).toEqual([]);
    const renderedEarly = synth.texts.length;

    c.send({ type: 'input.text', turnId, sessionId: c.sessionId, text: 'a large cappuccino', source: 'speech', speech: { sinceFirstAudioMs: 1200 } });
    const events = await c.until('turn.completed');
    expect(events.filter((e) => e.type === 'response.audio.done').length).toBeGreaterThan(0);
    // Nothing of the answer was synthesized twice.
    expect(synth.texts.length).toBe(renderedEarly);
    const head = await storeOf(runtime).loadHead(c.sessionId!);
    const guess = head?.events.find((e) => e.type === 'early_guess');
    expect(guess).toMatchObject({ type: 'early_guess', intent: 'order_drink', right: true, partials: 1 });
    expect((guess as { used: number }).used).toBeGreaterThan(0);
    expect(head?.usage.ttsCharacters).toBe(synth.texts.slice(greeted).join('').length);
  });

  it('partials word by word: each one that adds a detail renders its answer too, so the final words are ready (regression)', async () => {
    const synth = slowSynthesizer(30);
    const runtime = await speechRuntime(synth);
    const c = await client(runtime);
    await c.open(audioStart);
    const turnId = crypto.randomUUID();
    const words = ["I'd", 'like', 'a', 'large', 'cappuccino', 'with', 'oat', 'milk'];
    for (let n = 1; n <= words.length; n++) {
      c.send({ type: 'input.partial', turnId, sessionId: c.sessionId, text: words.slice(0, n).join(' ') });
      await new Promise((r) => setTimeout(r, 60));
    }
    await vi.waitFor(() => expect(synth.texts.some((t) => /oat milk/.test(t))).toBe(true), POLL);
    c.send({ type: 'input.text', turnId, sessionId: c.sessionId, text: words.join(' '), source: 'speech', speech: { sinceFirstAudioMs: 2000 } });
    await c.until('turn.completed');
    // The sentence with every detail was made once, ahead, and the answer played it.
    expect(synth.texts.filter((t) => /large cappuccino with oat milk/.test(t))).toHaveLength(1);
    const head = await storeOf(runtime).loadHead(c.sessionId!);
    expect(head?.events.find((e) => e.type === 'early_guess')).toMatchObject({ intent: 'order_drink', right: true, partials: words.length });
    expect((head?.events.find((e) => e.type === 'early_guess') as { used: number }).used).toBeGreaterThan(0);
  });

  it('a wrong guess: the final input decides, the prepared audio is dropped, and its synthesis is billed to the turn', async () => {
    const synth = slowSynthesizer(20);
    const runtime = await speechRuntime(synth);
    const c = await client(runtime);
    await c.open(audioStart);
    const greeted = synth.texts.length;
    const turnId = crypto.randomUUID();
    c.send({ type: 'input.partial', turnId, sessionId: c.sessionId, text: 'what is on the menu' });
    await vi.waitFor(() => expect(synth.texts.length).toBeGreaterThan(greeted), POLL);
    const early = synth.texts.slice(greeted);

    c.send({ type: 'input.text', turnId, sessionId: c.sessionId, text: 'a small latte please', source: 'speech', speech: { sinceFirstAudioMs: 1500 } });
    const events = await c.until('turn.completed');
    expect(events.find((e): e is ServerEventOf<'response.text.done'> => e.type === 'response.text.done')?.text).toMatch(/small latte/i);
    const head = await storeOf(runtime).loadHead(c.sessionId!);
    expect(head?.checkpoint.currentNode).toBe('confirm');
    expect(head?.events.find((e) => e.type === 'early_guess')).toMatchObject({ intent: 'ask_menu', right: false, used: 0 });
    const spoken = synth.texts.slice(greeted + early.length);
    expect(head?.usage.ttsCharacters).toBe([...early, ...spoken].join('').length);
  });

  it('a partial for a turn id that already ran, or on an ended session, prepares nothing', async () => {
    const synth = slowSynthesizer(5);
    const runtime = await speechRuntime(synth);
    const c = await client(runtime);
    await c.open(audioStart);
    const turnId = crypto.randomUUID();
    await c.say('what is on the menu', turnId);
    const count = synth.texts.length;
    c.send({ type: 'input.partial', turnId, sessionId: c.sessionId, text: 'a large cappuccino' });
    await new Promise((r) => setTimeout(r, 300));
    expect(synth.texts.length).toBe(count);
  });
});

/** How long vi.waitFor polls a condition here, and how often. */
const POLL = { timeout: 5000, interval: 10 };
