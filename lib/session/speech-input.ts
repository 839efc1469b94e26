/*
 * Voice input (issue 9): how a session's speech becomes text, the Transcribe access a live client
 * streams with, and the uploaded utterances this server transcribes itself.
 *
 * Amazon Transcribe streaming must be fed at real-time pace, so a per-turn Lambda cannot transcribe
 * a finished recording quickly: a client with live transcription streams its microphone to
 * Transcribe itself (`speech.access`) and sends the final transcript as `input.text`. The
 * self-hostable path takes a finished utterance (`input.audio` chunks, `input.audio.commit`) to an
 * OpenAI-compatible recognizer. Seed 000's rules hold on both: an empty transcript listens again
 * without a turn, and a failed transcription is reported and leaves nothing behind.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ParleyError } from '../errors';
import { emptyCheckpoint } from '../checkpoint/schema';
import { sessionLanguage } from '../runner/run-turn';
import type { ClientMessage, ServerEvent, SpeechInput, SpeechInputRequest, SpeechTimings } from '../protocol/v1';
import { LIMITS } from '../protocol/v1';
import { recognizerLocale } from '../speech/language';
import { SttError, type TranscriptionFormat } from '../speech/stt/port';
import { concatBytes } from '../speech/pcm';
import { describe, type Ctx, type SpokenInput, type TurnDeps } from './context';
import { textTurn } from './text-turn';

/**
 * What a session asking for voice input gets: live transcription when this server can vend
 * Transcribe access (PCM only: what a browser captures), else uploads when it has a recognizer,
 * else null (`stt.unavailable`).
 */
export function negotiateSpeechInput(deps: TurnDeps, asked: SpeechInputRequest, language: string): SpeechInput | null {
  const stt = deps.stt;
  const locale = recognizerLocale(language);
  if (stt?.access && asked.encoding === 'pcm') return { mode: 'transcribe', language: locale, encoding: 'pcm', sampleRate: asked.sampleRate };
  if (stt?.transcriber) return { mode: 'upload', language: locale, encoding: asked.encoding, sampleRate: asked.sampleRate };
  return null;
}

export const sttUnavailable = (): ServerEvent => ({
  type: 'error',
  code: 'stt.unavailable',
  message: 'this server has no speech recognizer: voice input is off for this session (typed input and barge-in still work)',
});

/** A fresh `speech.access` for a live-transcription session; `stt.unavailable` when STS refuses or is unreachable. */
export async function speechAccess(ctx: Ctx, sessionId: string, input: SpeechInput): Promise<ServerEvent> {
  try {
    // A `transcribe` session was negotiated on this host's access (negotiateSpeechInput).
    const grant = await ctx.deps.stt!.access!.issue({ sessionId, languageCode: input.language, sampleRate: input.sampleRate, encoding: input.encoding });
    return { type: 'speech.access', ...grant };
  } catch (err) {
    ctx.log.warn('could not issue Transcribe access', { error: describe(err) });
    throw new ParleyError('stt.unavailable', 'live transcription is unavailable right now; try again later');
  }
}

/** `speech.renew`: another access before the last one expires. */
export async function renewAccess(ctx: Ctx, sessionId: string): Promise<void> {
  await ctx.sender.send(await speechAccess(ctx, sessionId, speechInputOf(ctx, undefined, 'transcribe')));
}

/** `input.audio`: one chunk of an utterance, kept until its commit. */
export async function storeAudioChunk(ctx: Ctx, sessionId: string, message: Extract<ClientMessage, { type: 'input.audio' }>): Promise<void> {
  speechInputOf(ctx, message.turnId, 'upload');
  const audio = Buffer.from(message.audio, 'base64');
  await ctx.deps.stt!.utterances.put(sessionId, message.turnId, message.seq, audio);
}

/**
 * `input.audio.commit`: the utterance is whole. Its chunks are read and checked, transcribed, and
 * the transcript (`input.transcript`) runs as the turn's input; an empty one ends there.
 */
export async function commitUtterance(ctx: Ctx, sessionId: string, message: Extract<ClientMessage, { type: 'input.audio.commit' }>): Promise<void> {
  const { deps } = ctx;
  const { turnId } = message;
  const input = speechInputOf(ctx, turnId, 'upload');
  // An `upload` session was negotiated on this host's recognizer (negotiateSpeechInput).
  const stt = deps.stt!;
  const transcriber = stt.transcriber!;
  const { chunks, missing } = await gatherChunks(ctx, sessionId, turnId, message.chunks);
  if (missing.length) {
    // A broken utterance is not kept for a second try: the client sends the next one whole.
    await stt.utterances.discard(sessionId, turnId, chunks.keys()).catch(() => undefined);
    throw new ParleyError('protocol.invalid_message', `the utterance has ${message.chunks} chunks but ${missing.length} never arrived (seq ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''})`, { turnId });
  }
  const audio = concatBytes(Array.from({ length: message.chunks }, (_, seq) => chunks.get(seq)!));
  // Chunks are not needed once read, whatever the transcription does: the next try is a new utterance.
  const discard = stt.utterances.discard(sessionId, turnId, chunks.keys()).catch((err: unknown) => ctx.log.info('utterance chunks left to their TTL', { error: describe(err) }));
  try {
    if (audio.length > LIMITS.utteranceBytes) throw new ParleyError('protocol.too_large', `the utterance is ${audio.length} bytes; the limit is ${LIMITS.utteranceBytes}`, { turnId });
    if (input.encoding === 'pcm' && audio.length % 2 !== 0) throw new ParleyError('protocol.invalid_message', '16-bit PCM has an even number of bytes', { turnId });
    const format: TranscriptionFormat = input.encoding === 'pcm' ? { encoding: 'pcm', sampleRate: input.sampleRate } : { encoding: 'ogg-opus' };
    let transcript;
    try {
      transcript = await transcriber.transcribe({ audio, format, language: input.language, deadline: deps.clock.nowMs() + TRANSCRIPTION_BUDGET_MS });
    } catch (err) {
      if (!(err instanceof SttError)) throw err;
      ctx.log.warn('transcription failed', { turnId, kind: err.kind, error: describe(err) });
      throw new ParleyError('stt.failed', err.kind === 'stt.timeout' ? 'the speech recognizer did not answer in time; please say it again' : 'the speech recognizer failed on this utterance; please say it again', { turnId });
    }
    const transcribedAt = deps.clock.monotonicMs();
    await ctx.sender.send({ type: 'input.transcript', turnId, text: transcript.text });
    if (!transcript.text.trim()) {
      // Seed 000: nothing was recognized; the client listens again. No turn, no LLM call.
      ctx.log.info('empty transcript: listening again', { turnId });
      return;
    }
    const timings = message.speech;
    await textTurn(
      ctx,
      sessionId,
      { turnId, text: transcript.text.slice(0, 4000) },
      {
        stt: { provider: transcriber.provider, audioMs: Math.round(transcript.seconds * 1000) },
        stages: { leadMs: timings?.sinceFirstAudioMs ?? 0, finalMs: transcribedAt - ctx.receivedAtMs },
      },
    );
  } finally {
    await discard;
  }
}

/**
 * A live transcript (`input.text` with `source: "speech"`): Transcribe's audio seconds for the
 * ledger and the stages the client measured back from its send.
 */
export function liveSpeech(timings: SpeechTimings | undefined): SpokenInput {
  const sinceFirstAudioMs = timings?.sinceFirstAudioMs ?? 0;
  const sinceFinalMs = timings?.sinceFinalMs ?? 0;
  return {
    stt: { provider: 'transcribe', audioMs: timings?.audioMs ?? Math.max(0, sinceFirstAudioMs - sinceFinalMs) },
    stages: { leadMs: sinceFirstAudioMs, finalMs: -sinceFinalMs },
  };
}

/**
 * The utterance's chunks. Every message is its own invocation, and API Gateway runs them side by
 * side: the commit can overtake the last chunks, so it waits a little for any still on their way.
 */
async function gatherChunks(ctx: Ctx, sessionId: string, turnId: string, count: number): Promise<{ chunks: Map<number, Uint8Array>; missing: number[] }> {
  const { deps } = ctx;
  const giveUpAt = deps.clock.monotonicMs() + LATE_CHUNK_WAIT_MS;
  for (;;) {
    const chunks = await deps.stt!.utterances.chunks(sessionId, turnId);
    const missing: number[] = [];
    for (let seq = 0; seq < count; seq++) if (!chunks.has(seq)) missing.push(seq);
    if (!missing.length || deps.clock.monotonicMs() >= giveUpAt) return { chunks, missing };
    await sleep(LATE_CHUNK_POLL_MS);
  }
}

const LATE_CHUNK_WAIT_MS = 3000;
const LATE_CHUNK_POLL_MS = 100;

/** Uploads wait at most this long for the recognizer (retries included). */
const TRANSCRIPTION_BUDGET_MS = 15_000;

/**
 * How this connection's session takes speech; `protocol.order` when it did not ask for voice input
 * at session.start, or when the message is for the other mode (`mode`).
 */
export function speechInputOf(ctx: Ctx, turnId?: string, mode?: SpeechInput['mode']): SpeechInput {
  const input = ctx.connection.speechInput;
  const refuse = (message: string) => new ParleyError('protocol.order', message, turnId ? { turnId } : {});
  if (!input) throw refuse('this session did not ask for voice input: send session.start with speechInput first');
  if (mode && input.mode !== mode) {
    throw refuse(input.mode === 'transcribe' ? 'this session transcribes live: send the final transcript as input.text' : 'this session uploads its utterances (input.audio): there is no live transcription access to renew');
  }
  return input;
}

/** The language the recognizer listens for: the session's, or the one a new session asked for in its metadata (if the map speaks it). */
export function speechLanguage(deps: TurnDeps, metadata: Record<string, unknown> | undefined, sessionLanguageSoFar: string | undefined): string {
  return sessionLanguageSoFar ?? sessionLanguage(deps.map, { kind: 'start', ...(metadata ? { metadata } : {}) }, emptyCheckpoint());
}
