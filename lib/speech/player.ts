import type { RecordedEvent } from '../checkpoint/record';
import { describeError } from '../errors';
import type { ServerEvent } from '../protocol/v1';
import type { Clock } from '../runner/ports';
import type { AudioCache } from './audio-cache';
import { type AudioFormat } from './format';
import { concatBytes, mp3DurationMs, pcmDurationMs } from './pcm';
import { TtsError, type Synthesizer, type Voice, type WordMark } from './tts/port';

/** One thing to say, in playlist order: a sentence of an answer, a prompt, a filler. */
export interface SayRequest {
  kind: 'speech' | 'filler';
  text: string;
  /** Where it came from (`cache:welcome`, `llm`, `filler:one_moment`…), for the record. */
  source: string;
}

/** A speech item as the client got it: what a cancel's `playedMs` is measured against. */
export interface SpokenItem {
  itemId: string;
  text: string;
  source: string;
  /** Audio sent for the item; less than the whole item when the turn was cancelled mid-item. */
  durationMs: number;
  /** Word timings when known without another request (a cached prompt). */
  marks?: WordMark[];
}

export interface PlayerReport {
  spoken: SpokenItem[];
  events: RecordedEvent[];
  /** Characters sent to live synthesis (cached items cost nothing). */
  ttsCharacters: number;
  /** Ms since t1 of the first audio chunk produced (t5) and of the first audio sent (t6). */
  firstChunkAtMs?: number;
  firstSentAtMs?: number;
}

export interface PlayerOptions {
  turnId: string;
  /** The session's audio; null for a text-only session (then only the moments are sent, as status events). */
  format: AudioFormat | null;
  voice: Voice;
  synthesizer: Synthesizer | undefined;
  cache: AudioCache;
  /** The map's neutral filler, already localized; null when the map has none. */
  neutralFiller: { text: string; source: string } | null;
  /** No neutral filler starts later than this after the slow work began. */
  maxWaitMs: number;
  /** Said instead of an LLM sentence when the synthesizer cannot be reached (seed 004), if cached. */
  safeResponse: { text: string; source: string } | null;
  clock: Clock;
  /** Ms since t1, for the metrics. */
  at(): number;
  emit(event: ServerEvent): void;
  newId(): string;
  /** The turn's cancel: nothing more is sent, synthesis stops. */
  signal: AbortSignal;
  timing?: Partial<PlayerTiming>;
}

export interface PlayerTiming {
  /** A neutral filler never starts sooner than this after slow work began: a quick answer needs none. */
  neutralAfterMs: number;
  /** Next neutral filler this long before the previous one ends, so the client never runs dry. */
  leadMs: number;
  /** Raw audio bytes per `response.audio.delta` (base64 grows it by 4/3; the frame is 32 KB). */
  chunkBytes: number;
  /** Live syntheses running at once; later items wait their turn. */
  parallel: number;
  /** A synthesis that sends nothing for this long has failed (`tts.timeout`): a hung service must not hang the turn. */
  stallMs: number;
}

export const DEFAULT_TIMING: PlayerTiming = { neutralAfterMs: 1500, leadMs: 100, chunkBytes: 18 * 1024, parallel: 2, stallMs: 5000 };

interface Item extends SayRequest {
  id: string;
  neutral: boolean;
  chunks: Uint8Array[];
  done: boolean;
  failed: TtsError | null;
  marks?: WordMark[];
  cached: boolean;
  started: boolean;
}

/**
 * The playlist player of seed 004, for one turn. Items play in the order they are said; their
 * audio is made in the background as soon as they are known (from the cache at once, else by the
 * synthesizer, a few at a time) and sent as soon as every earlier item is out. Audio goes to the
 * client ahead of playback; the player keeps an estimate of when the client's buffer runs dry.
 * While slow work runs and the next speech is not ready, the state's fillers play, then the
 * neutral filler repeats until the answer is ready or `maxWaitMs` passes; the answer's first audio
 * cuts a playing neutral filler with `response.audio.clear`. A text-only session gets the same
 * moments as `response.status` events.
 */
export class Player {
  private readonly timing: PlayerTiming;
  private readonly items: Item[] = [];
  private readonly events: RecordedEvent[] = [];
  private readonly spoken: SpokenItem[] = [];
  private ttsCharacters = 0;
  private firstChunkAtMs: number | undefined;
  private firstSentAtMs: number | undefined;
  /** Monotonic ms at which the client will have played everything sent so far. */
  private playheadEnd = 0;
  /** When the current slow work began; null once the answer started. */
  private slowSince: number | null = null;
  /** Neutral fillers sent and when each ends at the client, to cut them when the answer comes. */
  private neutralPlaying: { id: string; endsAt: number }[] = [];
  private neutralAudio: Promise<{ chunks: Uint8Array[]; durationMs: number } | null> | null = null;
  private synthDown = false;
  private safeResponseUsed = false;
  private finished = false;
  private running = 0;
  private wake: (() => void) | null = null;
  private readonly pump: Promise<void>;

  constructor(private readonly o: PlayerOptions) {
    this.timing = { ...DEFAULT_TIMING, ...o.timing };
    o.signal.addEventListener('abort', () => this.notify(), { once: true });
    this.pump = this.run().catch((err: unknown) => {
      this.events.push({ type: 'tts_error', source: 'player', code: 'tts.failed', detail: describeError(err), atMs: o.at() });
    });
  }

  /** Queues an item; a filler's text also goes to the client at once, as a passing hint. */
  say(request: SayRequest): void {
    if (this.finished) throw new Error('say() after finish()');
    const item = this.newItem(request, false);
    if (request.kind === 'filler') {
      this.o.emit({ type: 'response.filler', turnId: this.o.turnId, key: request.source, text: request.text, ...(this.o.format ? { itemId: item.id } : {}) });
    }
    this.items.push(item);
    this.produce();
    this.notify();
  }

  /** Slow work (a webhook, the LLM) starts now: the client is told, and fillers may follow. */
  waiting(): void {
    this.slowSince ??= this.o.clock.monotonicMs();
    this.o.emit({ type: 'response.status', turnId: this.o.turnId, status: 'typing' });
    this.notify();
  }

  /** No more items: resolves once everything is sent, or at once when the turn was cancelled. */
  async finish(): Promise<PlayerReport> {
    this.finished = true;
    this.notify();
    await this.pump;
    return {
      spoken: this.spoken,
      events: this.events,
      ttsCharacters: this.ttsCharacters,
      ...(this.firstChunkAtMs === undefined ? {} : { firstChunkAtMs: this.firstChunkAtMs }),
      ...(this.firstSentAtMs === undefined ? {} : { firstSentAtMs: this.firstSentAtMs }),
    };
  }

  private newItem(request: SayRequest, neutral: boolean): Item {
    return { ...request, id: this.o.newId(), neutral, chunks: [], done: false, failed: null, cached: false, started: false };
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** Starts making audio for the next items, at most `parallel` live syntheses at once. */
  private produce(): void {
    if (!this.o.format) {
      for (const item of this.items) item.done = true;
      return;
    }
    for (const item of this.items) {
      if (item.started) continue;
      if (this.running >= this.timing.parallel) return;
      item.started = true;
      this.running += 1;
      void this.render(item).finally(() => {
        this.running -= 1;
        this.produce();
        this.notify();
      });
    }
  }

  private async render(item: Item): Promise<void> {
    const format = this.o.format!;
    const chunk = (c: Uint8Array) => {
      this.firstChunkAtMs ??= this.o.at();
      item.chunks.push(c);
      this.notify();
    };
    try {
      const hit = await withStallLimit(this.o.cache.get(item.text, this.o.voice, format), this.timing.stallMs);
      if (hit) {
        item.cached = true;
        item.marks = hit.marks;
        chunk(hit.audio);
        return;
      }
      if (!this.o.synthesizer || this.synthDown) throw new TtsError('tts.connection', this.synthDown ? 'the synthesizer failed earlier in this turn' : 'no synthesizer configured');
      this.ttsCharacters += item.text.length;
      const stop = new AbortController();
      const stream = this.o.synthesizer.synthesize({ text: item.text, voice: this.o.voice, format, signal: AbortSignal.any([this.o.signal, stop.signal]) })[Symbol.asyncIterator]();
      try {
        for (;;) {
          // Each chunk must come within stallMs, whether or not the synthesizer honours its signal.
          const next = await withStallLimit(stream.next(), this.timing.stallMs);
          if (next.done || this.o.signal.aborted) break;
          chunk(next.value);
        }
      } catch (err) {
        stop.abort();
        void stream.return?.(undefined)?.catch(() => undefined);
        throw err;
      }
    } catch (err) {
      item.failed = err instanceof TtsError ? err : new TtsError('tts.failed', describeError(err), { cause: err });
      // An unreachable or unresponsive service is not asked again in this turn.
      if (item.failed.code !== 'tts.failed') this.synthDown = true;
    } finally {
      item.done = true;
    }
  }

  private async run(): Promise<void> {
    let next = 0;
    for (;;) {
      if (this.o.signal.aborted) return;
      const item = this.items[next];
      if (item && (item.chunks.length > 0 || item.done)) {
        await this.play(item);
        next += 1;
        continue;
      }
      if (!item && this.finished) {
        this.cutNeutral();
        return;
      }
      // Nothing to play yet: maybe a filler's moment has come; then sleep until something changes.
      const due = this.neutralDue();
      if (due !== null && due <= this.o.clock.monotonicMs()) {
        await this.playNeutral();
        continue;
      }
      await this.sleep(due === null ? null : due - this.o.clock.monotonicMs());
    }
  }

  private sleep(ms: number | null): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === null ? undefined : setTimeout(() => this.notify(), Math.max(0, ms));
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** When the next neutral filler should start, or null when none should. */
  private neutralDue(): number | null {
    if (this.slowSince === null || !this.o.neutralFiller) return null;
    if (this.o.clock.monotonicMs() - this.slowSince >= this.o.maxWaitMs) return null;
    return Math.max(this.slowSince + this.timing.neutralAfterMs, this.playheadEnd - this.timing.leadMs);
  }

  private async playNeutral(): Promise<void> {
    const neutral = this.o.neutralFiller!;
    this.o.emit({ type: 'response.status', turnId: this.o.turnId, status: 'still_working' });
    this.events.push({ type: 'filler', source: neutral.source, neutral: true, atMs: this.o.at() });
    if (!this.o.format) {
      // No audio to time it by: the moment repeats as often as the spoken filler would.
      this.playheadEnd = Math.max(this.o.clock.monotonicMs(), this.playheadEnd) + estimateSpeechMs(neutral.text);
      return;
    }
    this.neutralAudio ??= this.renderNeutral(neutral.text);
    const audio = await this.neutralAudio;
    if (!audio || this.o.signal.aborted) {
      // Nothing to play: stop trying for this wait.
      this.slowSince = null;
      return;
    }
    const id = this.o.newId();
    this.o.emit({ type: 'response.filler', turnId: this.o.turnId, key: neutral.source, text: neutral.text, itemId: id });
    this.sendAudio(id, 'filler', audio.chunks);
    this.o.emit({ type: 'response.audio.done', turnId: this.o.turnId, itemId: id, kind: 'filler', durationMs: audio.durationMs });
    this.neutralPlaying.push({ id, endsAt: this.playheadEnd });
  }

  /** The neutral filler's audio, made once per turn and reused for every repeat. */
  private async renderNeutral(text: string): Promise<{ chunks: Uint8Array[]; durationMs: number } | null> {
    const item = this.newItem({ kind: 'filler', text, source: this.o.neutralFiller!.source }, true);
    await this.render(item);
    if (item.failed || item.chunks.length === 0) {
      if (item.failed) this.recordFailure(item, item.failed);
      return null;
    }
    return { chunks: item.chunks, durationMs: this.durationOf(item.chunks) };
  }

  /** Cuts the neutral fillers the client may still be playing: the answer (or the end) is here. */
  private cutNeutral(): void {
    const now = this.o.clock.monotonicMs();
    for (const n of this.neutralPlaying) {
      if (n.endsAt > now) this.o.emit({ type: 'response.audio.clear', turnId: this.o.turnId, itemId: n.id });
    }
    if (this.neutralPlaying.length) this.playheadEnd = Math.min(this.playheadEnd, now);
    this.neutralPlaying = [];
  }

  /** Streams one item: what is there now, then the rest as it arrives. */
  private async play(item: Item): Promise<void> {
    if (item.kind === 'speech') {
      this.cutNeutral();
      this.slowSince = null;
    } else if (this.o.format === null) {
      this.playheadEnd = Math.max(this.o.clock.monotonicMs(), this.playheadEnd) + estimateSpeechMs(item.text);
    }
    if (!this.o.format) return;
    let seq = 0;
    let sent = 0;
    const spoken: SpokenItem | null = item.kind === 'speech' ? { itemId: item.id, text: item.text, source: item.source, durationMs: 0 } : null;
    for (;;) {
      if (this.o.signal.aborted) break;
      if (sent < item.chunks.length) {
        const fresh = item.chunks.slice(sent);
        sent = item.chunks.length;
        seq = this.sendAudio(item.id, item.kind, fresh, seq);
        if (spoken) spoken.durationMs = this.durationOf(item.chunks.slice(0, sent));
        continue;
      }
      if (item.done) break;
      await this.sleep(null);
    }
    if (spoken && (spoken.durationMs > 0 || !item.failed)) {
      if (item.marks) spoken.marks = item.marks;
      this.spoken.push(spoken);
    }
    // An item that failed half-way still ends: the client plays what it got and goes on.
    if (!this.o.signal.aborted && sent > 0) {
      this.o.emit({ type: 'response.audio.done', turnId: this.o.turnId, itemId: item.id, kind: item.kind, durationMs: this.durationOf(item.chunks) });
    }
    if (item.failed) {
      this.recordFailure(item, item.failed);
      if (item.failed.code !== 'tts.failed' && item.source === 'llm' && sent === 0) await this.playSafeResponse();
    }
  }

  /** Seed 004: the synthesizer is unreachable during an LLM answer, so the cached safe response plays instead, once. */
  private async playSafeResponse(): Promise<void> {
    const safe = this.o.safeResponse;
    if (!safe || this.safeResponseUsed || !this.o.format) return;
    this.safeResponseUsed = true;
    const hit = await withStallLimit(this.o.cache.get(safe.text, this.o.voice, this.o.format), this.timing.stallMs).catch(() => undefined);
    if (!hit || this.o.signal.aborted) return;
    const id = this.o.newId();
    this.events.push({ type: 'filler', source: safe.source, neutral: false, atMs: this.o.at() });
    this.sendAudio(id, 'speech', [hit.audio]);
    this.o.emit({ type: 'response.audio.done', turnId: this.o.turnId, itemId: id, kind: 'speech', durationMs: hit.durationMs });
  }

  private recordFailure(item: Item, error: TtsError): void {
    this.events.push({ type: 'tts_error', source: item.source, code: error.code, detail: error.message, atMs: this.o.at() });
  }

  /** Sends audio as deltas of at most `chunkBytes`; returns the next seq. */
  private sendAudio(itemId: string, kind: 'speech' | 'filler', chunks: readonly Uint8Array[], seq = 0): number {
    const format = this.o.format!;
    const bytes = concatBytes(chunks);
    const step = this.timing.chunkBytes - (this.timing.chunkBytes % 2); // whole 16-bit samples
    for (let offset = 0; offset < bytes.length; offset += step) {
      const piece = bytes.subarray(offset, offset + step);
      this.o.emit({
        type: 'response.audio.delta',
        turnId: this.o.turnId,
        itemId,
        seq: seq++,
        kind,
        format: format.format,
        sampleRate: format.sampleRate,
        audio: Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength).toString('base64'),
      });
    }
    this.firstSentAtMs ??= this.o.at();
    const now = this.o.clock.monotonicMs();
    this.playheadEnd = Math.max(now, this.playheadEnd) + this.durationOf([bytes]);
    return seq;
  }

  private durationOf(chunks: readonly Uint8Array[]): number {
    const format = this.o.format!;
    if (format.format === 'pcm') return pcmDurationMs(chunks.reduce((n, c) => n + c.byteLength, 0), format.sampleRate);
    return mp3DurationMs(concatBytes(chunks));
  }
}

function withStallLimit<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TtsError('tts.timeout', `no audio for ${ms} ms`)), ms);
  });
  return Promise.race([promise, stalled]).finally(() => clearTimeout(timer));
}

/** How long text takes to say, roughly (about 14 characters a second), for sessions without audio. */
export function estimateSpeechMs(text: string): number {
  return Math.max(800, Math.round(text.length * 70));
}
