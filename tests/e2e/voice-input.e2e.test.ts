import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page, WebSocketRoute } from 'playwright-core';
import type { DynamoSessionStore } from '../../lib/checkpoint/dynamo-store';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import { llmPortsFactory } from '../../lib/llm/configure';
import { emptyAudioCache } from '../../lib/speech/audio-cache';
import { openAiTranscriber } from '../../lib/speech/stt/openai-transcriber';
import { voiceFor } from '../../lib/speech/tts/voice';
import type { SpeechDeps } from '../../lib/session/dispatch';
import type { LocalRuntime } from '../../local/runtime';
import { createEspeakSynthesizer, type EspeakSynthesizer } from '../../local/speech/espeak';
import { sampleMap, startRuntime, storeOf } from '../integration/harness';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';
import { AUDIO_TAP_SCRIPT, fakeMicrophone, launchChromium } from './browser';
import type { SpeechWav } from './speech-wav';
import { bot, botTalks, nextBargeIn, sessionIdOf, sound, speechWavOrSkip, voiceOn } from './widget-page';
import { PRE_ROLL_MS } from '../../web/widget/speech-input';

/*
 * Voice input in a real browser: chromium's fake microphone says "I would like a cappuccino" (a
 * WAV made by the local synthesizer) into the widget, whose detector cuts the utterance, and the
 * self-hostable `upload` path carries it to the local runtime, which transcribes it with a local
 * server speaking OpenAI's audio/transcriptions format. A second runtime has no recognizer: there
 * the microphone only stops the bot. Skipped, with the reason printed, without chromium or the
 * local synthesizer, except under CI=true, where that fails the run.
 */

const WAIT = { timeout: 20_000 };
const SAID = 'I would like a cappuccino';
const HEARD = 'I would like a cappuccino.';

/**
 * Amazon Transcribe's WebSocket frames are AWS event stream messages: a prelude (total length,
 * headers length, CRC), headers, the payload and a CRC. The client's audio comes as an AudioEvent
 * message whose payload is the PCM (wrapped once more in a signed message, when signed per chunk).
 */
function eventPayload(message: Buffer): Buffer {
  if (message.length < 16) return Buffer.alloc(0); // not a message: an empty frame ends the stream
  const payload = message.subarray(12 + message.readUInt32BE(4), message.readUInt32BE(0) - 4);
  const nested = payload.length >= 16 && payload.readUInt32BE(0) === payload.length && crc32(payload.subarray(0, 8)) === payload.readUInt32BE(8);
  return nested ? eventPayload(payload) : payload;
}

/** A Transcribe `TranscriptEvent` message carrying `results`. */
function transcriptEvent(results: unknown[]): Buffer {
  const header = (name: string, value: string) => {
    const n = Buffer.from(name);
    const v = Buffer.from(value);
    const out = Buffer.alloc(1 + n.length + 1 + 2 + v.length);
    out.writeUInt8(n.length, 0);
    n.copy(out, 1);
    out.writeUInt8(7, 1 + n.length); // a string
    out.writeUInt16BE(v.length, 2 + n.length);
    v.copy(out, 4 + n.length);
    return out;
  };
  const headers = Buffer.concat([header(':message-type', 'event'), header(':event-type', 'TranscriptEvent'), header(':content-type', 'application/json')]);
  const payload = Buffer.from(JSON.stringify({ Transcript: { Results: results } }));
  const message = Buffer.alloc(12 + headers.length + payload.length + 4);
  message.writeUInt32BE(message.length, 0);
  message.writeUInt32BE(headers.length, 4);
  message.writeUInt32BE(crc32(message.subarray(0, 8)), 8);
  headers.copy(message, 12);
  payload.copy(message, 12 + headers.length);
  message.writeUInt32BE(crc32(message.subarray(0, message.length - 4)), message.length - 4);
  return message;
}

// A faint noise bed, as every real microphone has: the detector learns the room from it.
const wav: SpeechWav | null = await speechWavOrSkip(SAID, { leadSilenceMs: 1000, noiseDbfs: -60 }, 'the browser voice input tests');
const browser: Browser | null = wav ? await launchChromium(fakeMicrophone(wav.path)) : null;

describe.skipIf(browser === null)('voice input in the chat widget, in chromium', () => {
  const map = sampleMap();
  let espeak: EspeakSynthesizer;
  let openai: FakeOpenAI;
  /** With a recognizer: session.started says `upload`. */
  let withStt: LocalRuntime;
  /** Without: speechInput null and stt.unavailable. */
  let withoutStt: LocalRuntime;
  let store: DynamoSessionStore;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    espeak = await createEspeakSynthesizer();
    openai = await startFakeOpenAI();
    const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'gpt-test', PARLEY_SAFETY: 'local', PARLEY_LLM_BUDGET_MS: '20000' });
    const speech: SpeechDeps = { synthesizer: espeak, cache: emptyAudioCache, voiceFor: (language) => voiceFor(map, language, 'espeak') };
    const llm = llmPortsFactory(env)('test-key');
    const transcriber = openAiTranscriber({ baseURL: openai.baseURL, model: 'whisper-1', apiKey: 'test' });
    withStt = await startRuntime({ servePage: true, llm, speech, stt: { transcriber } });
    withoutStt = await startRuntime({ servePage: true, llm, speech });
    store = storeOf(withStt);
  });

  // A page left listening would hold the fake microphone: each test's pages close with it.
  afterEach(async () => {
    openai.reset();
    await Promise.all(contexts.splice(0).map((c) => c.close()));
  });

  afterAll(async () => {
    await browser?.close();
    await withStt?.close();
    await withoutStt?.close();
    await openai?.close();
    await espeak?.close();
    if (wav) await rm(dirname(wav.path), { recursive: true, force: true });
  });

  /** A fresh page (its own localStorage, so its own session), collecting page errors and every client message the widget sends. */
  async function openPage(runtime: LocalRuntime): Promise<{ page: Page; errors: string[]; sent: () => Promise<Array<{ type: string; [k: string]: unknown }>> }> {
    const context = await browser!.newContext({ viewport: { width: 440, height: 680 } });
    contexts.push(context);
    await context.addInitScript(AUDIO_TAP_SCRIPT);
    // Every message the widget sends, to see what went over the socket.
    await context.addInitScript(`(() => {
      const sent = (window.__sent = []);
      const send = WebSocket.prototype.send;
      WebSocket.prototype.send = function (data) {
        try { sent.push(JSON.parse(data)); } catch {}
        return send.call(this, data);
      };
    })();`);
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(runtime.httpUrl);
    const sent = () => page.evaluate(() => (window as unknown as { __sent: Array<{ type: string }> }).__sent);
    return { page, errors, sent };
  }

  const user = (page: Page, text: string | RegExp) => page.locator('parley-chat .msg.user', { hasText: text }).last();

  it('upload: the spoken order is recorded, uploaded, transcribed by the server, shown as the user message, answered and stored', async () => {
    const { page, errors, sent } = await openPage(withStt);
    const scripts: string[] = [];
    page.on('request', (r) => void (r.resourceType() === 'script' && scripts.push(new URL(r.url()).pathname)));
    await voiceOn(page, WAIT);
    // The session asked for voice input and the server transcribes uploads: the microphone says it takes messages.
    await expect(page.locator('parley-chat').getAttribute('data-voice-input')).resolves.toBe('on');
    expect((await sent()).filter((m) => m.type === 'session.start').at(-1)).toMatchObject({ speechInput: { encoding: 'pcm', sampleRate: 16000 } });

    openai.scriptTranscription({ text: HEARD });
    await page.locator('parley-chat #mic').click();
    await user(page, HEARD).waitFor(WAIT);
    // The sample bot takes the order and asks for the size.
    await bot(page, 'Which size: small, medium or large?').waitFor(WAIT);
    await expect(page.locator('parley-chat #heard').isHidden()).resolves.toBe(true);

    // One upload, of about the utterance: 16 kHz 16-bit PCM, so 32 bytes a millisecond, from a little
    // before the speech (the pre-roll) to a little after it (the detector's hangover).
    const uploads = openai.requestsTo('/v1/audio/transcriptions');
    expect(uploads).toHaveLength(1);
    const form = uploads[0]!.form!;
    expect(form.fields.model).toBe('whisper-1');
    const [file] = Object.values(form.files);
    const bytes = file!.bytes;
    expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe('RIFF');
    expect(new DataView(bytes.buffer, bytes.byteOffset).getUint32(24, true)).toBe(16000);
    const speechMs = wav!.durationMs - wav!.onsetMs;
    const audioMs = (bytes.length - 44) / 32;
    console.log(`voice input: uploaded ${audioMs.toFixed(0)} ms of audio for ${speechMs.toFixed(0)} ms of speech`);
    expect(audioMs).toBeGreaterThan(speechMs - 150);
    expect(audioMs).toBeLessThan(speechMs + 1500);

    // What the widget sent: chunks within the limits, then the commit naming how many.
    const messages = await sent();
    const chunks = messages.filter((m) => m.type === 'input.audio');
    const commit = messages.find((m) => m.type === 'input.audio.commit');
    expect(commit).toMatchObject({ chunks: chunks.length, speech: { sinceFirstAudioMs: expect.any(Number) } });
    expect(chunks.every((c) => c.turnId === commit!.turnId)).toBe(true);

    // The stored turn: the transcript is its input, as speech.
    const sessionId = await sessionIdOf(page);
    // The reply goes out before the turn commits.
    await expect.poll(async () => (await store.loadHead(sessionId))?.input.kind, { timeout: 10_000, interval: 50 }).toBe('text');
    const head = await store.loadHead(sessionId);
    expect(head!.input).toMatchObject({ kind: 'text', text: HEARD, source: 'speech' });
    expect(head!.checkpoint.transcript.find((m) => m.role === 'user')?.text).toBe(HEARD);
    // Uploading needs no AWS SDK: the live-transcription bundle was never fetched.
    expect(scripts).not.toContain('/parley-transcribe.js');
    expect(errors).toEqual([]);
  });

  it('upload: speaking over the bot stops it, and what was said becomes the next message', async () => {
    const { page, errors } = await openPage(withStt);
    await voiceOn(page, WAIT);
    await botTalks(page, openai, WAIT);
    const bargeIn = nextBargeIn(page);
    openai.scriptTranscription({ text: HEARD });
    await page.locator('parley-chat #mic').click();
    const barge = await bargeIn;
    expect(barge.playedMs).toBeGreaterThan(0);
    await user(page, HEARD).waitFor(WAIT);
    await bot(page, 'Which size: small, medium or large?').waitFor(WAIT);
    await expect(page.locator('parley-chat .msg.bot.interrupted').count()).resolves.toBeGreaterThanOrEqual(1);
    expect(openai.requestsTo('/v1/audio/transcriptions')).toHaveLength(1);
    expect(errors).toEqual([]);
  });

  it('transcribe: loads the live bundle on demand, streams the utterance to Amazon Transcribe with the grant, shows the words live, sends the final as input.text', async () => {
    const context = await browser!.newContext({ viewport: { width: 440, height: 680 } });
    contexts.push(context);
    const grant = {
      type: 'speech.access', region: 'us-east-1', languageCode: 'en-US', encoding: 'pcm', sampleRate: 16000,
      url: 'wss://transcribestreaming.us-east-1.amazonaws.com:8443/stream-transcription-websocket?X-Amz-Signature=unused',
      urlExpiresAt: Date.now() + 300_000,
      credentials: { accessKeyId: 'ASIAFAKEFORTESTS', secretAccessKey: 'fake-secret', sessionToken: 'fake-session-token' },
      expiresAt: Date.now() + 900_000,
    };
    // This server transcribes uploads; between it and the page, its sessions are made to say `transcribe`
    // and to hand out a grant, as a server with Transcribe access does.
    const clientSent: Array<{ type: string; [k: string]: unknown }> = [];
    const port = new URL(withStt.wsUrl).port;
    await context.routeWebSocket((url) => url.port === port, (ws: WebSocketRoute) => {
      const server = ws.connectToServer();
      ws.onMessage((m) => {
        clientSent.push(JSON.parse(String(m)));
        server.send(m);
      });
      server.onMessage((m) => {
        const parsed = JSON.parse(String(m)) as unknown;
        const events = (Array.isArray(parsed) ? parsed : [parsed]).flatMap((e: { type: string; speechInput?: unknown; code?: string }) =>
          e.type === 'session.started' && e.speechInput !== undefined
            ? [{ ...e, speechInput: { mode: 'transcribe', language: 'en-US', encoding: 'pcm', sampleRate: 16000 } }, grant]
            : [e],
        );
        ws.send(JSON.stringify(events));
      });
    });
    // Amazon Transcribe: gets the audio, answers a partial while it streams and the final when the speech is over.
    const speechMs = wav!.durationMs - wav!.onsetMs;
    const streams: Array<{ url: string; audioBytes: number }> = [];
    await context.routeWebSocket(/transcribestreaming\.us-east-1\.amazonaws\.com/, (ws: WebSocketRoute) => {
      const stream = { url: ws.url(), audioBytes: 0 };
      streams.push(stream);
      let partialSent = false;
      let finalSent = false;
      ws.onMessage((m) => {
        const audio = eventPayload(Buffer.from(m as Buffer));
        stream.audioBytes += audio.length;
        if (audio.length === 0 || finalSent) return; // an empty frame: the client ended the audio
        if (!partialSent && stream.audioBytes > 16_000) {
          partialSent = true;
          const items = ['I', 'would', 'like'].map((w, i) => ({ Content: w, Type: 'pronunciation', Stable: i < 2 }));
          ws.send(transcriptEvent([{ ResultId: 'r1', IsPartial: true, Alternatives: [{ Transcript: 'I would like', Items: items }] }]));
        }
        // Like Transcribe, the segment is finished a little after the speech: (pre-roll +) speech + 700 ms of
        // audio, after the widget's detector heard the pause (400 ms), so the audio must go on until then.
        if (stream.audioBytes / 32 >= PRE_ROLL_MS + speechMs + 700) {
          finalSent = true;
          ws.send(transcriptEvent([{ ResultId: 'r1', IsPartial: false, Alternatives: [{ Transcript: HEARD }] }]));
        }
      });
    });
    await context.addInitScript(AUDIO_TAP_SCRIPT);
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const scripts: string[] = [];
    page.on('request', (r) => void (r.resourceType() === 'script' && scripts.push(new URL(r.url()).pathname)));
    await page.goto(withStt.httpUrl);
    await voiceOn(page, WAIT);
    await page.waitForFunction(() => document.querySelector('parley-chat')?.getAttribute('data-voice-input') === 'on', undefined, WAIT);
    // Loaded once the session said `transcribe`, from next to the widget's own script.
    await expect.poll(() => scripts).toContain('/parley-transcribe.js');

    await page.locator('parley-chat #mic').click();
    await page.locator('parley-chat #heard', { hasText: 'I would like' }).waitFor(WAIT);
    await user(page, HEARD).waitFor(WAIT);
    await bot(page, 'Which size: small, medium or large?').waitFor(WAIT);
    await expect(page.locator('parley-chat #heard').isHidden()).resolves.toBe(true);

    // The stream was opened with the grant: its region, credentials (presigned), language, encoding and rate.
    expect(streams).toHaveLength(1);
    const url = new URL(streams[0]!.url);
    expect(url.host).toBe('transcribestreaming.us-east-1.amazonaws.com:8443');
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(/^ASIAFAKEFORTESTS\/\d{8}\/us-east-1\/transcribe\/aws4_request$/);
    expect(url.searchParams.get('X-Amz-Security-Token')).toBe('fake-session-token');
    expect(url.searchParams.get('language-code')).toBe('en-US');
    expect(url.searchParams.get('media-encoding')).toBe('pcm');
    expect(url.searchParams.get('sample-rate')).toBe('16000');
    // About the utterance, at 32 bytes a millisecond: the audio ended once the final had come.
    expect(streams[0]!.audioBytes / 32).toBeGreaterThan(speechMs - 150);
    expect(streams[0]!.audioBytes / 32).toBeLessThan(speechMs + 1500);

    // The server got the stable words early, then the final transcript as speech with its timings.
    const partials = clientSent.filter((m) => m.type === 'input.partial');
    const input = clientSent.find((m) => m.type === 'input.text' && m.source === 'speech');
    // (A final that overtakes the detector's pause would go out as a partial too: the stable text.)
    expect(partials[0]!.text).toBe('I would');
    expect(partials.every((p) => HEARD.startsWith(p.text as string))).toBe(true);
    expect(input).toMatchObject({ text: HEARD, turnId: partials[0]!.turnId, speech: { sinceFirstAudioMs: expect.any(Number), sinceFinalMs: expect.any(Number), audioMs: expect.any(Number) } });
    const speech = input!.speech as { sinceFirstAudioMs: number; audioMs: number };
    expect(speech.audioMs).toBe(Math.round(streams[0]!.audioBytes / 32));
    expect(speech.sinceFirstAudioMs).toBeGreaterThan(speechMs - 300);
    expect(clientSent.filter((m) => m.type.startsWith('input.audio'))).toEqual([]);
    expect(openai.requestsTo('/v1/audio/transcriptions')).toHaveLength(0);
    expect(errors).toEqual([]);
  });

  it('no recognizer: the widget shows no transcription, and speaking still stops a long answer (barge-in)', async () => {
    const { page, errors, sent } = await openPage(withoutStt);
    await voiceOn(page, WAIT);
    await botTalks(page, openai, WAIT);
    const bargeIn = nextBargeIn(page);
    await page.locator('parley-chat #mic').click();
    const barge = await bargeIn;
    expect(barge.playedMs).toBeGreaterThan(0);
    await page.waitForTimeout(1000);
    expect((await sound(page)).lastAt!).toBeLessThan(barge.at + 300);

    // Voice input is off: no live text, the microphone says it only stops the bot, nothing was uploaded.
    await expect(page.locator('parley-chat').getAttribute('data-voice-input')).resolves.toBe('off');
    await expect(page.locator('parley-chat #heard').isHidden()).resolves.toBe(true);
    await expect(page.locator('parley-chat #mic').getAttribute('aria-label')).resolves.toContain('speaking stops the bot');
    await page.waitForTimeout(2500); // the whole utterance has been spoken by now
    const types = (await sent()).map((m) => m.type);
    expect(types).toContain('response.cancel');
    expect(types.filter((t) => t.startsWith('input.audio') || t === 'input.partial')).toEqual([]);
    expect(openai.requestsTo('/v1/audio/transcriptions')).toHaveLength(0);
    // The user is told once, in plain words and not as an error.
    await expect(page.locator('parley-chat .msg.note', { hasText: 'Voice input is not available here' }).count()).resolves.toBe(1);
    await expect(page.locator('parley-chat .msg.note.error').count()).resolves.toBe(0);
    expect(errors).toEqual([]);
  });
});
