/**
 * Parley WebSocket protocol, version 1.
 *
 * The single definition shared by the turn handler, the local gateway, the chat widget, the terminal
 * client and the tests. Every message is one JSON object with a `type`; API Gateway routes on
 * `$request.body.type`, and everything lands on `$default`.
 *
 * Written with `zod/mini`, whose functions tree-shake: the browser widget bundles this module (for
 * EventAssembler), and with classic `zod` it was about 19 KB gzipped larger (40 KB instead of 21).
 * The schemas accept, reject and default exactly as their classic forms did. mini loads no
 * error-message locale: the server's `parseClientMessage`, which shows issue messages to clients,
 * lives in ./parse and sets one. Keep ./parse (and any classic `zod`) out of this module's imports.
 */
import * as z from 'zod/mini';
import { CostLedger } from '../cost/schema';
import { AudioFormat } from '../speech/format';

export const PROTOCOL_VERSION = '1';

/** API Gateway WebSocket limits (AWS quotas; none can be raised). */
export const LIMITS = {
  /** One WebSocket frame, either direction. Larger frames close the connection with 1009. */
  frameBytes: 32 * 1024,
  /** One message; billed per started 32 KB. */
  messageBytes: 128 * 1024,
  /**
   * What Parley accepts in one client message. Browsers send a message as a single frame, so anything
   * near the frame limit would be cut off by the gateway before we could answer; a margin leaves room
   * for a typed `protocol.too_large`.
   */
  clientMessageBytes: 16 * 1024,
  /** Posted server messages stay under one frame, with room for the framing envelope. */
  serverMessageBytes: 32 * 1024 - 512,
  /**
   * Base64 characters of audio in one `input.audio` chunk: with its envelope the message stays under
   * `clientMessageBytes` (3 bytes of audio per 4 characters: 10,500 bytes a chunk).
   */
  audioChunkChars: 14_000,
  /** Chunks of one utterance (`input.audio` seq 0 .. 255). */
  audioChunks: 256,
  /** Bytes of one utterance: 30 s of 16-bit PCM at 16 kHz is 960,000. */
  utteranceBytes: 1024 * 1024,
} as const;

const uuid = z.uuid();
/** A client-made UUID identifying one user turn. */
const turnId = uuid;

// ---------------------------------------------------------------------------------------------------
// Client -> server

export const Hello = z.object({
  type: z.literal('hello'),
  version: z.string().check(z.minLength(1), z.maxLength(16)),
  /** Credentials, when the connection had none at $connect: an API key, or a JWT (`token`). */
  auth: z.optional(
    z.object({
      apiKey: z.optional(z.string().check(z.minLength(1), z.maxLength(256))),
      token: z.optional(z.string().check(z.minLength(1), z.maxLength(8192))),
    }),
  ),
});

/**
 * zod's record drops a `__proto__` key without validating its value (a plain object cannot hold it
 * as data), so a message carrying one would be accepted with that entry silently gone: refused instead.
 */
const noProtoKey = z.custom<unknown>(
  (v) => !(typeof v === 'object' && v !== null && Object.hasOwn(v, '__proto__')),
  '__proto__ is not allowed as a key',
);

/**
 * Voice input, asked for at `session.start`: the audio the client will capture. session.started
 * answers with how to transcribe it (`speechInput`), or `stt.unavailable` when this server cannot.
 */
export const SpeechInputRequest = z.strictObject({
  /** `pcm`: 16-bit signed little-endian mono; `ogg-opus`: Opus in an Ogg container (upload only). */
  encoding: z._default(z.enum(['pcm', 'ogg-opus']), 'pcm'),
  /** Transcribe streaming takes 8,000 to 48,000 Hz. */
  sampleRate: z._default(z.number().check(z.int(), z.gte(8000), z.lte(48000)), 16000),
});
export type SpeechInputRequest = z.infer<typeof SpeechInputRequest>;

export const SessionStart = z
  .object({
    type: z.literal('session.start'),
    sessionId: z.optional(uuid),
    resumeToken: z.optional(z.string().check(z.minLength(16), z.maxLength(128))),
    /**
     * Resuming: the last turn whose turn.completed the client got. The server re-sends the outcome
     * of the session's last turn when it is not this one (after waiting for a turn still running).
     */
    lastTurnId: z.optional(uuid),
    metadata: z.optional(
      z
        .pipe(
          noProtoKey,
          z.record(z.string().check(z.maxLength(64)), z.union([z.string().check(z.maxLength(512)), z.number(), z.boolean()])),
        )
        .check(z.refine((m) => Object.keys(m).length <= 32, 'at most 32 metadata entries')),
    ),
    /**
     * Speak the replies in this format (`{ "format": "pcm", "sampleRate": 16000 }`). Without it the
     * session is text only. session.started says what the server will actually send.
     */
    audio: z.optional(AudioFormat),
    /**
     * Resuming: send the conversation so far (`session.history`) after session.started, so a
     * reloaded page can show it. It then stands in for the re-sent outcome of a missed turn.
     */
    history: z.optional(z.boolean()),
    /** Voice input: the user will speak. Without it the session takes typed input only. */
    speechInput: z.optional(SpeechInputRequest),
  })
  .check(
    z.refine((m) => (m.sessionId === undefined) === (m.resumeToken === undefined), {
      message: 'sessionId and resumeToken go together: both to resume, neither to start a new session',
      path: ['resumeToken'],
    }),
  );


const ms = z.number().check(z.int(), z.nonnegative(), z.lte(600_000));

/**
 * How long ago, as the client measured it when it sent the message, the user's speech began and
 * its final transcript arrived: the turn's t1 and t2 (seed 004), without comparing two clocks.
 */
export const SpeechTimings = z.strictObject({
  /** Milliseconds from the first audio of the utterance to sending this message. */
  sinceFirstAudioMs: ms,
  /** Milliseconds from the final transcript to sending this message (0 for input.audio.commit). */
  sinceFinalMs: z._default(ms, 0),
  /** Milliseconds of audio streamed to the recognizer (what Transcribe bills). */
  audioMs: z.optional(ms),
});
export type SpeechTimings = z.infer<typeof SpeechTimings>;

/** The session the client is in (from session.started): read ahead with the connection, checked against it, never trusted alone. */
const sessionHint = z.optional(uuid);

const userText = z.string().check(
  z.maxLength(4000),
  z.refine((t) => t.trim().length > 0, 'text must not be empty'),
);

export const InputText = z
  .object({
    type: z.literal('input.text'),
    turnId,
    /**
     * The session the client is in (from session.started). Optional: with it the server reads the
     * session and the connection at once instead of one after the other; it is checked against the
     * connection's own session, never trusted alone.
     */
    sessionId: sessionHint,
    text: userText,
    /** `speech`: the final transcript of what the user said (live transcription on the client). */
    source: z.optional(z.enum(['typed', 'speech'])),
    /** With `source: "speech"`: when the utterance began and its transcript arrived. */
    speech: z.optional(SpeechTimings),
  })
  .check(
    z.refine((m) => m.speech === undefined || m.source === 'speech', {
      message: 'speech timings go with source "speech"',
      path: ['speech'],
    }),
  );

/**
 * A stable partial transcript of the turn the user is still speaking (`turnId` is the id its final
 * input will carry). The server may classify it and prepare the likely answer; nothing is stored,
 * and the final input decides.
 */
export const InputPartial = z.object({
  type: z.literal('input.partial'),
  turnId,
  sessionId: sessionHint,
  text: userText,
});

/**
 * One piece of a finished utterance (the self-hostable path): base64 of the session's
 * `speechInput` encoding, numbered from 0. Chunks may arrive in any order; `input.audio.commit`
 * says how many there are.
 */
export const InputAudio = z.object({
  type: z.literal('input.audio'),
  turnId,
  seq: z.number().check(z.int(), z.nonnegative(), z.lt(LIMITS.audioChunks)),
  audio: z.string().check(z.minLength(4), z.maxLength(LIMITS.audioChunkChars), z.regex(/^[A-Za-z0-9+/]+={0,2}$/, 'audio must be base64')),
});

/** The utterance is complete: transcribe its `chunks` pieces and run the turn on the transcript. */
export const InputAudioCommit = z.object({
  type: z.literal('input.audio.commit'),
  turnId,
  sessionId: sessionHint,
  chunks: z.number().check(z.int(), z.positive(), z.lte(LIMITS.audioChunks)),
  speech: z.optional(SpeechTimings),
});

/** A fresh `speech.access` before the last one expires (live transcription only). */
export const SpeechRenew = z.object({ type: z.literal('speech.renew') });

export const ResponseCancel = z.object({
  type: z.literal('response.cancel'),
  turnId,
  /**
   * Milliseconds of the turn's speech audio (kind `speech`, fillers not counted) the client played
   * before it stopped, so the words the user never heard are cut from the stored answer.
   */
  playedMs: z.optional(z.number().check(z.int(), z.nonnegative())),
});

export const SessionStop = z.object({
  type: z.literal('session.stop'),
  reason: z.optional(z.string().check(z.maxLength(200))),
});

export const ClientMessage = z.discriminatedUnion('type', [
  Hello,
  SessionStart,
  InputText,
  InputPartial,
  InputAudio,
  InputAudioCommit,
  SpeechRenew,
  ResponseCancel,
  SessionStop,
]);
export type ClientMessage = z.infer<typeof ClientMessage>;
export type ClientMessageType = ClientMessage['type'];

// ---------------------------------------------------------------------------------------------------
// Errors

export const ErrorCode = z.enum([
  'protocol.invalid_json',
  'protocol.invalid_message',
  'protocol.order',
  'protocol.version_unsupported',
  'protocol.too_large',
  'auth.required',
  'auth.invalid',
  'session.not_found',
  'session.ended',
  'session.limit',
  'rate.limited',
  'turn.conflict',
  /** Voice input asked for, but this server has no speech recognizer (or could not reach it to issue access). */
  'stt.unavailable',
  /** The recognizer failed on this utterance: nothing was stored; the next utterance is tried afresh. */
  'stt.failed',
  'server.internal',
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

// ---------------------------------------------------------------------------------------------------
// Server -> client

export const Usage = z.object({
  /** LLM tokens per model. */
  llm: z._default(
    z.record(z.string(), z.object({ inputTokens: z.number(), outputTokens: z.number(), cachedTokens: z.number() })),
    {},
  ),
  ttsCharacters: z._default(z.number(), 0),
  sttSeconds: z._default(z.number(), 0),
  /*
   * What the cost ledger (lib/cost) needs beyond the above, metered per turn. Optional rather than
   * defaulted: a record from before metering parses as it was, and says "not measured", not "zero".
   */
  /** `ttsCharacters` by engine: Polly's (`neural`, `standard`, `generative`, `long-form`) or the local `espeak`. */
  ttsCharactersByEngine: z.optional(z.record(z.string(), z.number())),
  /** `sttSeconds` by recognizer: `transcribe` (live, on the client), `openai`, or `self-hosted`. */
  sttSecondsByProvider: z.optional(z.record(z.string(), z.number())),
  /** Lambda invocations that ran the turn, their billed time (1 ms steps) and GB-seconds (time × memory). */
  lambdaRequests: z.optional(z.number()),
  lambdaMs: z.optional(z.number()),
  lambdaGbSeconds: z.optional(z.number()),
  /** DynamoDB request units the turn's invocation consumed, its own commit included. */
  dynamoReadUnits: z.optional(z.number()),
  dynamoWriteUnits: z.optional(z.number()),
  /** Of `dynamoWriteUnits`, the put of the turn record itself (one per started KB of it). */
  dynamoRecordWriteUnits: z.optional(z.number()),
  /** API Gateway messages, in and out, each counted per started 32 KB as they are billed; turn.completed included. */
  apiGatewayMessages: z.optional(z.number()),
});
export type Usage = z.infer<typeof Usage>;

/**
 * Per-turn timings in milliseconds. t1..t6 (seed 004) count from t1 and are present when the stage
 * happened: t1 first user audio (text turns: the input's receipt), t2 final transcript (text: = t1),
 * t3 logic start, t4 LLM request, t5 first TTS audio chunk, t6 first bot audio sent.
 */
export const Metrics = z.catchall(
  z.object({
    t1: z.optional(z.number()),
    t2: z.optional(z.number()),
    t3: z.optional(z.number()),
    t4: z.optional(z.number()),
    t5: z.optional(z.number()),
    t6: z.optional(z.number()),
    /** Runner time: flow, LLM, everything until quiet. */
    runMs: z.number(),
    /** The conditional put of the turn record (absent in the stored record, which that put writes). */
    commitMs: z.optional(z.number()),
    /** From the handler receiving the message until the turn was committed (stored: until the put began). */
    totalMs: z.number(),
  }),
  z.number(),
);
export type Metrics = z.infer<typeof Metrics>;

const event = <T extends string, S extends z.core.$ZodShape>(type: T, shape: S) =>
  z.object({ type: z.literal(type), ...shape });

/**
 * How a voice session's speech becomes text. `transcribe`: the client streams its microphone to
 * Amazon Transcribe with the `speech.access` the server sends (and renews on `speech.renew`), then
 * sends the final transcript as `input.text`. `upload`: the client sends each finished utterance as
 * `input.audio` chunks and `input.audio.commit`; the server transcribes it.
 */
export const SpeechInput = z.object({
  mode: z.enum(['transcribe', 'upload']),
  /** What the recognizer listens for (`en-US`). */
  language: z.string(),
  encoding: z.enum(['pcm', 'ogg-opus']),
  sampleRate: z.number().check(z.int()),
});
export type SpeechInput = z.infer<typeof SpeechInput>;

/**
 * Short-lived access to Amazon Transcribe streaming for this session, scoped to
 * StartStreamTranscriptionWebSocket and nothing else. Either open `url` (a presigned WebSocket URL,
 * until `urlExpiresAt`) or use `credentials` with the AWS SDK (until `expiresAt`). Secrets: never log them.
 */
export const SpeechAccess = event('speech.access', {
  region: z.string(),
  languageCode: z.string(),
  encoding: z.enum(['pcm', 'ogg-opus', 'flac']),
  sampleRate: z.number().check(z.int()),
  url: z.string(),
  /** Epoch ms: Transcribe refuses to open `url` after it (a stream already open goes on). */
  urlExpiresAt: z.number(),
  credentials: z.object({ accessKeyId: z.string(), secretAccessKey: z.string(), sessionToken: z.string() }),
  /** Epoch ms: the credentials stop working; send `speech.renew` before. */
  expiresAt: z.number(),
});

/** What the recognizer heard in an uploaded utterance; empty: nothing was recognized, listen again. */
export const InputTranscript = event('input.transcript', {
  turnId: z.string(),
  text: z.string(),
});

export const HelloAck = event('hello.ack', { version: z.string() });
export const SessionStarted = event('session.started', {
  sessionId: uuid,
  resumeToken: z.string(),
  traceId: z.string().check(z.regex(/^[0-9a-f]{32}$/)),
  resumed: z.boolean(),
  /** The node the conversation stands at, so a resumed client can show where it is. */
  node: z.string(),
  /** The audio the server sends: the asked format or the nearest it can make; null for text only. */
  audio: z.nullable(AudioFormat),
  /**
   * Answers `session.start { speechInput }`: how this session's speech becomes text, or null when
   * this server cannot (an `stt.unavailable` error follows). Absent when voice input was not asked for.
   */
  speechInput: z.optional(z.nullable(SpeechInput)),
});
/** One line of a conversation shown again: what the user said or the bot's whole reply to it. */
export const HistoryMessage = z.object({
  role: z.enum(['user', 'assistant']),
  text: z.string(),
  /** The user cut the reply short: `text` is what was heard. */
  interrupted: z.optional(z.boolean()),
});
export type HistoryMessage = z.infer<typeof HistoryMessage>;
/**
 * The conversation so far, oldest first, answering `session.start { history: true }` on a resume.
 * It is what the session remembers word for word; `earlier` says older lines were folded into a
 * summary and are not shown.
 */
export const SessionHistory = event('session.history', {
  messages: z.array(HistoryMessage),
  earlier: z.boolean(),
});
export const TurnStarted = event('turn.started', { turnId: z.string() });
export const TextDelta = event('response.text.delta', { turnId: z.string(), text: z.string() });
export const TextDone = event('response.text.done', { turnId: z.string(), text: z.string() });
/** Said while a slow step runs (a webhook, the LLM): show it as a passing hint, not as the reply. */
export const Filler = event('response.filler', {
  turnId: z.string(),
  key: z.string(),
  text: z.string(),
  /** The audio item that speaks it, in audio sessions. */
  itemId: z.optional(z.string()),
});
/**
 * Speech, streamed: one playlist item (a prompt, a sentence of an answer, a filler) is one
 * `itemId`; its chunks come in `seq` order and are played in the order items start. Audio is
 * base64 of `format` (pcm: 16-bit little-endian mono), every message within one frame.
 */
export const AudioDelta = event('response.audio.delta', {
  turnId: z.string(),
  itemId: z.string(),
  seq: z.number().check(z.int(), z.nonnegative()),
  kind: z.enum(['speech', 'filler']),
  format: z.enum(['pcm', 'mp3']),
  sampleRate: z.number().check(z.int(), z.positive()),
  audio: z.string(),
});
/** The item's audio is complete. */
export const AudioDone = event('response.audio.done', {
  turnId: z.string(),
  itemId: z.string(),
  kind: z.enum(['speech', 'filler']),
  durationMs: z.number().check(z.nonnegative()),
});
/** Drop what is still buffered of this item (a filler the answer overtook) and play on. */
export const AudioClear = event('response.audio.clear', { turnId: z.string(), itemId: z.string() });
/**
 * The moments a voice session hears as fillers, for any client: `typing` when slow work starts,
 * `still_working` each time the neutral filler would start.
 */
export const Status = event('response.status', { turnId: z.string(), status: z.enum(['typing', 'still_working']) });
export const NodeTransition = event('node.transition', {
  turnId: z.string(),
  from: z.nullable(z.string()),
  to: z.string(),
});
export const TurnCompleted = event('turn.completed', {
  turnId: z.string(),
  /** This turn's usage. */
  usage: Usage,
  /** The session's usage so far, this turn included. */
  sessionUsage: z.optional(Usage),
  /** `usage` priced (lib/cost): one line per model, engine and AWS service, and the total in USD. */
  cost: z.optional(CostLedger),
  /** `sessionUsage` priced. */
  sessionCost: z.optional(CostLedger),
  metrics: Metrics,
});
export const SessionEnded = event('session.ended', { reason: z.string() });
export const SessionStopped = event('session.stopped', { reason: z.string() });
export const ErrorEvent = event('error', {
  code: ErrorCode,
  message: z.string(),
  turnId: z.optional(z.string()),
  /** `rate.limited`: the next message may pass after this many milliseconds. */
  retryAfterMs: z.optional(z.number().check(z.int(), z.nonnegative())),
});
/**
 * One piece of a server event too large for a single frame. The client joins the `data` of all
 * `count` parts with the same `id` in `index` order and parses the result as one event.
 */
export const EventPart = event('event.part', {
  id: z.string(),
  index: z.number().check(z.int(), z.nonnegative()),
  count: z.number().check(z.int(), z.positive()),
  data: z.string(),
});

export const ServerEvent = z.discriminatedUnion('type', [
  HelloAck,
  SessionStarted,
  SessionHistory,
  SpeechAccess,
  InputTranscript,
  TurnStarted,
  TextDelta,
  TextDone,
  Filler,
  AudioDelta,
  AudioDone,
  AudioClear,
  Status,
  NodeTransition,
  TurnCompleted,
  SessionEnded,
  SessionStopped,
  ErrorEvent,
  EventPart,
]);
export type ServerEvent = z.infer<typeof ServerEvent>;
export type ServerEventOf<T extends ServerEvent['type']> = Extract<ServerEvent, { type: T }>;

/**
 * One WebSocket message from the server: a single event, or several as a JSON array, in order.
 * Events a turn produces back to back travel in one message: fewer PostToConnection calls, fewer
 * billed messages, less latency.
 */
export const ServerMessage = z.union([ServerEvent, z.array(ServerEvent).check(z.minLength(1))]);
export type ServerMessage = z.infer<typeof ServerMessage>;

/**
 * Client side of the framing: unpacks arrays and joins `event.part` pieces back into events.
 * One instance per connection.
 */
export class EventAssembler {
  private readonly pending = new Map<string, string[]>();

  /** Every complete event a raw server message carries, in order; throws on a malformed message. */
  receive(data: string): ServerEvent[] {
    const message = ServerMessage.parse(JSON.parse(data));
    const events: ServerEvent[] = [];
    for (const event of Array.isArray(message) ? message : [message]) {
      const complete = this.accept(event);
      if (complete) events.push(complete);
    }
    return events;
  }

  /** Returns the complete event, or undefined while parts are still missing. */
  accept(event: ServerEvent): ServerEvent | undefined {
    if (event.type !== 'event.part') return event;
    const parts = this.pending.get(event.id) ?? new Array<string>(event.count);
    parts[event.index] = event.data;
    if (parts.filter((p) => p !== undefined).length < event.count) {
      this.pending.set(event.id, parts);
      return undefined;
    }
    this.pending.delete(event.id);
    return ServerEvent.parse(JSON.parse(parts.join('')));
  }
}
