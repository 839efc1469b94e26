import {
  SynthesizeSpeechCommand,
  type Engine,
  type LanguageCode,
  type PollyClient,
  type SynthesizeSpeechCommandInput,
  type SynthesizeSpeechCommandOutput,
  type VoiceId,
} from '@aws-sdk/client-polly';
import { formatId, type AudioFormat } from '../format';
import { concatBytes, pcmDurationMs } from '../pcm';
import { TtsError, type SynthesisRequest, type Synthesizer, type WordMark } from './port';
import { POLLY_MAX_CHARS, splitWithOffsets } from './split';
import { pollySupports } from './polly-formats';
import { pollyLanguageCode } from './voice';

export interface PollySynthesizerOptions {
  /** Characters per SynthesizeSpeech request (Polly's limit, 3,000); smaller only for tests. */
  maxChars?: number;
}


/** Error codes of a connection that could not be made or broke (Node's and undici's). */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'ECONNRESET',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);
const NETWORK_NAMES: ReadonlySet<string> = new Set(['TimeoutError', 'RequestTimeout', 'NetworkingError', 'CredentialsProviderError']);

interface SdkErrorLike {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  cause?: unknown;
  $metadata?: { httpStatusCode?: number };
}

function isNetworkError(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 3) return false;
  const e = err as SdkErrorLike;
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return true;
  if (typeof e.name === 'string' && NETWORK_NAMES.has(e.name)) return true;
  return isNetworkError(e.cause, depth + 1);
}

/**
 * A Polly (SDK) failure as a TtsError: `tts.connection` when no answer came from the service (a
 * timeout, a refused, unresolvable or reset connection, missing credentials; the SDK marks such
 * errors with `$metadata` but no `httpStatusCode`), `tts.failed` for an answer that is an error
 * (ServiceFailureException, TextLengthExceededException, InvalidSampleRateException, throttling
 * that outlasted the SDK's retries, …) and anything else.
 */
export function toTtsError(err: unknown): TtsError {
  if (err instanceof TtsError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorLike;
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : String(err);
  const noResponse = e.$metadata !== undefined && e.$metadata.httpStatusCode === undefined;
  if (isNetworkError(err) || noResponse) {
    return new TtsError('tts.connection', `Polly cannot be reached: ${name}: ${message}`, { cause: err });
  }
  const status = e.$metadata?.httpStatusCode;
  return new TtsError('tts.failed', `Polly failed${status ? ` (HTTP ${status})` : ''}: ${name}: ${message}`, { cause: err });
}

/**
 * Maps UTF-8 byte offsets into `text` (Polly's speech-mark `start`/`end`) to UTF-16 offsets (what
 * JavaScript strings index). An offset inside a character maps to the character's start; offsets
 * past the end map to text.length.
 */
export function utf8ToUtf16Offsets(text: string): (byteOffset: number) => number {
  const table: number[] = [];
  let bytes = 0;
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i)!;
    const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (let k = 0; k < n; k++) table[bytes + k] = i;
    bytes += n;
    i += cp > 0xffff ? 2 : 1;
  }
  return (byteOffset) => (byteOffset <= 0 ? 0 : byteOffset >= bytes ? text.length : table[byteOffset]!);
}

/** Polly's word speech marks (newline-delimited JSON) of `text`, offsets converted to UTF-16. */
export function parseWordMarks(json: string, text: string): WordMark[] {
  const toUtf16 = utf8ToUtf16Offsets(text);
  const marks: WordMark[] = [];
  for (const line of json.split('\n')) {
    if (line.trim() === '') continue;
    const m = JSON.parse(line) as { time?: unknown; type?: unknown; start?: unknown; end?: unknown };
    if (m.type !== 'word' || typeof m.time !== 'number' || typeof m.start !== 'number' || typeof m.end !== 'number') continue;
    marks.push({ timeMs: m.time, start: toUtf16(m.start), end: toUtf16(m.end) });
  }
  return marks;
}

const abortError = (signal: AbortSignal): unknown =>
  signal.reason ?? Object.assign(new Error('the operation was aborted'), { name: 'AbortError' });

/**
 * The chunks of an SDK streaming body as they arrive: a Node Readable (what the SDK gives in Node),
 * a web ReadableStream, or bytes. An abort destroys (cancels) the stream, so a wait for the next
 * chunk ends at once.
 */
async function* bodyChunks(body: unknown, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
  if (body === undefined || body === null) return;
  if (body instanceof Uint8Array) {
    yield body;
    return;
  }
  if (typeof body === 'string') {
    yield new TextEncoder().encode(body);
    return;
  }
  const b = body as {
    getReader?: () => ReadableStreamDefaultReader<Uint8Array>;
    destroy?: (err?: Error) => void;
    transformToByteArray?: () => Promise<Uint8Array>;
    [Symbol.asyncIterator]?: () => AsyncIterator<unknown>;
  };
  if (typeof b.getReader === 'function') {
    const reader = b.getReader();
    const onAbort = () => void reader.cancel().catch(() => {});
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        if (value && value.byteLength > 0) yield value;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      void reader.cancel().catch(() => {});
    }
  }
  if (typeof b[Symbol.asyncIterator] === 'function') {
    const onAbort = () => b.destroy?.();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const chunk of b as AsyncIterable<unknown>) {
        const bytes =
          chunk instanceof Uint8Array ? chunk : typeof chunk === 'string' ? new TextEncoder().encode(chunk) : new Uint8Array(chunk as ArrayBuffer);
        if (bytes.byteLength > 0) yield bytes;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    return;
  }
  if (typeof b.transformToByteArray === 'function') {
    yield await b.transformToByteArray();
    return;
  }
  throw new TypeError('unsupported Polly AudioStream body');
}

/**
 * Amazon Polly behind the Synthesizer port. Text longer than Polly's 3,000 characters is sent as
 * several requests cut at sentence boundaries (splitForSynthesis), one after the other; each
 * response's AudioStream is passed on chunk by chunk as it arrives. PCM chunks are cut at sample
 * boundaries (an odd byte waits for the next chunk).
 */
export class PollySynthesizer implements Synthesizer {
  readonly provider = 'polly';
  private readonly maxChars: number;

  constructor(
    private readonly client: PollyClient,
    options: PollySynthesizerOptions = {},
  ) {
    this.maxChars = options.maxChars ?? POLLY_MAX_CHARS;
  }

  /** pcm at 8000 or 16000 Hz; mp3 at 8000, 16000, 22050 or 24000 Hz. */
  supports(format: AudioFormat): boolean {
    return pollySupports(format);
  }

  async *synthesize(request: SynthesisRequest): AsyncGenerator<Uint8Array> {
    const { signal, format, voice } = request;
    if (!this.supports(format)) throw new TtsError('tts.failed', `Polly does not produce ${formatId(format)} audio`);
    const pcm = format.format === 'pcm';
    let odd: number | undefined; // a byte of a sample cut in two by the network
    for (const piece of splitWithOffsets(request.text, this.maxChars, voice.language)) {
      if (signal?.aborted) return;
      const output = await this.send(
        { ...this.baseInput(request, piece.text), OutputFormat: format.format, SampleRate: String(format.sampleRate) },
        signal,
      );
      if (output === undefined) return; // aborted
      try {
        for await (const chunk of bodyChunks(output.AudioStream, signal)) {
          if (signal?.aborted) return;
          let bytes = chunk;
          if (pcm) {
            if (odd !== undefined) {
              const joined = new Uint8Array(bytes.byteLength + 1);
              joined[0] = odd;
              joined.set(bytes, 1);
              bytes = joined;
              odd = undefined;
            }
            if (bytes.byteLength % 2 === 1) {
              odd = bytes[bytes.byteLength - 1];
              bytes = bytes.subarray(0, bytes.byteLength - 1);
            }
            if (bytes.byteLength === 0) continue;
          }
          yield bytes;
        }
      } catch (err) {
        if (signal?.aborted) return;
        throw toTtsError(err);
      }
    }
  }

  /**
   * Word timings from Polly's word speech marks (a SynthesizeSpeech request with OutputFormat json:
   * no audio, billed like one). Offsets are UTF-16 offsets into `request.text` (Polly counts UTF-8
   * bytes). Text longer than one request is asked piece by piece; to put a piece's marks after the
   * audio of the pieces before it, the durations of those pieces are measured by synthesizing them
   * as 8 kHz PCM (so marks of a text over 3,000 characters cost about twice the characters).
   * An abort rejects with the signal's reason.
   */
  async wordMarks(request: Omit<SynthesisRequest, 'format'>): Promise<WordMark[]> {
    const { signal } = request;
    const pieces = splitWithOffsets(request.text, this.maxChars, request.voice.language);
    const marks: WordMark[] = [];
    let timeBase = 0;
    for (let p = 0; p < pieces.length; p++) {
      const piece = pieces[p]!;
      const output = await this.send({ ...this.baseInput(request, piece.text), OutputFormat: 'json', SpeechMarkTypes: ['word'] }, signal);
      if (output === undefined) throw abortError(signal!);
      const json = await this.readAll(output.AudioStream, signal);
      for (const m of parseWordMarks(new TextDecoder().decode(json), piece.text)) {
        marks.push({ timeMs: timeBase + m.timeMs, start: piece.offset + m.start, end: piece.offset + m.end });
      }
      if (p < pieces.length - 1) {
        const audio = await this.send({ ...this.baseInput(request, piece.text), OutputFormat: 'pcm', SampleRate: '8000' }, signal);
        if (audio === undefined) throw abortError(signal!);
        let bytes = 0;
        const stream = audio.AudioStream;
        try {
          for await (const chunk of bodyChunks(stream, signal)) bytes += chunk.byteLength;
        } catch (err) {
          if (signal?.aborted) throw abortError(signal);
          throw toTtsError(err);
        }
        timeBase += pcmDurationMs(bytes, 8000);
      }
    }
    return marks;
  }

  private baseInput(request: Omit<SynthesisRequest, 'format'>, text: string): Omit<SynthesizeSpeechCommandInput, 'OutputFormat'> {
    const { voice } = request;
    const languageCode = pollyLanguageCode(voice.id, voice.language);
    return {
      Text: text,
      TextType: 'text',
      VoiceId: voice.id as VoiceId,
      ...(voice.engine ? { Engine: voice.engine as Engine } : {}),
      ...(languageCode ? { LanguageCode: languageCode as LanguageCode } : {}),
    };
  }

  /** One request; undefined when it was aborted. */
  private async send(input: SynthesizeSpeechCommandInput, signal: AbortSignal | undefined): Promise<SynthesizeSpeechCommandOutput | undefined> {
    if (signal?.aborted) return undefined;
    try {
      return await this.client.send(new SynthesizeSpeechCommand(input), signal ? { abortSignal: signal } : {});
    } catch (err) {
      if (signal?.aborted) return undefined;
      throw toTtsError(err);
    }
  }

  private async readAll(body: unknown, signal: AbortSignal | undefined): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    try {
      for await (const chunk of bodyChunks(body, signal)) chunks.push(chunk);
    } catch (err) {
      if (signal?.aborted) throw abortError(signal);
      throw toTtsError(err);
    }
    if (signal?.aborted) throw abortError(signal);
    return concatBytes(chunks);
  }
}
