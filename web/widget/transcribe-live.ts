import { StartStreamTranscriptionCommand, TranscribeStreamingClient, type AudioStream } from '@aws-sdk/client-transcribe-streaming';
import type { ClientMessage, ServerEventOf } from '../../lib/protocol/v1';
import { pcmDurationMs } from '../../lib/speech/pcm';
import { LiveTranscript } from './live-transcript';
import type { LiveAudio } from './utterance-audio';
import { clampMs } from './utterance-upload';

/*
 * Live transcription (speechInput mode `transcribe`): each utterance is streamed from the browser
 * to Amazon Transcribe with the short-lived credentials of the session's `speech.access`, its
 * partial text shown as it grows, its stable part sent early as `input.partial`, and its final
 * transcript sent as `input.text { source: "speech" }`.
 *
 * One stream per utterance, from the detector's start (with the pre-roll) until Transcribe has
 * made the utterance's final segment after the detector heard the user pause: Transcribe bills the
 * audio streamed, so the silence between utterances is never sent. The audio cannot simply end at
 * the pause: the SDK's WebSocket handler closes the socket as soon as its audio ends, and a browser
 * drops whatever arrives on a closing socket, so a final transcript asked for by ending the audio
 * would be lost. If no final comes within FINAL_WAIT_MS of the pause, the words heard so far are
 * taken. A long utterance may come back as several final segments; they are joined.
 *
 * This module and the AWS SDK form the lazily loaded bundle (web/widget/transcribe-entry.ts):
 * the SDK is about three times the size of the rest of the widget.
 */

export type SpeechAccess = ServerEventOf<'speech.access'>;

/** After the user's pause, how long the final transcript may take before the words heard so far are taken. */
export const FINAL_WAIT_MS = 2000;

export interface LiveUtterance {
  /** The utterance's 16-bit PCM at the grant's rate, pre-roll first, and whether the user is speaking; the transcriber ends it. */
  audio: LiveAudio;
  /** When the utterance's first audio was heard, on the `now` clock. */
  startedAt: number;
}

export interface LiveTranscriberOptions {
  /** The session's current grant (undefined until the first speech.access, or once renewal failed). */
  access: () => SpeechAccess | undefined;
  /** Sends on the session's connection; false when it could not go. */
  send: (message: ClientMessage) => boolean;
  sessionId: () => string | undefined;
  /** Everything heard of the utterance so far, as it grows. */
  onText: (turnId: string, text: string) => void;
  /** The final transcript went out as input.text. */
  onFinal: (turnId: string, text: string) => void;
  /** Nothing was sent: nothing was recognized, or (`offline`) the connection was down. Listen again. */
  onEmpty: (turnId: string, offline: boolean) => void;
  /** The stream failed: nothing was sent; the next utterance starts afresh. */
  onError: (turnId: string, error: unknown) => void;
  /** Milliseconds on a monotonic clock; default performance.now. */
  now?: () => number;
  uuid?: () => string;
  /** At most one input.partial per this many ms; default 400. */
  partialIntervalMs?: number;
}

export interface LiveTranscriber {
  /** Streams one utterance; resolves once it is sent, found empty or failed (never rejects). */
  transcribe(utterance: LiveUtterance): Promise<void>;
}

/** The errors Transcribe reports inside the result stream rather than as a failed request. */
const STREAM_ERRORS = ['BadRequestException', 'LimitExceededException', 'InternalFailureException', 'ConflictException', 'ServiceUnavailableException'] as const;

export function liveTranscriber(options: LiveTranscriberOptions): LiveTranscriber {
  const now = options.now ?? (() => performance.now());
  const uuid = options.uuid ?? (() => crypto.randomUUID());
  const interval = options.partialIntervalMs ?? 400;

  return {
    async transcribe(utterance) {
      const turnId = uuid();
      const grant = options.access();
      if (!grant) {
        options.onError(turnId, new Error('no speech.access for this session yet'));
        return;
      }
      const transcript = new LiveTranscript();
      let bytes = 0;
      let finalAt: number | undefined;
      let sentPartial = '';
      let partialAt = Number.NEGATIVE_INFINITY;
      let pending: ReturnType<typeof setTimeout> | undefined;
      /** The utterance is complete (the audio was ended, the stream is over): nothing more is sent early. */
      let complete = false;
      let timedOut = false;
      let waiting: ReturnType<typeof setTimeout> | undefined;
      const audio = utterance.audio;
      const stop = () => {
        complete = true;
        clearTimeout(waiting);
        clearTimeout(pending);
        audio.end();
      };
      // Done when the user pauses and Transcribe has finished the last segment; a pause without
      // that final waits FINAL_WAIT_MS, and speaking again waits on.
      const settle = () => {
        if (complete) return;
        if (audio.speaking) {
          clearTimeout(waiting);
          waiting = undefined;
          return;
        }
        if (transcript.settled) return stop();
        waiting ??= setTimeout(() => {
          timedOut = true;
          stop();
        }, FINAL_WAIT_MS);
      };
      audio.onSpeakingChange(settle);

      const sendPartial = () => {
        pending = undefined;
        const text = transcript.stable;
        if (complete || !text.trim() || text === sentPartial) return;
        sentPartial = text;
        partialAt = now();
        const sessionId = options.sessionId();
        options.send({ type: 'input.partial', turnId, ...(sessionId ? { sessionId } : {}), text });
      };
      // At most one partial per interval, and the newest stable text goes out when the interval
      // has passed, so the server never acts on an old one for long.
      const partialChanged = () => {
        if (pending !== undefined || transcript.stable === sentPartial || !transcript.stable) return;
        const wait = partialAt + interval - now();
        if (wait <= 0) sendPartial();
        else pending = setTimeout(sendPartial, wait);
      };

      async function* audioStream(): AsyncGenerator<AudioStream> {
        for await (const chunk of audio) {
          bytes += chunk.length;
          yield { AudioEvent: { AudioChunk: chunk } };
        }
      }

      const client = new TranscribeStreamingClient({ region: grant.region, credentials: grant.credentials });
      settle();
      try {
        const response = await client.send(
          new StartStreamTranscriptionCommand({
            LanguageCode: grant.languageCode as never,
            MediaEncoding: grant.encoding as never,
            MediaSampleRateHertz: grant.sampleRate,
            EnablePartialResultsStabilization: true,
            PartialResultsStability: 'medium',
            AudioStream: audioStream(),
          }),
        );
        for await (const event of response.TranscriptResultStream ?? []) {
          const failure = STREAM_ERRORS.map((key) => (event as unknown as Record<string, unknown>)[key]).find((e) => e !== undefined);
          if (failure) throw failure;
          for (const result of event.TranscriptEvent?.Transcript?.Results ?? []) {
            transcript.apply(result);
            if (!result.IsPartial) finalAt = now();
            options.onText(turnId, transcript.shown);
            settle();
            partialChanged();
          }
        }
      } catch (error) {
        options.onError(turnId, error);
        return;
      } finally {
        stop();
        client.destroy();
      }

      // No final after the pause: what was heard is better than asking the user to say it again.
      const text = (timedOut ? transcript.shown : transcript.final).slice(0, 4000);
      const sessionId = options.sessionId();
      const sendAt = now();
      if (text.trim() === '') {
        options.onEmpty(turnId, false);
        return;
      }
      const sent = options.send({
          type: 'input.text',
          turnId,
          ...(sessionId ? { sessionId } : {}),
          text,
          source: 'speech',
          speech: {
            sinceFirstAudioMs: clampMs(sendAt - utterance.startedAt),
            sinceFinalMs: clampMs(sendAt - (finalAt ?? sendAt)),
            audioMs: clampMs(pcmDurationMs(bytes, grant.sampleRate)),
          },
        });
      if (sent) options.onFinal(turnId, text);
      else options.onEmpty(turnId, true);
    },
  };
}
