/*
 * OpenTelemetry tracing: one span per turn, one per provider call (LLM, safety check, TTS, STT,
 * webhook, DynamoDB), every one of a session under the trace id traceIdFor(sessionId).
 *
 * Off by default. This module imports only @opentelemetry/api; the SDK and the exporter load with
 * startTracing (lib/observability/tracing-sdk.ts), so a cold start with tracing off pays for none of
 * them, and the hosts decorate the ports (tracedLlmPorts, tracedSynthesizer, tracedActions,
 * traceDynamo) only when tracing is on: with it off, a turn runs the very adapters it runs without
 * this module, plus one check in inTurnSpan.
 *
 * The span a call belongs to is found through OpenTelemetry's context (AsyncLocalStorage), never
 * through module state: the local runtime serves the turns of many sessions in one process at once.
 * `active` below is the process's tracer (set once at start, like an SDK client), not a span.
 *
 * Spans carry ids, names, counts and timings, never what was said, headers, bodies or error
 * messages (they can quote a response): a trace backend is not where conversation text belongs.
 */
import { createHash } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { context, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import type { ActionOutcome, ActionRunner } from '../actions/port';
import { traceIdFor } from '../checkpoint/trace';
import type { LlmClient, LlmRequest, LlmStreamEvent, SafetyChecker } from '../llm/port';
import type { Usage } from '../protocol/v1';
import type { LlmPorts } from '../runner/llm-turn';
import type { SynthesisRequest, Synthesizer } from '../speech/tts/port';
import type { Log } from './log';
import { describeError } from '../errors';

export const TRACER_NAME = 'parley';

/** What startTracing installed: the tracer every helper here starts its spans with. */
let active: { tracer: Tracer } | undefined;

// ---------------------------------------------------------------------------------------------
// Trace ids and links

// Like the trace id's prefix: changing it would move every live session's root span.
const ROOT_SPAN_PREFIX = 'parley.session-root.v1:';

/** The span id of a session's root (16 hex digits), derived like the trace id: the parent of every turn span. */
export function sessionRootSpanId(sessionId: string): string {
  const id = createHash('sha256').update(ROOT_SPAN_PREFIX + sessionId).digest('hex').slice(0, 16);
  // An all-zero span id is invalid (W3C): one chance in 2^64, but then the turn would start a random trace.
  return id === '0000000000000000' ? '0000000000000001' : id;
}

/**
 * The context a session's spans start in: a remote parent span context whose trace id is
 * traceIdFor(sessionId) and whose span id is sessionRootSpanId(sessionId).
 *
 * Why a remote parent rather than a custom IdGenerator: the SDK takes a child's trace id from its
 * parent, so the turn span gets the session's trace id through the public API alone, in whatever
 * Lambda serves the turn, with nothing stored. An IdGenerator is asked for ids without a context, so
 * it would have to guess which session a new root span belongs to.
 *
 * The consequence for trace viewers: the session root span is never exported (it would have to end
 * when the conversation ends, which no invocation knows). Each turn span names it as its parent, so
 * Jaeger shows the turns as top-level spans with a "missing parent" warning, Tempo/Grafana title
 * the trace "<root span not yet received>", and X-Ray lists the turns as separate segments of one
 * trace. The turns are all there, in order, in one trace.
 */
export function sessionContext(sessionId: string, base: Context = context.active()): Context {
  return trace.setSpanContext(base, {
    traceId: traceIdFor(sessionId),
    spanId: sessionRootSpanId(sessionId),
    // Sampled: the SDK's default parent-based sampler then records every turn. With
    // OTEL_TRACES_SAMPLER=traceidratio the decision is made on the trace id, which is the session's:
    // a conversation is then kept or dropped whole.
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
  });
}

/**
 * Runs `work` in the session's trace, so what a message does around its turn (the lease, the
 * idempotency look-up, a cancel, a resume's reads) lands in the conversation's trace as children of
 * the session root. Without tracing, or before a session is known, it just runs.
 */
export function inSessionTrace<T>(sessionId: string | undefined, work: () => Promise<T>): Promise<T> {
  if (!active || !sessionId) return work();
  return context.with(sessionContext(sessionId), work);
}

/** The placeholders a trace URL template may use. */
export const TRACE_URL_PLACEHOLDERS = ['{traceId}', '{xrayTraceId}', '{sessionId}'] as const;

/**
 * A session's trace id and, given a URL template (PARLEY_TRACE_URL), a link to its trace: the replay
 * report links each turn with it. `{traceId}` is the W3C id (Jaeger, Tempo, Honeycomb),
 * `{xrayTraceId}` the same id as X-Ray writes it (`1-` + 8 + `-` + 24 hex digits), `{sessionId}` the
 * session id (URL-encoded). Without a template, or one naming no placeholder, there is no URL.
 */
export function traceLink(sessionId: string, urlTemplate?: string): { traceId: string; url?: string } {
  const traceId = traceIdFor(sessionId);
  if (!urlTemplate || !TRACE_URL_PLACEHOLDERS.some((p) => urlTemplate.includes(p))) return { traceId };
  const url = urlTemplate
    .replaceAll('{traceId}', traceId)
    .replaceAll('{xrayTraceId}', `1-${traceId.slice(0, 8)}-${traceId.slice(8)}`)
    .replaceAll('{sessionId}', encodeURIComponent(sessionId));
  return { traceId, url };
}

// ---------------------------------------------------------------------------------------------
// Setting up

export interface TracingOptions {
  /**
   * Where spans go: 'otlp' exports over OTLP/HTTP to the endpoint the standard variables name
   * (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces, else
   * http://localhost:4318/v1/traces), with OTEL_EXPORTER_OTLP_(TRACES_)HEADERS; or an exporter object
   * (tests and the bench pass an InMemorySpanExporter).
   */
  exporter: 'otlp' | import('@opentelemetry/sdk-trace-base').SpanExporter;
  /** OTLP encoding; default http/protobuf (the OTLP default; what AWS's OTLP endpoints take). */
  protocol?: 'http/protobuf' | 'http/json' | undefined;
  /** OTLP only: the endpoint, overriding the variables (tests). */
  url?: string | undefined;
  /**
   * Longest an export may take, retries included: a dead collector costs a Lambda this much per
   * invocation at most. Default: OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT, else 2 000 ms (the SDK's own
   * default, 10 s, is a long time to bill for telemetry).
   */
  exportTimeoutMs?: number | undefined;
  /** 'batch' (default) queues spans and exports them together; 'simple' exports each as it ends (tests). */
  processor?: 'batch' | 'simple';
  /** Export failures are reported here (warn), through OpenTelemetry's diag logger. */
  log?: Log | undefined;
  /** Extra resource attributes (service.name is `parley`; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override). */
  resource?: Attributes;
}

export interface Tracing {
  /**
   * Exports every span ended so far. Lambda freezes the process once the handler returns, so the turn
   * handler awaits this before returning; it gives up after the export timeout (+ a margin), so a
   * collector that does not answer delays the invocation's end by that much at most, never the turn.
   */
  flush(): Promise<void>;
  /** Flushes, then uninstalls: the global tracer provider and context manager return to the no-op ones. */
  shutdown(): Promise<void>;
}

/** Turns tracing on for this process: loads the SDK, installs it globally, and makes the helpers here record. */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  if (active) throw new Error('tracing is already on in this process');
  const sdk = await import('./tracing-sdk');
  const installed = await sdk.installTracing(options);
  active = { tracer: installed.tracer };
  return {
    flush: installed.flush,
    async shutdown() {
      if (active?.tracer === installed.tracer) active = undefined;
      await installed.shutdown();
    },
  };
}

/** Whether startTracing has run (and not shut down): hosts decorate their ports when their config says so, this says whether spans are recorded. */
export const tracingActive = (): boolean => active !== undefined;

/** The environment's tracing settings (lib/config/env.ts): PARLEY_TRACING and the OTLP protocol. */
export interface TracingEnv {
  /** Unset means off. */
  PARLEY_TRACING?: 'off' | 'otlp' | undefined;
  OTEL_EXPORTER_OTLP_PROTOCOL?: 'http/protobuf' | 'http/json' | undefined;
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?: 'http/protobuf' | 'http/json' | undefined;
}

/**
 * Starts tracing as the environment says, or returns undefined when it is off (the default). The
 * promise never rejects: an SDK that fails to start is logged and the turns run untraced, as they
 * would with tracing off.
 */
export function startTracingFromEnv(env: TracingEnv, log: Log): Promise<Tracing | undefined> | undefined {
  if (env.PARLEY_TRACING !== 'otlp') return undefined;
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL;
  return startTracing({ exporter: 'otlp', ...(protocol ? { protocol } : {}), log }).catch((err: unknown) => {
    log.warn('tracing could not start; turns run untraced', { error: describeError(err) });
    return undefined;
  });
}

// ---------------------------------------------------------------------------------------------
// The turn span

/** What a turn span knows when it starts. */
export interface TurnSpanStart {
  sessionId: string;
  turnId: string;
  /** The seq the turn's record will get. */
  seq: number;
  inputKind: string;
  /** The flow node before the turn (null: none yet). */
  nodeBefore: string | null;
}

/** What the turn span learns once the turn is stored. */
export interface TurnSpan {
  committed(record: { status: string; checkpoint: { currentNode: string | null }; usage: Usage }): void;
}

const UNTRACED_TURN: TurnSpan = { committed: () => undefined };

/**
 * Runs a turn inside its `parley.turn` span, a child of the session root (sessionContext): every
 * provider call the turn makes is a child of it. With tracing off it runs `run` bare.
 */
export function inTurnSpan<T>(start: TurnSpanStart, run: (span: TurnSpan) => Promise<T>): Promise<T> {
  const tracing = active;
  if (!tracing) return run(UNTRACED_TURN);
  const attributes: Attributes = {
    'session.id': start.sessionId,
    'parley.session.id': start.sessionId,
    'parley.turn.id': start.turnId,
    'parley.turn.seq': start.seq,
    'parley.input.kind': start.inputKind,
    ...(start.nodeBefore === null ? {} : { 'parley.node.before': start.nodeBefore }),
  };
  return tracing.tracer.startActiveSpan('parley.turn', { kind: SpanKind.SERVER, attributes }, sessionContext(start.sessionId), async (span) => {
    try {
      return await run({
        committed(record) {
          let input = 0;
          let output = 0;
          let cached = 0;
          for (const u of Object.values(record.usage.llm)) {
            input += u.inputTokens;
            output += u.outputTokens;
            cached += u.cachedTokens;
          }
          span.setAttributes({
            'parley.turn.status': record.status,
            ...(record.checkpoint.currentNode === null ? {} : { 'parley.node.after': record.checkpoint.currentNode }),
            'parley.usage.llm.input_tokens': input,
            'parley.usage.llm.output_tokens': output,
            'parley.usage.llm.cached_tokens': cached,
            'parley.usage.llm.models': Object.keys(record.usage.llm),
            'parley.usage.tts_characters': record.usage.ttsCharacters,
            'parley.usage.stt_seconds': record.usage.sttSeconds,
          });
        },
      });
    } catch (err) {
      failed(span, errorType(err));
      throw err;
    } finally {
      span.end();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Provider calls

/** What a provider call may add to its span while it runs. */
export interface CallSpan {
  set(attributes: Attributes): void;
  /** Marks the call failed without throwing (an adapter that answers failures as values). */
  fail(errorType: string): void;
}

const UNTRACED_CALL: CallSpan = { set: () => undefined, fail: () => undefined };

/** The span a provider call joins, or undefined: tracing is off, or the call is outside every session's span. */
function parentFor(): { tracer: Tracer; parent: Context } | undefined {
  const tracing = active;
  if (!tracing) return undefined;
  const parent = context.active();
  // A call outside every turn (the connection lookup before a session is known) gets no span: its
  // own root span would sit in a random trace, outside every conversation's.
  return trace.getSpanContext(parent) ? { tracer: tracing.tracer, parent } : undefined;
}

/**
 * One provider call as a client span, a child of the span active where it is called (the turn's).
 * The generic form of the decorators below: a new provider port (speech-to-text, issue 9) wraps
 * its adapter's calls with it, e.g.
 *   traceCall('stt.transcribe', { 'parley.stt.provider': 'openai' }, async (span) => { …; span.set({ 'parley.stt.seconds': s }); return text; })
 * A thrown error marks the span failed (error.type) and is rethrown.
 */
export function traceCall<T>(name: string, attributes: Attributes, call: (span: CallSpan) => Promise<T>): Promise<T> {
  const where = parentFor();
  if (!where) return call(UNTRACED_CALL);
  const span = where.tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes }, where.parent);
  return context.with(trace.setSpan(where.parent, span), async () => {
    try {
      return await call(callSpan(span));
    } catch (err) {
      failed(span, errorType(err));
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * A streamed provider call (LLM completion, synthesis) as one client span from its first pull to its
 * last item. The span starts when the stream is first read (a stream never read has no span) but
 * joins the span active where the stream was asked for; the source is read inside the new span, so
 * what it calls nests under it. `item` sees each item; `end` runs when the stream ends, however.
 */
export function traceStream<T>(
  name: string,
  attributes: Attributes,
  open: () => AsyncIterable<T>,
  hooks: {
    item?: (span: CallSpan, item: T) => void;
    /** The item that completes the call when the source has one (an LLM's `end`): readers stop right after it. */
    last?: (item: T) => boolean;
    end?: (span: CallSpan, how: 'done' | 'stopped' | 'failed') => void;
  } = {},
): AsyncIterable<T> {
  const where = parentFor();
  if (!where) return open();
  return (async function* () {
    const span = where.tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes }, where.parent);
    const inSpan = trace.setSpan(where.parent, span);
    const calls = callSpan(span);
    let how: 'done' | 'stopped' | 'failed' = 'stopped';
    try {
      const source = context.with(inSpan, () => open()[Symbol.asyncIterator]());
      for await (const item of boundTo(inSpan, source)) {
        hooks.item?.(calls, item);
        if (hooks.last?.(item)) how = 'done';
        yield item;
      }
      how = 'done';
    } catch (err) {
      how = 'failed';
      failed(span, errorType(err));
      throw err;
    } finally {
      // 'stopped': the reader returned early (a barge-in, a cancel, the turn failing elsewhere).
      if (how === 'stopped') span.setAttribute('parley.stream.stopped', true);
      hooks.end?.(calls, how);
      span.end();
    }
  })();
}

/** An iterator whose steps run in `ctx`: for-await closes it (return) when the reader stops early. */
function boundTo<T>(ctx: Context, it: AsyncIterator<T>): AsyncIterable<T> {
  const bound: AsyncIterator<T> = { next: () => context.with(ctx, () => it.next()) };
  if (it.return) bound.return = (value?: unknown) => context.with(ctx, () => it.return!(value as T));
  return { [Symbol.asyncIterator]: () => bound };
}

function callSpan(span: Span): CallSpan {
  return { set: (attributes) => void span.setAttributes(attributes), fail: (type) => failed(span, type) };
}

function failed(span: Span, type: string): void {
  span.setAttribute('error.type', type);
  // The type only: an error's message can quote a response or a user's words.
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}

/** A failure's low-cardinality name: a ParleyError/TtsError code, an LlmError kind, else the error's class. */
function errorType(err: unknown): string {
  if (typeof err !== 'object' || err === null) return typeof err;
  const e = err as { code?: unknown; kind?: unknown; name?: unknown };
  if (typeof e.code === 'string') return e.code;
  if (typeof e.kind === 'string') return e.kind;
  return typeof e.name === 'string' ? e.name : 'Error';
}

// ---------------------------------------------------------------------------------------------
// Decorators of the ports, applied by the hosts (lib/host/deps.ts) when tracing is on

/**
 * `llm.stream` spans with the GenAI semantic conventions' attributes (gen_ai.*: request model,
 * response model, finish reason, token usage), the number of messages, tools and tool calls.
 */
export function tracedLlm(client: LlmClient, provider = 'openai'): LlmClient {
  return {
    defaultModel: client.defaultModel,
    stream(request: LlmRequest, deadline: number): AsyncIterable<LlmStreamEvent> {
      const startedAt = performance.now();
      let first = true;
      return traceStream('llm.stream', llmRequestAttributes(request, provider), () => client.stream(request, deadline), {
        item(span, event) {
          if (event.type === 'text' && first) {
            first = false;
            span.set({ 'gen_ai.response.time_to_first_chunk': (performance.now() - startedAt) / 1000 });
          }
          if (event.type !== 'end') return;
          span.set({
            'gen_ai.response.model': event.model,
            ...(event.finishReason === null ? {} : { 'gen_ai.response.finish_reasons': [event.finishReason] }),
            'parley.llm.tool_calls': event.toolCalls.length,
            ...(event.usage
              ? {
                  'gen_ai.usage.input_tokens': event.usage.inputTokens,
                  'gen_ai.usage.output_tokens': event.usage.outputTokens,
                  'gen_ai.usage.cache_read.input_tokens': event.usage.cachedTokens,
                }
              : {}),
          });
        },
        last: (event) => event.type === 'end',
        end(span) {
          if (request.signal?.aborted) span.set({ 'parley.llm.aborted': true });
        },
      });
    },
  };
}

function llmRequestAttributes(request: LlmRequest, provider: string): Attributes {
  return {
    'gen_ai.operation.name': 'chat',
    // gen_ai.system is the older name of gen_ai.provider.name; viewers read one or the other.
    'gen_ai.system': provider,
    'gen_ai.provider.name': provider,
    'gen_ai.request.model': request.model,
    'gen_ai.request.stream': true,
    ...(request.temperature === undefined ? {} : { 'gen_ai.request.temperature': request.temperature }),
    ...(request.maxTokens === undefined ? {} : { 'gen_ai.request.max_tokens': request.maxTokens }),
    'parley.llm.messages': request.messages.length,
    'parley.llm.tools': request.tools?.length ?? 0,
  };
}

/** `safety.check` spans (a remote moderation call, or the local word list): the verdict and its category, never the text. */
export function tracedSafety(checker: SafetyChecker): SafetyChecker {
  return {
    check: (text, language) =>
      traceCall('safety.check', { 'parley.safety.characters': text.length, 'parley.language': language }, async (span) => {
        const verdict = await checker.check(text, language);
        span.set({ 'parley.safety.safe': verdict.safe, ...(verdict.category ? { 'parley.safety.category': verdict.category } : {}) });
        return verdict;
      }),
  };
}

const tracedPorts = new WeakMap<LlmPorts, LlmPorts>();

/** The LLM ports with their client and safety checker traced; the same object for the same ports (Lambda builds them per key, not per turn). */
export function tracedLlmPorts(ports: LlmPorts): LlmPorts;
export function tracedLlmPorts(ports: LlmPorts | undefined): LlmPorts | undefined;
export function tracedLlmPorts(ports: LlmPorts | undefined): LlmPorts | undefined {
  if (!ports) return undefined;
  let traced = tracedPorts.get(ports);
  if (!traced) {
    traced = { ...ports, client: tracedLlm(ports.client), safety: tracedSafety(ports.safety) };
    tracedPorts.set(ports, traced);
    // Wrapping the wrapper would nest a second span in each call.
    tracedPorts.set(traced, traced);
  }
  return traced;
}

/** `tts.synthesize` (and `tts.word_marks`) spans: provider, voice, format, characters; bytes, chunks and time to the first chunk. */
export function tracedSynthesizer(synthesizer: Synthesizer): Synthesizer {
  const voiceAttributes = (request: Omit<SynthesisRequest, 'format'>): Attributes => ({
    'parley.tts.provider': synthesizer.provider,
    'parley.tts.voice': request.voice.id,
    ...(request.voice.engine ? { 'parley.tts.engine': request.voice.engine } : {}),
    'parley.language': request.voice.language,
    'parley.tts.characters': request.text.length,
  });
  const traced: Synthesizer = {
    provider: synthesizer.provider,
    supports: (format) => synthesizer.supports(format),
    synthesize(request) {
      const startedAt = performance.now();
      let bytes = 0;
      let chunks = 0;
      const attributes = { ...voiceAttributes(request), 'parley.tts.format': `${request.format.format}/${request.format.sampleRate}` };
      return traceStream('tts.synthesize', attributes, () => synthesizer.synthesize(request), {
        item(span, chunk) {
          if (chunks === 0) span.set({ 'parley.tts.first_chunk_ms': Math.round((performance.now() - startedAt) * 1000) / 1000 });
          chunks++;
          bytes += chunk.byteLength;
        },
        end(span) {
          span.set({ 'parley.tts.chunks': chunks, 'parley.tts.bytes': bytes, ...(request.signal?.aborted ? { 'parley.tts.aborted': true } : {}) });
        },
      });
    },
  };
  const { wordMarks, close } = synthesizer;
  if (wordMarks) {
    traced.wordMarks = (request) =>
      traceCall('tts.word_marks', voiceAttributes(request), async (span) => {
        const marks = await wordMarks.call(synthesizer, request);
        span.set({ 'parley.tts.marks': marks.length });
        return marks;
      });
  }
  if (close) traced.close = () => close.call(synthesizer);
  return traced;
}

/**
 * `webhook` spans: the action's name, attempts, whether it worked, its failure kind and the HTTP
 * status of a failed answer. Never the URL, headers or bodies: they carry the session's data and
 * the map's secrets.
 */
export function tracedActions(runner: ActionRunner): ActionRunner {
  return {
    ...(runner.warm ? { warm: runner.warm.bind(runner) } : {}),
    run: (name, templateContext) =>
      traceCall('webhook', { 'parley.action.name': name }, async (span) => {
        const outcome = await runner.run(name, templateContext);
        const method = (outcome as ActionOutcome & { request?: { method?: unknown } }).request?.method;
        span.set({
          'parley.action.ok': outcome.ok,
          'parley.action.attempts': outcome.attempts,
          ...(typeof method === 'string' ? { 'http.request.method': method } : {}),
        });
        if (!outcome.ok) {
          // The runner reports a failed answer as `HTTP <status> …`; its status is all a span takes from it.
          const status = /^HTTP (\d{3})\b/.exec(outcome.detail)?.[1];
          if (status) span.set({ 'http.response.status_code': Number(status) });
          span.fail(outcome.kind);
        }
        return outcome;
      }),
  };
}

/** Commands that take ReturnConsumedCapacity: for them, a traced call asks DynamoDB what it consumed. */
const CAPACITY_OPERATIONS = new Set(['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'Query', 'Scan', 'BatchGetItem', 'BatchWriteItem', 'TransactGetItems', 'TransactWriteItems']);

const tracedClients = new WeakSet<DynamoDBClient>();

/**
 * `dynamodb.<Operation>` spans for every call of the client made inside a session's span, through
 * the SDK's middleware stack, so every store sharing the client (sessions, connections, limits) is
 * covered without knowing it. The span covers the SDK's retries (attempts); a traced item call asks
 * for ReturnConsumedCapacity TOTAL unless the caller chose, and the capacity goes on the span.
 *
 * Add it before the client's first call of an operation: with cacheMiddleware (lib/host/sdk.ts) the
 * client resolves each command's stack once.
 */
export function traceDynamo(client: DynamoDBClient): void {
  if (tracedClients.has(client)) return;
  tracedClients.add(client);
  client.middlewareStack.add(
    (next, handlerContext) => async (args) => {
      const where = parentFor();
      if (!where) return next(args);
      const operation = String(handlerContext.commandName ?? 'Unknown').replace(/Command$/, '');
      const input = args.input as { TableName?: unknown; ReturnConsumedCapacity?: unknown };
      const table = typeof input.TableName === 'string' ? input.TableName : undefined;
      const span = where.tracer.startSpan(
        `dynamodb.${operation}`,
        {
          kind: SpanKind.CLIENT,
          attributes: {
            'db.system': 'dynamodb',
            'db.system.name': 'aws.dynamodb',
            'db.operation.name': operation,
            'rpc.system': 'aws-api',
            'rpc.service': 'DynamoDB',
            'rpc.method': operation,
            ...(table ? { 'aws.dynamodb.table_names': [table] } : {}),
          },
        },
        where.parent,
      );
      const asked = CAPACITY_OPERATIONS.has(operation) && input.ReturnConsumedCapacity === undefined;
      const call = asked ? { ...args, input: { ...args.input, ReturnConsumedCapacity: 'TOTAL' } } : args;
      try {
        const result = await context.with(trace.setSpan(where.parent, span), () => next(call));
        const output = result.output as { $metadata?: { attempts?: number; requestId?: string }; ConsumedCapacity?: unknown };
        const capacity = output.ConsumedCapacity === undefined ? [] : Array.isArray(output.ConsumedCapacity) ? output.ConsumedCapacity : [output.ConsumedCapacity];
        span.setAttributes({
          ...(output.$metadata?.attempts === undefined ? {} : { 'parley.aws.attempts': output.$metadata.attempts }),
          ...(output.$metadata?.requestId ? { 'aws.request_id': output.$metadata.requestId } : {}),
          ...(capacity.length
            ? {
                'aws.dynamodb.consumed_capacity': capacity.map((c) => JSON.stringify(c)),
                'parley.dynamodb.capacity_units': capacity.reduce((sum: number, c) => sum + (Number((c as { CapacityUnits?: unknown }).CapacityUnits) || 0), 0),
              }
            : {}),
        });
        return result;
      } catch (err) {
        const name = errorType(err);
        const meta = (err as { $metadata?: { attempts?: number; requestId?: string } }).$metadata;
        span.setAttributes({
          ...(meta?.attempts === undefined ? {} : { 'parley.aws.attempts': meta.attempts }),
          ...(meta?.requestId ? { 'aws.request_id': meta.requestId } : {}),
        });
        // A failed condition is an answer (the lease is taken, the race is lost), not a failure of DynamoDB.
        if (name === 'ConditionalCheckFailedException') span.setAttribute('parley.dynamodb.condition_failed', true);
        else failed(span, name);
        throw err;
      } finally {
        span.end();
      }
    },
    { step: 'initialize', name: 'parleyTracing' },
  );
}
