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
  })
  .check(
    z.refine((m) => (m.sessionId === undefined) === (m.resumeToken === undefined), {
      message: 'sessionId and resumeToken go together: both to resume, neither to start a new session',
      path: ['resumeToken'],
    }),
  );

export const InputText = z.object({
  type: z.literal('input.text'),
  turnId,
  /**
   * The session the client is in (from session.started). Optional: with it the server reads the
   * session and the connection at once instead of one after the other; it is checked against the
   * connection's own session, never trusted alone.
   */
  sessionId: z.optional(uuid),
  text: z.string().check(
    z.maxLength(4000),
    z.refine((t) => t.trim().length > 0, 'text must not be empty'),
  ),
});

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
