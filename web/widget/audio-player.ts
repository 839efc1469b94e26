/*
 * Speech playback for the chat widget: `response.audio.delta` chunks (base64 of 16-bit little-endian
 * mono PCM) scheduled back to back on a Web Audio timeline. No dependencies.
 *
 * The timing is a pure `Timeline` working on numbers (seconds on the AudioContext clock), so it can
 * be tested without a browser; `AudioPlayer` only turns its plans into AudioBufferSourceNodes.
 *
 * Rules (protocol v1): items play in the order their first chunk arrived, each item's chunks in
 * `seq` order; `clear(itemId)` drops what of an item has not played yet and moves the following
 * items up, so there is no silence; `stop()` silences everything at once (barge-in); `playedMs`
 * is how much of a turn's speech (kind `speech`, never fillers) actually played.
 */

export type AudioKind = 'speech' | 'filler';

/** One chunk of one item; `duration` in seconds. `data` is whatever the caller plays (an AudioBuffer). */
export interface Chunk<T> {
  turnId: string;
  itemId: string;
  kind: AudioKind;
  seq: number;
  duration: number;
  data: T;
}

/** A chunk placed on the clock. */
export interface Slot<T> extends Chunk<T> {
  /** When it starts, seconds on the AudioContext clock. */
  start: number;
  /** When it ends: start + duration, or earlier once it was stopped while playing. */
  end: number;
  /** Stopped before it started: it never sounds and counts for nothing. */
  dropped: boolean;
}

/** What the audio graph must do after a change: stops first, then (re)starts. */
export interface Plan<T> {
  /** Stop the slot's source at `at` (0 or a past time: at once; a source stopped before its start never sounds). */
  stop: { slot: Slot<T>; at: number }[];
  /** Start a source at `slot.start`, replacing the one the slot had (which had not started yet). */
  start: Slot<T>[];
}

/** A turn whose audio `stop()` cut short, and how much of its speech had played. */
export interface Cut {
  turnId: string;
  playedMs: number;
}

interface Item<T> {
  turnId: string;
  itemId: string;
  cleared: boolean;
  /** The seq expected next; later ones wait in `pending`. */
  next: number;
  pending: Map<number, Chunk<T>>;
  slots: Slot<T>[];
}

const emptyPlan = <T>(): Plan<T> => ({ stop: [], start: [] });
const placed = (s: Slot<unknown>): boolean => !s.dropped && Number.isFinite(s.start);

/**
 * The play order and the clock times of every chunk. `now` is AudioContext.currentTime; `lead`
 * (seconds) is how far ahead of now anything new is placed, so a start is never already past by
 * the time the audio thread sees it. A chunk starting before now + lead is committed: it is never
 * moved, only stopped.
 */
export class Timeline<T> {
  private items: Item<T>[] = [];
  private readonly byId = new Map<string, Item<T>>();
  /** Items cleared before their first chunk came. */
  private readonly clearedEarly = new Set<string>();
  private readonly silenced = new Set<string>();

  constructor(readonly lead = 0.05) {}

  /** A chunk arrived; returns the sources to (re)start. Chunks of cleared items or silenced turns are ignored. */
  add(chunk: Chunk<T>, now: number): Plan<T> {
    if (this.silenced.has(chunk.turnId)) return emptyPlan();
    let item = this.byId.get(chunk.itemId);
    if (!item) {
      this.prune(chunk.turnId, now);
      item = { turnId: chunk.turnId, itemId: chunk.itemId, cleared: this.clearedEarly.delete(chunk.itemId), next: 0, pending: new Map(), slots: [] };
      this.items.push(item);
      this.byId.set(item.itemId, item);
    }
    if (item.cleared || chunk.seq < item.next || item.pending.has(chunk.seq)) return emptyPlan();
    item.pending.set(chunk.seq, chunk);
    for (let c = item.pending.get(item.next); c; c = item.pending.get(item.next)) {
      item.pending.delete(item.next++);
      item.slots.push({ ...c, start: NaN, end: NaN, dropped: false });
    }
    return this.layout(now, emptyPlan());
  }

  /**
   * Drops what of the item has not played: a playing chunk stops at now + lead (where the next
   * item takes over, gap-free), later chunks never sound, the following items move up.
   */
  clear(itemId: string, now: number): Plan<T> {
    const item = this.byId.get(itemId);
    if (!item) {
      this.clearedEarly.add(itemId);
      return emptyPlan();
    }
    item.cleared = true;
    item.pending.clear();
    const plan = emptyPlan<T>();
    const cutAt = now + this.lead;
    for (const slot of item.slots) {
      if (slot.dropped) continue;
      if (slot.start <= now) {
        if (slot.end > cutAt) {
          slot.end = cutAt;
          plan.stop.push({ slot, at: cutAt });
        }
      } else {
        slot.dropped = true;
        plan.stop.push({ slot, at: 0 });
      }
    }
    return this.layout(now, plan);
  }

  /**
   * Barge-in: everything stops now and every turn heard so far is silenced (its later chunks are
   * ignored). Returns the plan and, for each turn that still had audio to play, its played speech.
   */
  stop(now: number): { plan: Plan<T>; cut: Cut[] } {
    const unfinished = new Set<string>();
    for (const item of this.items) {
      if (item.pending.size > 0 || item.slots.some((s) => !s.dropped && !(s.end <= now))) unfinished.add(item.turnId);
    }
    const plan = emptyPlan<T>();
    for (const item of this.items) {
      this.silenced.add(item.turnId);
      item.cleared = true;
      item.pending.clear();
      for (const slot of item.slots) {
        if (slot.dropped || slot.end <= now) continue;
        if (slot.start <= now) slot.end = now;
        else slot.dropped = true;
        plan.stop.push({ slot, at: 0 });
      }
    }
    return { plan, cut: [...unfinished].map((turnId) => ({ turnId, playedMs: this.playedMs(turnId, now) })) };
  }

  /** Ignore the turn's audio from now on (a cancelled turn whose audio has not come yet). */
  silence(turnId: string): void {
    this.silenced.add(turnId);
  }

  /** Milliseconds of the turn's speech (not fillers) played by `now`, rounded. */
  playedMs(turnId: string, now: number): number {
    let seconds = 0;
    for (const item of this.items) {
      if (item.turnId !== turnId) continue;
      for (const s of item.slots) {
        if (s.kind === 'speech' && placed(s)) seconds += Math.max(0, Math.min(now, s.end) - s.start);
      }
    }
    return Math.round(seconds * 1000);
  }

  /** Whether any audio is still to be heard at `now`. */
  playing(now: number): boolean {
    return this.items.some((item) => item.slots.some((s) => placed(s) && s.end > now));
  }

  /** The items in play order with their slots (for tests and debugging). */
  get order(): readonly { itemId: string; slots: readonly Slot<T>[] }[] {
    return this.items;
  }

  /**
   * Places every chunk not yet committed, in item order, from where the committed audio ends (or
   * now + lead when nothing is playing). A chunk already placed at the right time is left alone.
   */
  private layout(now: number, plan: Plan<T>): Plan<T> {
    const horizon = now + this.lead;
    const committed = (s: Slot<T>) => placed(s) && s.start < horizon;
    let cursor = horizon;
    for (const item of this.items) for (const s of item.slots) if (committed(s)) cursor = Math.max(cursor, s.end);
    for (const item of this.items) {
      for (const s of item.slots) {
        if (s.dropped || committed(s)) continue;
        if (s.start !== cursor) {
          s.start = cursor;
          s.end = cursor + s.duration;
          plan.start.push(s);
        }
        cursor = s.end;
      }
    }
    return plan;
  }

  /** Forgets the turns other than `keep` whose audio has all played. */
  private prune(keep: string, now: number): void {
    const live = new Set<string>([keep]);
    for (const item of this.items) {
      if (item.pending.size > 0 || item.slots.some((s) => placed(s) && s.end > now)) live.add(item.turnId);
    }
    for (const item of this.items) if (!live.has(item.turnId)) this.byId.delete(item.itemId);
    this.items = this.items.filter((item) => live.has(item.turnId));
  }
}

// ---------------------------------------------------------------------------------------------------
// PCM

/** Base64 to bytes (atob: browsers and Node). */
export function base64ToBytes(base64: string): Uint8Array {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** 16-bit signed little-endian samples to floats in [-1, 1); an odd last byte is ignored. */
export function pcm16ToFloat32(bytes: Uint8Array): Float32Array {
  const samples = bytes.length >> 1;
  const view = new DataView(bytes.buffer, bytes.byteOffset, samples * 2);
  const out = new Float32Array(samples);
  for (let i = 0; i < samples; i++) out[i] = view.getInt16(i * 2, true) / 32768;
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Web Audio

/** What the player needs of a `response.audio.delta`. */
export interface AudioDeltaLike {
  turnId: string;
  itemId: string;
  seq: number;
  kind: AudioKind;
  format: string;
  sampleRate: number;
  audio: string;
}

export interface AudioPlayerOptions {
  /** Seconds ahead of currentTime that new audio is placed (default 0.05). */
  lead?: number;
  /** Called when playback starts or runs out (or is stopped). */
  onPlayingChange?: (playing: boolean) => void;
  /** Makes the AudioContext; tests pass a fake. */
  createContext?: () => AudioContext;
}

/**
 * Plays a session's speech. The AudioContext is made on first use; browsers keep it suspended
 * until a user gesture, so call `unlock()` from a click or key handler.
 */
export class AudioPlayer {
  private ctx: AudioContext | null = null;
  private readonly timeline: Timeline<AudioBuffer | null>;
  private readonly nodes = new Map<Slot<AudioBuffer | null>, AudioBufferSourceNode>();
  /** An odd byte left at the end of an item's chunk, for its next chunk. */
  private readonly carry = new Map<string, number>();
  private wasPlaying = false;

  constructor(private readonly options: AudioPlayerOptions = {}) {
    this.timeline = new Timeline(options.lead ?? 0.05);
  }

  /** Makes or resumes the AudioContext; call it from a user gesture. */
  unlock(): Promise<void> {
    const ctx = this.context();
    return ctx.state === 'suspended' ? ctx.resume() : Promise.resolve();
  }

  /** True when audio is queued but the browser holds the context suspended (no gesture yet). */
  get blocked(): boolean {
    return this.ctx?.state === 'suspended' && this.nodes.size > 0;
  }

  /** Whether any source is scheduled or sounding. */
  get playing(): boolean {
    return this.nodes.size > 0;
  }

  /** Queues one `response.audio.delta` (pcm only; anything else is ignored). */
  push(delta: AudioDeltaLike): void {
    if (delta.format !== 'pcm') return;
    const ctx = this.context();
    let bytes = base64ToBytes(delta.audio);
    const odd = this.carry.get(delta.itemId);
    if (odd !== undefined) {
      this.carry.delete(delta.itemId);
      const joined = new Uint8Array(bytes.length + 1);
      joined[0] = odd;
      joined.set(bytes, 1);
      bytes = joined;
    }
    if (bytes.length % 2 === 1) this.carry.set(delta.itemId, bytes[bytes.length - 1]!);
    const samples = pcm16ToFloat32(bytes);
    let buffer: AudioBuffer | null = null;
    if (samples.length > 0) {
      buffer = ctx.createBuffer(1, samples.length, delta.sampleRate);
      buffer.getChannelData(0).set(samples);
    }
    const { turnId, itemId, kind, seq } = delta;
    this.apply(this.timeline.add({ turnId, itemId, kind, seq, duration: samples.length / delta.sampleRate, data: buffer }, ctx.currentTime));
  }

  /** `response.audio.clear`: drop what of the item has not played and go on with the next. */
  clear(itemId: string): void {
    this.carry.delete(itemId);
    this.apply(this.timeline.clear(itemId, this.now()));
  }

  /** Barge-in: silence everything now. Returns each turn that still had audio to play, with its played speech. */
  stop(): Cut[] {
    const { plan, cut } = this.timeline.stop(this.now());
    this.apply(plan);
    for (const node of this.nodes.values()) halt(node, 0);
    this.nodes.clear();
    this.carry.clear();
    this.notify();
    return cut;
  }

  /** Ignore the turn's audio from now on. */
  silence(turnId: string): void {
    this.timeline.silence(turnId);
  }

  /** Milliseconds of the turn's speech (fillers not counted) played so far. */
  playedMs(turnId: string): number {
    return this.timeline.playedMs(turnId, this.now());
  }

  private now(): number {
    return this.ctx?.currentTime ?? 0;
  }

  /** The player's AudioContext, made on first use; the microphone shares it. */
  context(): AudioContext {
    this.ctx ??= this.options.createContext?.() ?? new AudioContext();
    return this.ctx;
  }

  private apply(plan: Plan<AudioBuffer | null>): void {
    for (const { slot, at } of plan.stop) {
      const node = this.nodes.get(slot);
      if (!node) continue;
      halt(node, at);
      // Stopped at once: gone now. Stopped later (a cleared item hands over at now + lead): its `ended` removes it.
      if (at <= this.now()) {
        node.onended = null;
        this.nodes.delete(slot);
      }
    }
    const ctx = this.ctx;
    for (const slot of plan.start) {
      const old = this.nodes.get(slot);
      if (old) {
        old.onended = null;
        halt(old, 0); // not started yet: it never sounds
        this.nodes.delete(slot);
      }
      if (!slot.data || !ctx) continue;
      const node = ctx.createBufferSource();
      node.buffer = slot.data;
      node.connect(ctx.destination);
      node.onended = () => {
        if (this.nodes.get(slot) !== node) return;
        this.nodes.delete(slot);
        this.notify();
      };
      node.start(slot.start);
      this.nodes.set(slot, node);
    }
    this.notify();
  }

  private notify(): void {
    const playing = this.playing;
    if (playing === this.wasPlaying) return;
    this.wasPlaying = playing;
    this.options.onPlayingChange?.(playing);
  }
}

function halt(node: AudioBufferSourceNode, at: number): void {
  try {
    node.stop(at);
  } catch {
    // Older engines allow one stop() per source; a second one has nothing left to do.
  }
}
