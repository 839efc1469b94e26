/**
 * The local synthesizer: eSpeak NG compiled to JavaScript (@echogarden/espeak-ng-emscripten,
 * GPL-3.0, an optional dependency that only the local host loads), in one worker thread per
 * synthesizer, so synthesis never blocks the event loop.
 *
 * The worker starts on the first request and loads the module once (~130 ms); requests queue and
 * run one at a time; audio is posted back chunk by chunk while eSpeak is still speaking (the first
 * chunk comes after a few milliseconds, not after the whole text). eSpeak speaks 22,050 Hz PCM,
 * resampled here to the requested rate; there is no mp3.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { formatId, type AudioFormat } from '../../lib/speech/format';
import { createResampler, pcmToBytes } from '../../lib/speech/pcm';
import { TtsError, type SynthesisRequest, type Synthesizer, type WordMark } from '../../lib/speech/tts/port';

export const ESPEAK_PACKAGE = '@echogarden/espeak-ng-emscripten';

/** [text_position (1-based, code points), word_length (code points), audio_position (ms)] */
type RawWord = [number, number, number];

type WorkerMessage =
  | { type: 'ready'; sampleRate: number }
  | { type: 'fatal'; message: string }
  | { type: 'chunk'; id: number; samples: ArrayBuffer; words?: RawWord[] }
  | { type: 'words'; id: number; words: RawWord[] }
  | { type: 'done'; id: number }
  | { type: 'error'; id: number; message: string };

interface Job {
  id: number;
  text: string;
  voice: string;
  audio: boolean;
  marks: boolean;
  /** The requester stopped listening (abort, or the iterator was left); the worker may still be busy with it. */
  cancelled: boolean;
  onSamples(samples: Int16Array, sampleRate: number): void;
  onWords(words: RawWord[]): void;
  onEnd(error?: TtsError): void;
}

/** A one-consumer queue between worker events and an async iterator. */
class Channel<T> {
  private items: T[] = [];
  private ended = false;
  private error: unknown;
  private wake: (() => void) | undefined;

  push(item: T): void {
    if (this.ended) return;
    this.items.push(item);
    this.notify();
  }

  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    this.notify();
  }

  /** The next item; undefined at the end; throws the error the channel ended with. */
  async next(): Promise<T | undefined> {
    for (;;) {
      if (this.items.length > 0) return this.items.shift();
      if (this.ended) {
        if (this.error !== undefined) throw this.error;
        return undefined;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** UTF-16 offset of each code point index of `text` (index = code point count, up to the end). */
function codePointOffsets(text: string): number[] {
  const offsets: number[] = [];
  for (let i = 0; i < text.length; i += text.codePointAt(i)! > 0xffff ? 2 : 1) offsets.push(i);
  offsets.push(text.length);
  return offsets;
}

export interface EspeakSynthesizerOptions {
  /** The module the worker imports (a file URL or a specifier); default: the installed package. */
  moduleUrl?: string;
}

export class EspeakSynthesizer implements Synthesizer {
  readonly provider = 'espeak';
  private worker: Worker | undefined;
  private sampleRate: number | undefined;
  private readonly queue: Job[] = [];
  private active: Job | undefined;
  private nextId = 1;
  /** The id of the request to cancel, read by the worker between chunks. */
  private readonly cancelCell = new Int32Array(new SharedArrayBuffer(4));
  private closed = false;
  private readonly moduleUrl: string;

  constructor(options: EspeakSynthesizerOptions = {}) {
    this.moduleUrl = options.moduleUrl ?? ESPEAK_PACKAGE;
  }

  /** PCM at any of the four rates (resampled from eSpeak's 22,050 Hz); no mp3. */
  supports(format: AudioFormat): boolean {
    return format.format === 'pcm' && [8000, 16000, 22050, 24000].includes(format.sampleRate);
  }

  /** The worker thread's id while one runs (tests, diagnostics). */
  get threadId(): number | undefined {
    return this.worker?.threadId;
  }

  async *synthesize(request: SynthesisRequest): AsyncGenerator<Uint8Array> {
    const { signal, format } = request;
    if (!this.supports(format)) throw new TtsError('tts.failed', `the local synthesizer does not produce ${formatId(format)} audio`);
    if (signal?.aborted || request.text.trim() === '') return;
    const channel = new Channel<Int16Array>();
    let resampler: ReturnType<typeof createResampler> | undefined;
    const job = this.submit({
      text: request.text,
      voice: request.voice.id,
      audio: true,
      marks: false,
      onSamples: (samples, rate) => {
        resampler ??= createResampler(rate, format.sampleRate);
        const out = resampler.push(samples);
        if (out.length > 0) channel.push(out);
      },
      onWords: () => {},
      onEnd: (error) => {
        if (error === undefined && resampler) {
          const tail = resampler.flush();
          if (tail.length > 0) channel.push(tail);
        }
        channel.end(error);
      },
    });
    const onAbort = () => {
      this.cancel(job);
      channel.end();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        const samples = await channel.next();
        if (samples === undefined || signal?.aborted) return;
        yield pcmToBytes(samples);
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.cancel(job); // a no-op when the job has ended; stops the worker when the consumer left early
    }
  }

  /**
   * Word timings from eSpeak's word events (the text is synthesized without sending audio back).
   * eSpeak counts text positions in code points (1-based); they are converted to UTF-16 offsets.
   * An abort rejects with the signal's reason.
   */
  async wordMarks(request: Omit<SynthesisRequest, 'format'>): Promise<WordMark[]> {
    const { signal, text } = request;
    signal?.throwIfAborted();
    if (text.trim() === '') return [];
    const raw: RawWord[] = [];
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        const job = this.submit({
          text,
          voice: request.voice.id,
          audio: false,
          marks: true,
          onSamples: () => {},
          onWords: (words) => raw.push(...words),
          onEnd: (error) => (error ? reject(error) : resolve()),
        });
        onAbort = () => {
          this.cancel(job);
          reject(signal!.reason);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
    const offsets = codePointOffsets(text);
    const at = (cp: number) => offsets[Math.max(0, Math.min(cp, offsets.length - 1))]!;
    const marks: WordMark[] = [];
    for (const [position, length, ms] of raw) {
      const start = at(position - 1);
      const end = at(position - 1 + length);
      // eSpeak reads some symbols as several words; the extra ones point at the space after them.
      if (end <= start || text.slice(start, end).trim() === '') continue;
      marks.push({ timeMs: ms, start, end });
    }
    return marks;
  }

  /** Terminates the worker; requests still queued or running end with tts.connection. Later requests fail. */
  async close(): Promise<void> {
    this.closed = true;
    const error = new TtsError('tts.connection', 'the local synthesizer was closed');
    for (const job of this.queue.splice(0)) job.onEnd(error);
    const active = this.active;
    this.active = undefined;
    active?.onEnd(error);
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private submit(spec: Omit<Job, 'id' | 'cancelled'>): Job {
    const job: Job = { ...spec, id: this.nextId++, cancelled: false };
    if (this.closed) {
      queueMicrotask(() => job.onEnd(new TtsError('tts.connection', 'the local synthesizer was closed')));
      return job;
    }
    this.queue.push(job);
    this.pump();
    return job;
  }

  private cancel(job: Job): void {
    if (job.cancelled) return;
    job.cancelled = true;
    const queued = this.queue.indexOf(job);
    if (queued >= 0) this.queue.splice(queued, 1);
    if (this.active === job) Atomics.store(this.cancelCell, 0, job.id);
  }

  /** Starts the next queued job when the worker is free. */
  private pump(): void {
    if (this.active || this.closed) return;
    let job = this.queue.shift();
    while (job?.cancelled) job = this.queue.shift();
    if (!job) {
      this.worker?.unref(); // an idle worker does not keep the process alive
      return;
    }
    const worker = this.ensureWorker();
    worker.ref();
    this.active = job;
    worker.postMessage({ type: 'synthesize', id: job.id, text: job.text, voice: job.voice, audio: job.audio, marks: job.marks });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./espeak-worker.mjs', import.meta.url), {
      workerData: { moduleUrl: this.moduleUrl, cancel: this.cancelCell.buffer },
    });
    this.worker = worker;
    this.sampleRate = undefined;
    worker.on('message', (msg: WorkerMessage) => this.onMessage(worker, msg));
    worker.on('error', (err) => this.onCrash(worker, `the local synthesizer crashed: ${err.message}`, err));
    worker.on('exit', (code) => this.onCrash(worker, `the local synthesizer's worker exited (code ${code})`));
    return worker;
  }

  private onMessage(worker: Worker, msg: WorkerMessage): void {
    if (worker !== this.worker) return;
    if (msg.type === 'ready') {
      this.sampleRate = msg.sampleRate;
      return;
    }
    if (msg.type === 'fatal') {
      this.onCrash(worker, `the local synthesizer could not load eSpeak: ${msg.message}`);
      return;
    }
    const job = this.active;
    if (!job || msg.id !== job.id) return;
    switch (msg.type) {
      case 'chunk':
        if (!job.cancelled) {
          if (msg.words) job.onWords(msg.words);
          job.onSamples(new Int16Array(msg.samples), this.sampleRate ?? 22050);
        }
        return;
      case 'words':
        if (!job.cancelled) job.onWords(msg.words);
        return;
      case 'done':
      case 'error':
        this.active = undefined;
        if (!job.cancelled || msg.type === 'error') {
          job.onEnd(msg.type === 'error' ? new TtsError('tts.failed', `the local synthesizer failed: ${msg.message}`) : undefined);
        }
        this.pump();
        return;
    }
  }

  /** The worker died (or could not load eSpeak): its request fails, the next one gets a fresh worker. */
  private onCrash(worker: Worker, message: string, cause?: unknown): void {
    if (worker !== this.worker) return; // already replaced, or closed
    this.worker = undefined;
    void worker.terminate();
    const job = this.active;
    this.active = undefined;
    job?.onEnd(new TtsError('tts.connection', message, { cause }));
    this.pump();
  }
}

/**
 * The local host's synthesizer factory. Throws TtsError('tts.connection') when the optional
 * eSpeak package is not installed; does not start the worker (the first request does).
 */
export async function createEspeakSynthesizer(options: { packageName?: string } = {}): Promise<EspeakSynthesizer> {
  const name = options.packageName ?? ESPEAK_PACKAGE;
  let path: string;
  try {
    path = createRequire(import.meta.url).resolve(name);
  } catch (err) {
    throw new TtsError('tts.connection', `the local synthesizer is not installed (optional dependency ${name})`, { cause: err });
  }
  return new EspeakSynthesizer({ moduleUrl: pathToFileURL(path).href });
}
