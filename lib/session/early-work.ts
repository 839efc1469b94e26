/**
 * Early work on partial transcripts (seed 004, 2.4): while the user is still speaking, the client
 * sends the stable part of what it heard (`input.partial`); the server classifies it against the
 * session's current checkpoint, remembers the intent leader, and prepares the likely answer: it
 * renders the audio of what that answer would say and lets the actions port warm the webhook it
 * would run. Nothing is stored and nothing is said. The final input runs the turn as always and
 * decides; the audio it happens to need is already made, and a wrong guess costs only the
 * discarded work (its synthesis is still billed to the turn, so the cost ledger stays true).
 *
 * What is prepared lives in this host's memory, bounded and short-lived: a final input that lands
 * on another Lambda instance simply finds nothing and runs as it would have.
 */
import { committedSeq, type TurnRecord } from '../checkpoint/record';
import { emptyCheckpoint } from '../checkpoint/schema';
import type { ActionRunner } from '../actions/port';
import type { IntentClassifier } from '../flow/classifier';
import { isCue, runTurn, sessionLanguage } from '../runner/run-turn';
import type { AudioCache, CachedAudio } from '../speech/audio-cache';
import { cacheKey } from '../speech/audio-cache';
import type { AudioFormat } from '../speech/format';
import { concatBytes, pcmDurationMs } from '../speech/pcm';
import type { Voice } from '../speech/tts/port';
import { describe, type Ctx } from './context';

/** One turn's early work: the guess and the audio made for it. */
export interface PreparedTurn {
  /** The checkpoint the guess was made on: a turn that runs on another one ignores it. */
  readonly baseSeq: number | null;
  partials: number;
  /** The intent the latest partial was classified as (seed 004's leader guess); the final input decides. */
  intent: string | null;
  /** Audio by cache key; a promise, so a final input arriving mid-synthesis waits instead of synthesizing twice. */
  readonly audio: Map<string, Promise<CachedAudio | undefined>>;
  /** The keys the turn's player took from `audio`. */
  readonly used: Set<string>;
  /** Characters synthesized early: billed to the turn whether or not it used them. */
  ttsCharacters: number;
  /** Stops synthesis still running when the turn is dropped. */
  readonly abort: AbortController;
  readonly createdAt: number;
}

export interface EarlyWorkOptions {
  /** Turns remembered at once (oldest dropped first). @default 64 */
  maxTurns?: number;
  /** How long a guess waits for its final input. @default 30 s */
  ttlMs?: number;
  /** Items of an answer rendered ahead. @default 4 */
  maxItems?: number;
  /** How long the final turn waits for an item still being rendered before making it itself. @default 1500 ms */
  waitMs?: number;
  now?: () => number;
}

/** The host's bounded memory of prepared turns, keyed by session and turn id. */
export class EarlyWork {
  private readonly turns = new Map<string, PreparedTurn>();
  readonly maxItems: number;
  readonly waitMs: number;
  private readonly maxTurns: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(options: EarlyWorkOptions = {}) {
    this.maxTurns = options.maxTurns ?? 64;
    this.ttlMs = options.ttlMs ?? 30_000;
    this.maxItems = options.maxItems ?? 4;
    this.waitMs = options.waitMs ?? 1500;
    this.now = options.now ?? Date.now;
  }

  /** The turn's entry, made fresh when there is none or it was for another checkpoint. */
  begin(sessionId: string, turnId: string, baseSeq: number | null): PreparedTurn {
    this.expire();
    const key = `${sessionId}/${turnId}`;
    const known = this.turns.get(key);
    if (known && known.baseSeq === baseSeq) return known;
    known?.abort.abort();
    const fresh: PreparedTurn = {
      baseSeq,
      partials: 0,
      intent: null,
      audio: new Map(),
      used: new Set(),
      ttsCharacters: 0,
      abort: new AbortController(),
      createdAt: this.now(),
    };
    this.turns.delete(key);
    this.turns.set(key, fresh);
    while (this.turns.size > this.maxTurns) this.drop(this.turns.keys().next().value!);
    return fresh;
  }

  /** The turn's entry, if any; it stays until `forget` (the turn's player reads it while it plays). */
  peek(sessionId: string, turnId: string): PreparedTurn | undefined {
    this.expire();
    return this.turns.get(`${sessionId}/${turnId}`);
  }

  forget(sessionId: string, turnId: string): void {
    this.drop(`${sessionId}/${turnId}`);
  }

  get size(): number {
    return this.turns.size;
  }

  private drop(key: string): void {
    this.turns.get(key)?.abort.abort();
    this.turns.delete(key);
  }

  private expire(): void {
    const cutoff = this.now() - this.ttlMs;
    for (const [key, turn] of this.turns) if (turn.createdAt < cutoff) this.drop(key);
  }
}

/** The preview ends where the real turn would wait on something slow: a webhook or the LLM. */
class PreviewStop extends Error {}

/**
 * `input.partial`: classifies the text on the session's head and renders what the likely answer
 * would say. Runs the same runTurn as a real turn, on a copy of the checkpoint, with an actions
 * port that only warms and an LLM that is never called; everything it returns is discarded.
 */
export async function preparePartial(ctx: Ctx, sessionId: string, turnId: string, text: string, head: TurnRecord | undefined): Promise<void> {
  const { deps } = ctx;
  const early = deps.early;
  if (!early || head?.checkpoint.ended) return;
  // A turn id already used is an input that ran: nothing to prepare for it.
  if (committedSeq(head, turnId) !== undefined) return;
  const prepared = early.begin(sessionId, turnId, head?.seq ?? null);
  prepared.partials += 1;

  const input = { kind: 'text' as const, text };
  const checkpoint = head?.checkpoint ?? emptyCheckpoint();
  const language = sessionLanguage(deps.map, input, checkpoint);
  // Seed 004: the guess of each partial is remembered, as the turn's own logic classifies it (the
  // node renamed by a map migration included); the final classification decides.
  const classifier: IntentClassifier = {
    async classify(t, options) {
      const guess = await deps.classifier.classify(t, options);
      prepared.intent = guess.intent;
      return guess;
    },
  };

  const says: string[] = [];
  const actions: ActionRunner = {
    async run(name, context) {
      await deps.actions.warm?.(name, context);
      throw new PreviewStop();
    },
  };
  const turn = runTurn({ turnId, input, checkpoint, sessionId, map: deps.map, classifier, faq: deps.faq, actions, clock: deps.clock });
  try {
    for (let step = await turn.next(); !step.done; step = await turn.next()) {
      const event = step.value;
      if (!isCue(event)) continue;
      if (event.type === 'cue.say') says.push(event.text);
      // The LLM's answer is not known before it is asked; asking it on a guess would cost tokens.
      else if (event.on === 'llm') break;
    }
  } catch (err) {
    if (!(err instanceof PreviewStop)) {
      ctx.log.info('partial not prepared', { turnId, error: describe(err) });
      return;
    }
  } finally {
    await turn.return(undefined as never).catch(() => undefined);
  }
  // Awaited: in Lambda nothing runs after the handler returns (the instance is frozen), so the
  // audio must be made within this message's invocation to be there for the final input.
  await renderAhead(ctx, prepared, says, language);
}

/**
 * Renders the audio of the first items of the answer, those not rendered for an earlier partial
 * already (a later partial often differs only by an entity) and not in the audio cache.
 */
async function renderAhead(ctx: Ctx, prepared: PreparedTurn, says: readonly string[], language: string): Promise<void> {
  const { deps } = ctx;
  const format = ctx.connection.audio;
  const synthesizer = deps.speech?.synthesizer;
  // MP3 durations are not known without decoding: only PCM audio is rendered ahead.
  if (!format || format.format !== 'pcm' || !synthesizer || !deps.speech) return;
  const voice = deps.speech.voiceFor(language);
  const started: Array<Promise<unknown>> = [];
  for (const text of says.slice(0, deps.early!.maxItems)) {
    const key = cacheKey(text, voice, format);
    // A turn's partials together render a bounded number of items: each costs synthesis.
    if (prepared.audio.has(key) || prepared.audio.size >= deps.early!.maxItems * RENDERS_PER_ITEM) continue;
    const audio = render(ctx, prepared, text, voice, format);
    prepared.audio.set(key, audio);
    started.push(audio);
  }
  await Promise.all(started);
}

/** How many times `maxItems` one turn's partials may render in all (each partial's answer may differ). */
const RENDERS_PER_ITEM = 4;

async function render(ctx: Ctx, prepared: PreparedTurn, text: string, voice: Voice, format: AudioFormat): Promise<CachedAudio | undefined> {
  const speech = ctx.deps.speech!;
  try {
    // Static prompts are in the cache already: nothing to make.
    if (await speech.cache.get(text, voice, format)) return undefined;
    prepared.ttsCharacters += text.length;
    const chunks: Uint8Array[] = [];
    for await (const chunk of speech.synthesizer!.synthesize({ text, voice, format, signal: prepared.abort.signal })) chunks.push(chunk);
    if (prepared.abort.signal.aborted) return undefined;
    const audio = concatBytes(chunks);
    return { audio, durationMs: pcmDurationMs(audio.length, format.sampleRate), marks: [] };
  } catch (err) {
    ctx.log.info('early audio not rendered', { error: describe(err) });
    return undefined;
  }
}

/**
 * The audio cache a turn's player reads: what was rendered early for this turn first (waiting a
 * little for an item still being made), then the host's cache.
 */
export function withPrepared(cache: AudioCache, prepared: PreparedTurn | undefined, waitMs: number): AudioCache {
  if (!prepared || prepared.audio.size === 0) return cache;
  return {
    async get(text, voice, format) {
      const key = cacheKey(text, voice, format);
      const pending = prepared.audio.get(key);
      if (pending) {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, waitMs, undefined)));
        const hit = await Promise.race([pending, late]).finally(() => clearTimeout(timer));
        if (hit) {
          prepared.used.add(key);
          return hit;
        }
      }
      return cache.get(text, voice, format);
    },
  };
}
