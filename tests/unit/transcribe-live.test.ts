import {
  StartStreamTranscriptionCommand,
  TranscribeStreamingClient,
  type StartStreamTranscriptionCommandInput,
  type TranscriptResultStream,
} from '@aws-sdk/client-transcribe-streaming';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ClientMessage, type ServerEventOf } from '../../lib/protocol/v1';
import { FINAL_WAIT_MS, liveTranscriber, type LiveTranscriberOptions } from '../../web/widget/transcribe-live';
import { LiveAudio } from '../../web/widget/utterance-audio';

/*
 * The widget's live transcription (web/widget/transcribe-live.ts) against a mocked Transcribe
 * streaming client: what the user sees while speaking, the input.partial and input.text it sends,
 * and what the stream is opened with.
 */

const transcribe = mockClient(TranscribeStreamingClient);

const GRANT: ServerEventOf<'speech.access'> = {
  type: 'speech.access',
  region: 'eu-west-1',
  languageCode: 'en-GB',
  encoding: 'pcm',
  sampleRate: 16000,
  url: 'wss://transcribestreaming.eu-west-1.amazonaws.com:8443/stream-transcription-websocket?X-Amz-Signature=x',
  urlExpiresAt: Date.now() + 300_000,
  credentials: { accessKeyId: 'ASIATEST', secretAccessKey: 'secret-test', sessionToken: 'token-test' },
  expiresAt: Date.now() + 900_000,
};
const SESSION = '6f1c7a34-5b8e-4f7e-9a52-0c1d2e3f4a5b';

type Item = { Content: string; Type?: 'pronunciation' | 'punctuation'; Stable: boolean };
const words = (stableCount: number, ...contents: string[]): Item[] =>
  contents.map((c, i) => ({ Content: c, Type: /^[.,?!]$/.test(c) ? 'punctuation' : 'pronunciation', Stable: i < stableCount }));
const partial = (id: string, transcript: string, items: Item[]): TranscriptResultStream => ({
  TranscriptEvent: { Transcript: { Results: [{ ResultId: id, IsPartial: true, Alternatives: [{ Transcript: transcript, Items: items }] }] } },
});
const final = (id: string, transcript: string): TranscriptResultStream => ({
  TranscriptEvent: { Transcript: { Results: [{ ResultId: id, IsPartial: false, Alternatives: [{ Transcript: transcript }] }] } },
});

/** One test's widget side: a clock it moves, what was sent and shown, and the callbacks. */
function harness() {
  let t = 0;
  const sent: ClientMessage[] = [];
  const shown: string[] = [];
  const finals: Array<{ turnId: string; text: string }> = [];
  const empty: Array<{ turnId: string; offline: boolean }> = [];
  const errors: Array<{ turnId: string; error: unknown }> = [];
  let uuids = 0;
  let connected = true;
  const options: LiveTranscriberOptions = {
    access: () => GRANT,
    send: (message) => {
      if (!connected) return false;
      // What the widget sends must be what the server accepts.
      sent.push(ClientMessage.parse(message));
      return true;
    },
    sessionId: () => SESSION,
    onText: (_turnId, text) => shown.push(text),
    onFinal: (turnId, text) => finals.push({ turnId, text }),
    onEmpty: (turnId, offline) => empty.push({ turnId, offline }),
    onError: (turnId, error) => errors.push({ turnId, error }),
    now: () => t,
    uuid: () => `00000000-0000-4000-8000-${String(++uuids).padStart(12, '0')}`,
  };
  return {
    options,
    sent,
    shown,
    finals,
    empty,
    errors,
    /** Moves the clock and fires the timers due by then. */
    advance(ms: number) {
      t += ms;
      vi.advanceTimersByTime(ms);
    },
    get now() {
      return t;
    },
    offline() {
      connected = false;
    },
  };
}

/**
 * An utterance of `chunks` chunks of 100 ms of 16 kHz PCM, its audio complete (the fake reads it all
 * before it answers); the user has paused unless `speaking`.
 */
function utterance(startedAt: number, chunks = 3, speaking = false): { audio: LiveAudio; startedAt: number } {
  const audio = new LiveAudio();
  for (let i = 0; i < chunks; i++) audio.push(new Uint8Array(3200).fill(i + 1));
  audio.setSpeaking(speaking);
  audio.end();
  return { audio, startedAt };
}

/** 100 ms of 16 kHz PCM. */
const chunk = () => new Uint8Array(3200);

/** The fake Transcribe: reads the whole audio stream (as the service does), then yields `events`, running `between` before each. */
function streams(events: TranscriptResultStream[], between: (index: number) => void = () => {}, audioSeen: Uint8Array[] = []) {
  return async (input: StartStreamTranscriptionCommandInput) => {
    for await (const event of input.AudioStream!) if (event.AudioEvent?.AudioChunk) audioSeen.push(event.AudioEvent.AudioChunk);
    async function* results(): AsyncGenerator<TranscriptResultStream> {
      for (let i = 0; i < events.length; i++) {
        between(i);
        yield events[i]!;
      }
    }
    return { TranscriptResultStream: results() };
  };
}

const ofType = <T extends ClientMessage['type']>(sent: ClientMessage[], type: T) =>
  sent.filter((m): m is Extract<ClientMessage, { type: T }> => m.type === type);

beforeEach(() => {
  transcribe.reset();
  vi.useFakeTimers();
});
afterEach(() => vi.useRealTimers());

describe('live transcription through Amazon Transcribe', () => {
  it('opens the stream with what the grant says: credentials, region, language, encoding and rate, stabilized partials', async () => {
    const h = harness();
    const audioSeen: Uint8Array[] = [];
    transcribe.on(StartStreamTranscriptionCommand).callsFake(streams([final('r1', 'Hello.')], () => {}, audioSeen));
    const u = utterance(0);
    await liveTranscriber(h.options).transcribe(u);

    expect(transcribe.commandCalls(StartStreamTranscriptionCommand)).toHaveLength(1);
    const call = transcribe.commandCalls(StartStreamTranscriptionCommand)[0]!;
    expect(call.args[0].input).toMatchObject({
      LanguageCode: 'en-GB',
      MediaEncoding: 'pcm',
      MediaSampleRateHertz: 16000,
      EnablePartialResultsStabilization: true,
      PartialResultsStability: 'medium',
    });
    const client = call.thisValue as TranscribeStreamingClient;
    await expect(client.config.region()).resolves.toBe('eu-west-1');
    await expect(client.config.credentials()).resolves.toMatchObject(GRANT.credentials);
    // The utterance's audio, as captured, is what was streamed.
    expect(audioSeen.map((c) => c[0])).toEqual([1, 2, 3]);
    expect(audioSeen.every((c) => c.length === 3200)).toBe(true);
  });

  it('shows the words as they come, sends the stable text as input.partial at most every 400 ms, and the final transcript as input.text with its timings', async () => {
    const h = harness();
    const events = [
      partial('r1', 'I', words(0, 'I')),
      partial('r1', 'I would', words(1, 'I', 'would')),
      partial('r1', 'I would like', words(2, 'I', 'would', 'like')),
      partial('r1', 'I would like a', words(3, 'I', 'would', 'like', 'a')),
      partial('r1', 'I would like a cap', words(4, 'I', 'would', 'like', 'a', 'cap')),
      final('r1', 'I would like a cappuccino.'),
    ];
    // When each result arrives (ms); the stream closes with the final.
    const at = [0, 100, 200, 300, 600, 700];
    transcribe.on(StartStreamTranscriptionCommand).callsFake(streams(events, (i) => h.advance(i === 0 ? 0 : at[i]! - at[i - 1]!)));
    const run = liveTranscriber(h.options).transcribe(utterance(-500));
    await vi.waitFor(() => expect(h.finals).toHaveLength(1));
    await run;

    expect(h.shown).toEqual(['I', 'I would', 'I would like', 'I would like a', 'I would like a cap', 'I would like a cappuccino.']);
    const partials = ofType(h.sent, 'input.partial');
    // "I" at 100 ms; "I would" (200 ms) and "I would like" (300 ms) wait out the 400 ms and only the newer one goes,
    // once due; "I would like a" (stable at 600 ms) is held for the next 400 ms, and the final at 700 ms overtakes it.
    expect(partials.map((p) => p.text)).toEqual(['I', 'I would like']);
    const input = ofType(h.sent, 'input.text');
    expect(input).toHaveLength(1);
    const turnId = input[0]!.turnId;
    expect(partials.every((p) => p.turnId === turnId && p.sessionId === SESSION)).toBe(true);
    expect(input[0]).toEqual({
      type: 'input.text',
      turnId,
      sessionId: SESSION,
      text: 'I would like a cappuccino.',
      source: 'speech',
      // First audio at -500, sent at 700: 1200 ms; the final arrived at 700; 3 × 100 ms of audio streamed.
      speech: { sinceFirstAudioMs: 1200, sinceFinalMs: 0, audioMs: 300 },
    });
    expect(h.finals).toEqual([{ turnId, text: 'I would like a cappuccino.' }]);
    // Nothing after the final: the held partial was dropped.
    h.advance(2000);
    expect(h.sent.at(-1)!.type).toBe('input.text');
  });

  it('joins the final segments of a long utterance, and times sinceFinalMs from the last one', async () => {
    const h = harness();
    const events = [final('r1', 'One espresso.'), partial('r2', 'And a', words(1, 'And', 'a')), final('r2', 'And a croissant.')];
    const u = utterance(0, 3, true);
    transcribe.on(StartStreamTranscriptionCommand).callsFake(
      streams(events, (i) => {
        h.advance(100);
        if (i === 2) u.audio.setSpeaking(false);
      }),
    );
    const run = liveTranscriber(h.options).transcribe(u);
    await vi.waitFor(() => expect(h.finals).toHaveLength(1));
    await run;
    // The stable text carries the finished segment before the partial's stable words.
    expect(ofType(h.sent, 'input.partial').map((p) => p.text)).toEqual(['One espresso.']);
    expect(h.shown).toEqual(['One espresso.', 'One espresso. And a', 'One espresso. And a croissant.']);
    expect(ofType(h.sent, 'input.text')[0]).toMatchObject({ text: 'One espresso. And a croissant.', speech: { sinceFirstAudioMs: 300, sinceFinalMs: 0 } });
  });

  it('the audio goes on through the pause until Transcribe has finished the last segment, then ends (what arrives on a closing socket is lost)', async () => {
    const h = harness();
    const audio = new LiveAudio();
    audio.push(chunk());
    let streamed = 0;
    transcribe.on(StartStreamTranscriptionCommand).callsFake(async (input: StartStreamTranscriptionCommandInput) => {
      const reader = input.AudioStream![Symbol.asyncIterator]();
      async function* results(): AsyncGenerator<TranscriptResultStream> {
        await reader.next();
        streamed += 1;
        yield partial('r1', 'Two', words(0, 'Two'));
        // The user pauses; the audio still flows while Transcribe finishes the segment.
        audio.setSpeaking(false);
        audio.push(chunk());
        await reader.next();
        streamed += 1;
        expect(audio.done).toBe(false);
        yield final('r1', 'Two lattes.');
        // The transcriber ends the audio as soon as it has the final: the reader sees the end.
        expect(audio.done).toBe(true);
        expect((await reader.next()).done).toBe(true);
      }
      return { TranscriptResultStream: results() };
    });
    await liveTranscriber(h.options).transcribe({ audio, startedAt: 0 });
    expect(streamed).toBe(2);
    expect(ofType(h.sent, 'input.text').map((m) => m.text)).toEqual(['Two lattes.']);
    // The final is not sent twice, as a partial first.
    expect(ofType(h.sent, 'input.partial')).toEqual([]);
  });

  it('a final while the user still speaks does not end the utterance; speaking on after a pause keeps it open', async () => {
    const h = harness();
    const audio = new LiveAudio();
    transcribe.on(StartStreamTranscriptionCommand).callsFake(async (input: StartStreamTranscriptionCommandInput) => {
      const reader = input.AudioStream![Symbol.asyncIterator]();
      async function* results(): AsyncGenerator<TranscriptResultStream> {
        audio.push(chunk());
        await reader.next();
        yield final('r1', 'One espresso.');
        expect(audio.done).toBe(false);
        yield partial('r2', 'And a', words(1, 'And', 'a'));
        // A pause while a segment is unfinished waits for it; speaking again before the wait ran out goes on.
        audio.setSpeaking(false);
        h.advance(FINAL_WAIT_MS - 100);
        audio.setSpeaking(true);
        h.advance(FINAL_WAIT_MS);
        expect(audio.done).toBe(false);
        audio.setSpeaking(false);
        yield final('r2', 'And a croissant.');
        expect(audio.done).toBe(true);
      }
      return { TranscriptResultStream: results() };
    });
    await liveTranscriber(h.options).transcribe({ audio, startedAt: 0 });
    // The held stable text went out while the user paused, 400 ms after the last one.
    expect(ofType(h.sent, 'input.partial').map((m) => m.text)).toEqual(['One espresso.', 'One espresso. And']);
    expect(ofType(h.sent, 'input.text').map((m) => m.text)).toEqual(['One espresso. And a croissant.']);
  });

  it(`no final within ${FINAL_WAIT_MS} ms of the pause: the words heard so far are sent`, async () => {
    const h = harness();
    const audio = new LiveAudio();
    transcribe.on(StartStreamTranscriptionCommand).callsFake(async (input: StartStreamTranscriptionCommandInput) => {
      const reader = input.AudioStream![Symbol.asyncIterator]();
      async function* results(): AsyncGenerator<TranscriptResultStream> {
        audio.push(chunk());
        await reader.next();
        yield partial('r1', 'A small mocha', words(2, 'A', 'small', 'mocha'));
        audio.setSpeaking(false);
        h.advance(FINAL_WAIT_MS - 1);
        expect(audio.done).toBe(false);
        h.advance(1);
        expect(audio.done).toBe(true);
        // The SDK closes the socket when the audio ends: the stream ends without a final.
      }
      return { TranscriptResultStream: results() };
    });
    await liveTranscriber(h.options).transcribe({ audio, startedAt: 0 });
    expect(ofType(h.sent, 'input.text').map((m) => m.text)).toEqual(['A small mocha']);
  });

  it('an empty final transcript sends nothing and says so (listen again)', async () => {
    const h = harness();
    transcribe.on(StartStreamTranscriptionCommand).callsFake(streams([partial('r1', '', []), final('r1', '')]));
    await liveTranscriber(h.options).transcribe(utterance(0));
    expect(h.sent).toEqual([]);
    expect(h.finals).toEqual([]);
    expect(h.empty).toEqual([{ turnId: expect.any(String), offline: false }]);
    expect(h.errors).toEqual([]);
  });

  it('a stream that ends without any final result sends nothing', async () => {
    const h = harness();
    transcribe.on(StartStreamTranscriptionCommand).callsFake(streams([partial('r1', 'Hm', words(1, 'Hm'))]));
    await liveTranscriber(h.options).transcribe(utterance(0));
    expect(ofType(h.sent, 'input.text')).toEqual([]);
    expect(h.empty).toHaveLength(1);
  });

  it('an SDK error is reported, nothing is sent, and the next utterance starts afresh with a new turn', async () => {
    const h = harness();
    const failure = Object.assign(new Error('The security token included in the request is expired'), { name: 'ExpiredTokenException' });
    transcribe
      .on(StartStreamTranscriptionCommand)
      .rejectsOnce(failure)
      .callsFake(streams([final('r1', 'A flat white, please.')]));
    const live = liveTranscriber(h.options);

    await live.transcribe(utterance(0));
    expect(h.errors).toEqual([{ turnId: expect.any(String), error: failure }]);
    expect(h.sent).toEqual([]);

    await live.transcribe(utterance(0));
    const input = ofType(h.sent, 'input.text');
    expect(input).toHaveLength(1);
    expect(input[0]!.text).toBe('A flat white, please.');
    expect(input[0]!.turnId).not.toBe(h.errors[0]!.turnId);
    expect(transcribe.commandCalls(StartStreamTranscriptionCommand)).toHaveLength(2);
  });

  it('an error inside the result stream (an exception event) is reported; the partial it was holding never goes', async () => {
    const h = harness();
    const events: TranscriptResultStream[] = [
      partial('r1', 'I would', words(1, 'I', 'would')),
      partial('r1', 'I would like', words(2, 'I', 'would', 'like')),
      { BadRequestException: { name: 'BadRequestException', message: 'audio too fast' } as never },
    ];
    transcribe.on(StartStreamTranscriptionCommand).callsFake(streams(events, () => h.advance(50)));
    await liveTranscriber(h.options).transcribe(utterance(0));
    expect(h.errors).toHaveLength(1);
    expect(ofType(h.sent, 'input.partial').map((p) => p.text)).toEqual(['I']);
    h.advance(1000);
    expect(ofType(h.sent, 'input.partial').map((p) => p.text)).toEqual(['I']);
    expect(ofType(h.sent, 'input.text')).toEqual([]);
  });

  it('without a grant (none yet, or renewal failed) nothing is opened and the utterance is reported failed', async () => {
    const h = harness();
    await liveTranscriber({ ...h.options, access: () => undefined }).transcribe(utterance(0));
    expect(transcribe.commandCalls(StartStreamTranscriptionCommand)).toHaveLength(0);
    expect(h.errors).toHaveLength(1);
  });

  it('a connection down when the final comes: nothing is lost silently (offline is reported)', async () => {
    const h = harness();
    transcribe.on(StartStreamTranscriptionCommand).callsFake(streams([final('r1', 'Large, please.')]));
    h.offline();
    await liveTranscriber(h.options).transcribe(utterance(0));
    expect(h.finals).toEqual([]);
    expect(h.empty).toEqual([{ turnId: expect.any(String), offline: true }]);
  });
});
