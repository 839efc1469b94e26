import type OpenAI from 'openai';
import type { FunctionEnv } from '../../config/env';
import { ParleyError } from '../../errors';
import { silentLog, type Log } from '../../observability/log';
import { traceCall } from '../../observability/tracing';
import { primaryLanguage } from '../language';
import { oggOpusDurationMs, pcmDurationMs } from '../pcm';
import { pcmToWav } from '../wav';
import { SttError, type SttErrorKind, type Transcriber, type Transcript, type TranscriptionRequest } from './port';
import { classifySdkError, giveUp as giveUpWith, MIN_ATTEMPT_MS, nextAttempt, sleep, type ProviderFailure } from '../../host/retry';

export interface OpenAiTranscriberOptions {
  /** Any OpenAI-compatible server, e.g. 'http://127.0.0.1:8000/v1'. Default https://api.openai.com/v1 (never OPENAI_BASE_URL: that is the LLM's). */
  baseURL?: string;
  /** Sent as `Authorization: Bearer <key>`; without one no Authorization header is sent (self-hosted servers). */
  apiKey?: string;
  /** Default 'whisper-1' (gpt-4o-mini-transcribe and gpt-4o-transcribe take the same request). */
  model?: string;
  fetch?: typeof fetch;
  /** Attempts per transcribe() call, the first included. Default 3. */
  maxAttempts?: number;
  /** Cap of one attempt, request to parsed answer, within the time left until the deadline. Default 15 000 ms. */
  attemptTimeoutMs?: number;
  /** The deadline of a request that names none: this long after the call. Default 30 000 ms. */
  budgetMs?: number;
  /** Backoff before retry n (n = 1, 2, …) is backoffBaseMs * 2^(n-1), jittered to 50–100 %. Default 200 ms. */
  backoffBaseMs?: number;
  log?: Log;
  /** Clock of the deadline (epoch ms). Default Date.now. */
  now?: () => number;
}

export const DEFAULT_STT_MODEL = 'whisper-1';
const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
const DEFAULT_ATTEMPT_TIMEOUT_MS = 15_000;
const DEFAULT_BUDGET_MS = 30_000;
const DEFAULT_BACKOFF_BASE_MS = 200;

type Sdk = typeof import('openai');

/** What went wrong in one attempt. */
type Failure = ProviderFailure<SttErrorKind>;

/**
 * Transcriber on the official `openai` SDK (`audio.transcriptions.create`), for OpenAI and any
 * OpenAI-compatible speech recognizer (a self-hosted Whisper server, …).
 *
 * - The SDK is imported on the first call, not at cold start (like the LLM's, lib/llm/configure.ts).
 * - PCM is sent as `utterance.wav` (audio/wav, a 44-byte header added), Ogg Opus as
 *   `utterance.ogg` (audio/ogg); `language` as ISO-639-1 (`en-US` -> `en`); response_format json.
 * - `seconds` is the audio's duration: from the byte count for PCM, from the last Ogg page's granule
 *   position for Ogg Opus, else from the answer's `usage` (type duration) when the server sends one.
 * - The text is trimmed: '' is an answer (nothing was said), not an error. Empty audio gives
 *   `{ text: '', seconds: 0 }` without a request.
 * - Retries itself (the SDK's maxRetries is 0, so the deadline governs): 408/429/5xx, lost
 *   connections and timeouts, with jittered exponential backoff honoring Retry-After while the
 *   deadline allows; any other answer (400, 401, 413, …) fails at once. A watchdog aborts an attempt
 *   that has not produced its parsed answer within min(attemptTimeoutMs, time left).
 * - Error messages never carry the API key (nor anything shaped like an OpenAI key).
 * - One `stt.transcribe` span per call (provider, model, format, bytes, audio seconds, attempts;
 *   never the text).
 */
export function openAiTranscriber(options: OpenAiTranscriberOptions = {}): Transcriber {
  const log = options.log ?? silentLog;
  const now = options.now ?? Date.now;
  const model = options.model ?? DEFAULT_STT_MODEL;
  const maxAttempts = Math.max(1, options.maxAttempts ?? 3);
  const attemptCap = options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
  const budget = options.budgetMs ?? DEFAULT_BUDGET_MS;
  const backoffBase = options.backoffBaseMs ?? DEFAULT_BACKOFF_BASE_MS;
  const redact = redactor(options.apiKey);
  let loaded: Promise<{ sdk: Sdk; client: OpenAI }> | undefined;

  const load = () =>
    (loaded ??= import('openai').then((sdk) => ({
      sdk,
      client: new sdk.OpenAI({
        // An explicit key, so the SDK never reads OPENAI_API_KEY itself (that key is not for a self-hosted server).
        apiKey: options.apiKey ?? 'unused',
        baseURL: options.baseURL ?? DEFAULT_BASE_URL,
        ...(options.apiKey === undefined ? { defaultHeaders: { authorization: null } } : {}),
        ...(options.fetch ? { fetch: options.fetch } : {}),
        maxRetries: 0,
        logLevel: 'off',
      }),
    })));

  // OpenAI's own service bills per minute; a self-hosted recognizer is priced apart (PARLEY_PRICES stt.byProvider).
  const provider = new URL(options.baseURL ?? DEFAULT_BASE_URL).hostname === 'api.openai.com' ? 'openai' : 'self-hosted';

  async function transcribe(request: TranscriptionRequest): Promise<Transcript> {
    const deadline = request.deadline ?? now() + budget;
    const upload = prepare(request);
    // ISO-639-1, what OpenAI takes; '' (none sent) when the request names no language.
    const language = primaryLanguage(request.language);
    const attributes = {
      'parley.stt.provider': provider,
      'parley.stt.model': model,
      'parley.stt.format': request.format.encoding === 'pcm' ? `pcm/${request.format.sampleRate}` : 'ogg-opus',
      'parley.stt.bytes': request.audio.byteLength,
      ...(upload.seconds !== undefined ? { 'parley.stt.seconds': upload.seconds } : {}),
      ...(language ? { 'parley.language': language } : {}),
    };
    return traceCall('stt.transcribe', attributes, async (span) => {
      request.signal?.throwIfAborted();
      if (request.audio.byteLength === 0) {
        span.set({ 'parley.stt.attempts': 0, 'parley.stt.empty': true });
        return { text: '', seconds: 0 };
      }
      const { sdk, client } = await load();
      const file = await sdk.toFile(upload.bytes, upload.name, { type: upload.type });
      const params = { file, model, response_format: 'json' as const, ...(language ? { language } : {}) };
      const userSignal = request.signal;
      let last: Failure | undefined;

      for (let attempt = 1; ; attempt += 1) {
        userSignal?.throwIfAborted();
        const left = deadline - now();
        if (left < MIN_ATTEMPT_MS) {
          span.set({ 'parley.stt.attempts': attempt - 1 });
          throw giveUp(last ?? { kind: 'stt.timeout', retryable: true, message: 'the deadline passed before the speech recognizer answered', cause: undefined }, attempt - 1, true);
        }
        const controller = new AbortController();
        const onUserAbort = () => controller.abort(userSignal?.reason);
        userSignal?.addEventListener('abort', onUserAbort, { once: true });
        let timedOut = false;
        const ms = Math.max(1, Math.min(attemptCap, left));
        const timer = setTimeout(() => {
          timedOut = true;
          controller.abort(new Error('transcription attempt timed out'));
        }, ms);
        try {
          const answer = await client.audio.transcriptions.create(params, { signal: controller.signal, timeout: Math.ceil(ms), maxRetries: 0 });
          if (timedOut) throw new AttemptFailure(timeoutFailure(undefined));
          const text = typeof answer?.text === 'string' ? answer.text.trim() : undefined;
          if (text === undefined) {
            throw new AttemptFailure({ kind: 'stt.failed', retryable: false, message: 'the speech recognizer answered without a text', cause: undefined });
          }
          const seconds = upload.seconds ?? usageSeconds(answer) ?? 0;
          span.set({ 'parley.stt.attempts': attempt, 'parley.stt.empty': text === '', 'parley.stt.seconds': seconds });
          return { text, seconds };
        } catch (err) {
          if (userSignal?.aborted) throw userSignal.reason;
          const failure = err instanceof AttemptFailure ? err.failure : classify(sdk, err, timedOut, redact);
          last = failure;
          const info = { attempt, kind: failure.kind, status: failure.status, error: failure.message, model };
          const next = nextAttempt(failure, attempt, { maxAttempts, backoffBaseMs: backoffBase, deadline, now });
          if (!next.retry) {
            if (next.why === 'deadline') log.warn('transcription failed; no time left to retry before the deadline', { ...info, waitMs: Math.round(next.waitMs ?? 0) });
            else log.warn('transcription failed', info);
            span.set({ 'parley.stt.attempts': attempt });
            throw giveUp(failure, attempt, failure.retryable);
          }
          log.warn('transcription failed; retrying', { ...info, waitMs: Math.round(next.waitMs) });
          if (!(await sleep(next.waitMs, userSignal))) throw userSignal!.reason;
        } finally {
          clearTimeout(timer);
          userSignal?.removeEventListener('abort', onUserAbort);
          controller.abort();
        }
      }
    });
  }

  return { provider, transcribe };
}

/**
 * The OpenAI-compatible transcriber the environment configures, or undefined without
 * PARLEY_STT_BASE_URL (then voice input has no self-hosted path). The key: PARLEY_STT_API_KEY, else
 * (only when the URL is api.openai.com) OPENAI_API_KEY; api.openai.com without any key is a
 * configuration error. A self-hosted server without a key gets no Authorization header.
 */
export function transcriberFromEnv(
  env: Pick<FunctionEnv, 'PARLEY_STT_BASE_URL' | 'PARLEY_STT_MODEL' | 'PARLEY_STT_API_KEY' | 'OPENAI_API_KEY'>,
  options: Omit<OpenAiTranscriberOptions, 'baseURL' | 'apiKey' | 'model'> = {},
): Transcriber | undefined {
  const baseURL = env.PARLEY_STT_BASE_URL;
  if (!baseURL) return undefined;
  const onOpenAi = new URL(baseURL).hostname === 'api.openai.com';
  const apiKey = env.PARLEY_STT_API_KEY ?? (onOpenAi ? env.OPENAI_API_KEY : undefined);
  if (onOpenAi && !apiKey) {
    throw new ParleyError('config.invalid', 'invalid configuration:\n  PARLEY_STT_BASE_URL: api.openai.com needs PARLEY_STT_API_KEY or OPENAI_API_KEY');
  }
  return openAiTranscriber({ ...options, baseURL, model: env.PARLEY_STT_MODEL ?? DEFAULT_STT_MODEL, ...(apiKey ? { apiKey } : {}) });
}

/** Marker thrown inside an attempt; never leaves this module. */
class AttemptFailure extends Error {
  constructor(readonly failure: Failure) {
    super(failure.message);
  }
}

/** The file to upload and, when the bytes tell, the audio's duration in seconds. */
function prepare(request: TranscriptionRequest): { bytes: Uint8Array; name: string; type: string; seconds: number | undefined } {
  if (request.format.encoding === 'pcm') {
    const { sampleRate } = request.format;
    let bytes: Uint8Array;
    try {
      bytes = pcmToWav(request.audio, sampleRate);
    } catch (err) {
      throw new SttError('stt.failed', `cannot send the audio: ${(err as Error).message}`, { attempts: 0, cause: err });
    }
    return { bytes, name: 'utterance.wav', type: 'audio/wav', seconds: pcmDurationMs(request.audio.byteLength, sampleRate) / 1000 };
  }
  const ms = oggOpusDurationMs(request.audio);
  return { bytes: request.audio, name: 'utterance.ogg', type: 'audio/ogg', seconds: ms === undefined ? undefined : ms / 1000 };
}

function usageSeconds(answer: unknown): number | undefined {
  const usage = (answer as { usage?: { type?: unknown; seconds?: unknown } } | undefined)?.usage;
  return usage?.type === 'duration' && typeof usage.seconds === 'number' && Number.isFinite(usage.seconds) ? usage.seconds : undefined;
}

/** Removes the API key and anything shaped like an OpenAI key from a message (servers quote keys in 401 answers). */
function redactor(apiKey: string | undefined): (message: string) => string {
  return (message) => {
    let out = apiKey && apiKey.length >= 4 ? message.split(apiKey).join('[redacted]') : message;
    out = out.replace(/\bsk-[A-Za-z0-9_*.-]{4,}/g, 'sk-[redacted]');
    return out;
  };
}

function giveUp(failure: Failure, attempts: number, exhausted: boolean): SttError {
  return giveUpWith(failure, attempts, exhausted, (kind, message, details) => new SttError(kind, message, details));
}

function timeoutFailure(cause: unknown): Failure {
  return { kind: 'stt.timeout', retryable: true, message: 'the speech recognizer did not answer in time', cause };
}

function classify(sdk: Sdk, err: unknown, timedOut: boolean, redact: (message: string) => string): Failure {
  const f = classifySdkError(sdk, err, timedOut);
  const failed = (message: string): Failure => ({ kind: 'stt.failed', retryable: f.retryable, message, cause: err });
  switch (f.what) {
    case 'timeout':
      return timeoutFailure(err);
    case 'aborted':
      return failed('the transcription request was aborted');
    case 'unreachable':
      return failed(`cannot reach the speech recognizer: ${redact(f.detail)}`);
    case 'answered':
      return {
        ...failed(`the speech recognizer answered ${redact(f.detail)}`),
        ...(f.status !== undefined ? { status: f.status } : {}),
        ...(f.retryAfterMs !== undefined ? { retryAfterMs: f.retryAfterMs } : {}),
      };
    case 'malformed':
      return failed('the speech recognizer answered invalid JSON');
    case 'connection':
      return failed(`the speech recognizer connection failed: ${redact(f.detail)}`);
    case 'other':
      return failed(`the transcription failed: ${redact(f.detail)}`);
  }
}
