/*
 * What every part of message handling shares: the ports a host passes in, one message as it
 * arrived, and the context a message is handled in.
 */
import type { TurnInput, TurnRecord } from '../checkpoint/record';
import type { SessionStore } from '../checkpoint/store';
import type { DialogueMap } from '../flow/map';
import type { Log } from '../observability/log';
import type { TurnMetricsSink } from '../observability/metrics';
import type { Clock } from '../runner/ports';
import type { TurnPorts } from '../runner/run-turn';
import type { TurnCosting } from '../cost/turn';
import type { AudioCache } from '../speech/audio-cache';
import type { PlayerTiming } from '../speech/player';
import type { Synthesizer, Voice } from '../speech/tts/port';
import type { Transcriber } from '../speech/stt/port';
import type { TranscribeAccess } from '../speech/stt/transcribe-access';
import type { UtteranceStore } from '../speech/stt/utterances';
import type { EarlyWork } from './early-work';
import type { ConnectionSender } from '../transport/sender';
import { traceIdFor } from '../checkpoint/trace';
import type { Auth } from './auth';
import type { ConnectionRecord, ConnectionStore } from './connections';
import type { Ids } from './ids';
import type { Limits } from './limits';
import { DEFAULT_LEASE_TIMING, type LeaseTiming } from './turn-lease';

/** Everything the turn handler needs, passed in: Lambda, the local runtime and tests differ only here. */
export interface TurnDeps extends Omit<TurnPorts, 'clock'> {
  store: SessionStore;
  connections: ConnectionStore;
  map: DialogueMap;
  auth: Auth;
  clock: Clock;
  ids: Ids;
  log: Log;
  /** Speech output; without it every session is text only. */
  speech?: SpeechDeps | undefined;
  /** Voice input; without a recognizer in it, a session asking for voice input gets `stt.unavailable`. */
  stt?: SttDeps | undefined;
  /** Answers prepared from partial transcripts (lib/session/early-work.ts); without it partials are ignored. */
  early?: EarlyWork | undefined;
  /** Where each turn's t1..t6 go (CloudWatch EMF in Lambda). */
  metrics?: TurnMetricsSink | undefined;
  /** Message rate, turns and session age (lib/session/limits.ts); without it nothing is limited. */
  limits?: Limits | undefined;
  /** The session lease's timings (tests shorten them). */
  leaseTiming?: Partial<LeaseTiming> | undefined;
  /** Prices and metering of each turn's cost ledger (lib/cost/turn.ts); without it turns carry no cost. */
  cost?: TurnCosting | undefined;
}

/** What the player needs from the host: a synthesizer (Polly or the local one), the audio cache, the voice per language. */
export interface SpeechDeps {
  synthesizer: Synthesizer | undefined;
  cache: AudioCache;
  voiceFor(language: string): Voice;
  /** Tests shorten the player's waits. */
  timing?: Partial<PlayerTiming>;
}

/** How a voice session's speech becomes text (lib/session/speech-input.ts). */
export interface SttDeps {
  /** Live transcription on the client: short-lived Amazon Transcribe streaming access (PARLEY_TRANSCRIBE_ROLE_ARN). */
  access?: TranscribeAccess | undefined;
  /** Finished utterances (`input.audio`): an OpenAI-compatible transcription endpoint (PARLEY_STT_BASE_URL). */
  transcriber?: Transcriber | undefined;
  /** Where `input.audio` chunks wait for their commit. */
  utterances: UtteranceStore;
}

/** What a spoken turn adds to its text: who transcribed it, and the stages before the server had it. */
export interface SpokenInput {
  stt: { provider: string; audioMs: number };
  stages: SpeechStages;
}

/** The stages of a spoken turn before its input reached the server (seed 004's t1 and t2). */
export interface SpeechStages {
  /** How long before the input's receipt the user's first audio came (t1 = receipt − leadMs). */
  leadMs: number;
  /** When the final transcript came, relative to the receipt (negative: before it, on the client). */
  finalMs: number;
}

export type RunnableInput = Exclude<TurnInput, { kind: 'interrupt' }>;

/** One client message as it arrived. */
export interface Inbound {
  connectionId: string;
  body: string;
  sender: ConnectionSender;
  /** Monotonic ms when the message reached the handler; turn metrics count from here. */
  receivedAtMs: number;
}

export type Ctx = Inbound & {
  deps: TurnDeps;
  log: Log;
  connection: ConnectionRecord;
  /** The head of the session the message names, read while the connection was: used only if they agree. */
  preloaded?: { sessionId: string; head: Promise<TurnRecord | undefined> };
};

/** The session's head: the one read ahead with the connection when the message named this session, else a read now. */
export const headOf = (ctx: Ctx, sessionId: string): Promise<TurnRecord | undefined> =>
  ctx.preloaded?.sessionId === sessionId ? ctx.preloaded.head : ctx.deps.store.loadHead(sessionId);

export const leaseTiming = (deps: TurnDeps): LeaseTiming => ({ ...DEFAULT_LEASE_TIMING, ...deps.leaseTiming });

export function sessionLog(log: Log, sessionId: string | undefined): Log {
  return sessionId ? log.with({ sessionId, traceId: traceIdFor(sessionId) }) : log;
}

export const round = (ms: number) => Math.round(ms * 1000) / 1000;

export { describeError as describe } from '../errors';
