import { LIMITS, type ClientMessage } from '../../lib/protocol/v1';
import { base64 } from './pcm';

/*
 * The self-hostable path: one finished utterance as the messages that carry it to the server
 * (`input.audio` pieces, then `input.audio.commit`). Pure: the caller sends them.
 */

/** 3 bytes of audio per 4 base64 characters: the largest piece whose base64 fits a chunk. */
export const CHUNK_BYTES = (LIMITS.audioChunkChars / 4) * 3;

/** The most audio one utterance may carry, whole samples and within the chunk count. */
export const MAX_UTTERANCE_BYTES = Math.min(LIMITS.utteranceBytes, LIMITS.audioChunks * CHUNK_BYTES) & ~1;

export interface Utterance {
  turnId: string;
  sessionId: string | undefined;
  /** 16-bit little-endian mono PCM at the session's rate. */
  pcm: Uint8Array;
  /** Milliseconds since the utterance's first audio, as the commit is sent. */
  sinceFirstAudioMs: number;
}

/**
 * The chunks and the commit, in order; none for an utterance without a whole sample. Audio beyond
 * MAX_UTTERANCE_BYTES is cut (the recorder stops before, this is the last guard): a longer message
 * would be refused as a whole.
 */
export function uploadMessages(utterance: Utterance): ClientMessage[] {
  const { turnId, sessionId } = utterance;
  const pcm = utterance.pcm.subarray(0, Math.min(utterance.pcm.length, MAX_UTTERANCE_BYTES) & ~1);
  if (pcm.length === 0) return [];
  const messages: ClientMessage[] = [];
  for (let offset = 0, seq = 0; offset < pcm.length; offset += CHUNK_BYTES, seq++) {
    messages.push({ type: 'input.audio', turnId, seq, audio: base64(pcm.subarray(offset, offset + CHUNK_BYTES)) });
  }
  messages.push({
    type: 'input.audio.commit',
    turnId,
    ...(sessionId ? { sessionId } : {}),
    chunks: messages.length,
    speech: { sinceFirstAudioMs: clampMs(utterance.sinceFirstAudioMs), sinceFinalMs: 0 },
  });
  return messages;
}

/**
 * The longest duration the protocol accepts in SpeechTimings: lib/protocol/v1.ts's `ms` schema
 * (`z.lte(600_000)`), which exports no constant for it. Keep the two equal.
 */
export const MAX_TIMING_MS = 600_000;

/** What the protocol accepts as a duration: whole, not negative, at most MAX_TIMING_MS (10 minutes). */
export const clampMs = (ms: number): number => Math.min(MAX_TIMING_MS, Math.max(0, Math.round(ms)));
