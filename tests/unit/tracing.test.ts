import { context, createContextKey, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import type { ActionOutcome, ActionRunner } from '../../lib/actions/port';
import { traceIdFor } from '../../lib/checkpoint/trace';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import type { LlmClient, LlmStreamEvent } from '../../lib/llm/port';
import { memoryLog } from '../../lib/observability/log';
import {
  inTurnSpan,
  sessionRootSpanId,
  startTracing,
  startTracingFromEnv,
  traceCall,
  tracedActions,
  tracedLlmPorts,
  tracedSynthesizer,
  traceLink,
  traceStream,
  tracingActive,
  type Tracing,
} from '../../lib/observability/tracing';
import type { LlmPorts } from '../../lib/runner/llm-turn';
import { TtsError, type Synthesizer } from '../../lib/speech/tts/port';

const USAGE = { llm: { 'gpt-test': { inputTokens: 120, outputTokens: 18, cachedTokens: 100 } }, ttsCharacters: 42, sttSeconds: 0 };
const turnStart = (sessionId: string, seq = 1) => ({ sessionId, turnId: `turn-${seq}`, seq, inputKind: 'text', nodeBefore: 'welcome' });
const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

/** Whether any context manager is installed: the no-op one forgets every value set on a context. */
function contextManagerInstalled(): boolean {
  const key = createContextKey('probe');
  return context.with(context.active().setValue(key, 1), () => context.active().getValue(key)) === 1;
}

let tracing: Tracing | undefined;
let exporter: InMemorySpanExporter;

async function on(): Promise<InMemorySpanExporter> {
  exporter = new InMemorySpanExporter();
  tracing = await startTracing({ exporter, processor: 'simple' });
  return exporter;
}

afterEach(async () => {
  await tracing?.shutdown();
  tracing = undefined;
});

/** What a span would carry to a backend: its name, attributes, status and events. */
const dump = (spans: ReadableSpan[]) => JSON.stringify(spans.map((s) => ({ name: s.name, attributes: s.attributes, status: s.status, events: s.events })));
const byName = (spans: ReadableSpan[], name: string) => spans.filter((s) => s.name === name);
const only = (spans: ReadableSpan[], name: string) => {
  const found = byName(spans, name);
  expect(found, name).toHaveLength(1);
  return found[0]!;
};

describe('trace ids and links', () => {
  it('derives the root span id from the session id alone, like the trace id', () => {
    expect(sessionRootSpanId('s-1')).toMatch(/^[0-9a-f]{16}$/);
    expect(sessionRootSpanId('s-1')).toBe(sessionRootSpanId('s-1'));
    expect(sessionRootSpanId('s-1')).not.toBe(sessionRootSpanId('s-2'));
    // Not a slice of the trace id: a different hash.
    expect(traceIdFor('s-1')).not.toContain(sessionRootSpanId('s-1'));
  });

  it('traceLink: the trace id, and a URL when the template names a placeholder', () => {
    const traceId = traceIdFor('a b');
    expect(traceLink('a b')).toEqual({ traceId });
    expect(traceLink('a b', 'http://localhost:16686/trace/{traceId}')).toEqual({ traceId, url: `http://localhost:16686/trace/${traceId}` });
    expect(traceLink('a b', 'https://console.aws.amazon.com/cloudwatch/home#xray:traces/{xrayTraceId}').url).toBe(
      `https://console.aws.amazon.com/cloudwatch/home#xray:traces/1-${traceId.slice(0, 8)}-${traceId.slice(8)}`,
    );
    expect(traceLink('a b', 'https://example.test/s/{sessionId}').url).toBe('https://example.test/s/a%20b');
    expect(traceLink('a b', 'https://example.test/no-placeholder')).toEqual({ traceId });
  });

  it('PARLEY_TRACING is off unless set; bad values stop the start', () => {
    const env = readEnv(FunctionEnv, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' });
    expect(env.PARLEY_TRACING).toBeUndefined();
    expect(startTracingFromEnv(env, memoryLog())).toBeUndefined();
    expect(startTracingFromEnv({ PARLEY_TRACING: 'off' }, memoryLog())).toBeUndefined();
    expect(readEnv(FunctionEnv, { PARLEY_TRACING: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).PARLEY_TRACING).toBe('otlp');
    expect(() => readEnv(FunctionEnv, { PARLEY_TRACING: 'jaeger' })).toThrow(/PARLEY_TRACING/);
    expect(() => readEnv(FunctionEnv, { OTEL_EXPORTER_OTLP_ENDPOINT: 'the collector' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
    expect(() => readEnv(FunctionEnv, { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL/);
    expect(() => readEnv(FunctionEnv, { PARLEY_TRACE_URL: 'http://localhost:16686/trace/' })).toThrow(/PARLEY_TRACE_URL/);
  });
});

describe('tracing off (the default)', () => {
  it('installs nothing globally, records nothing, and runs the turn and its calls bare', async () => {
    expect(tracingActive()).toBe(false);
    expect(contextManagerInstalled()).toBe(false);
    expect(trace.getTracer('any').startSpan('probe').isRecording()).toBe(false);
    let seen: unknown;
    const result = await inTurnSpan(turnStart('s-off'), async (span) => {
      span.committed({ status: 'completed', checkpoint: { currentNode: 'menu' }, usage: USAGE });
      seen = trace.getActiveSpan();
      return traceCall('webhook', {}, async () => 'called');
    });
    expect(result).toBe('called');
    expect(seen).toBeUndefined();
    // A stream is handed through as it is: the same object, no wrapper.
    const source = (async function* () {
      yield 1;
    })();
    expect(traceStream('x', {}, () => source)).toBe(source);
  });

  it('is back to that after shutdown', async () => {
    await on();
    expect(tracingActive()).toBe(true);
    expect(contextManagerInstalled()).toBe(true);
    await tracing!.shutdown();
    tracing = undefined;
    expect(tracingActive()).toBe(false);
    expect(contextManagerInstalled()).toBe(false);
    expect(trace.getTracer('any').startSpan('probe').isRecording()).toBe(false);
  });
});

describe('tracing on', () => {
  it('a turn span: the session trace id, the session root as remote parent, the turn attributes', async () => {
    await on();
    await inTurnSpan(turnStart('s-1', 3), async (span) => {
      span.committed({ status: 'completed', checkpoint: { currentNode: 'menu' }, usage: USAGE });
    });
    const turn = only(exporter.getFinishedSpans(), 'parley.turn');
    expect(turn.spanContext().traceId).toBe(traceIdFor('s-1'));
    expect(turn.parentSpanContext).toMatchObject({ traceId: traceIdFor('s-1'), spanId: sessionRootSpanId('s-1'), isRemote: true });
    expect(turn.kind).toBe(SpanKind.SERVER);
    expect(turn.attributes).toMatchObject({
      'parley.session.id': 's-1',
      'parley.turn.id': 'turn-3',
      'parley.turn.seq': 3,
      'parley.input.kind': 'text',
      'parley.turn.status': 'completed',
      'parley.node.before': 'welcome',
      'parley.node.after': 'menu',
      'parley.usage.llm.input_tokens': 120,
      'parley.usage.llm.output_tokens': 18,
      'parley.usage.llm.cached_tokens': 100,
      'parley.usage.tts_characters': 42,
    });
    expect(turn.status.code).toBe(SpanStatusCode.UNSET);
    expect(turn.resource.attributes['service.name']).toBe('parley');
  });

  it('a failed turn: error status with the code, never the message', async () => {
    await on();
    const failure = Object.assign(new Error('user said: my card is 4111'), { code: 'store.unavailable' });
    await expect(inTurnSpan(turnStart('s-err'), async () => Promise.reject(failure))).rejects.toBe(failure);
    const turn = only(exporter.getFinishedSpans(), 'parley.turn');
    expect(turn.status).toEqual({ code: SpanStatusCode.ERROR, message: 'store.unavailable' });
    expect(turn.attributes['error.type']).toBe('store.unavailable');
    expect(dump([turn])).not.toContain('4111');
  });

  it('a call outside every turn gets no span; inside one it is a child of the turn', async () => {
    await on();
    await traceCall('webhook', {}, async () => undefined);
    expect(exporter.getFinishedSpans()).toEqual([]);
    await inTurnSpan(turnStart('s-2'), () => traceCall('stt.transcribe', { 'parley.stt.provider': 'test' }, async (span) => span.set({ 'parley.stt.seconds': 2.5 })));
    const spans = exporter.getFinishedSpans();
    const turn = only(spans, 'parley.turn');
    const call = only(spans, 'stt.transcribe');
    expect(call.parentSpanContext?.spanId).toBe(turn.spanContext().spanId);
    expect(call.spanContext().traceId).toBe(traceIdFor('s-2'));
    expect(call.kind).toBe(SpanKind.CLIENT);
    expect(call.attributes).toMatchObject({ 'parley.stt.provider': 'test', 'parley.stt.seconds': 2.5 });
  });

  it('interleaved turns of two sessions keep their calls apart', async () => {
    await on();
    const turnOf = async (sessionId: string) =>
      inTurnSpan(turnStart(sessionId), async () => {
        for (let i = 0; i < 5; i++) {
          await tick();
          await traceCall(`call.${sessionId}`, {}, async () => tick());
        }
      });
    await Promise.all([turnOf('a'), turnOf('b'), turnOf('c')]);
    const spans = exporter.getFinishedSpans();
    const turns = byName(spans, 'parley.turn');
    expect(turns).toHaveLength(3);
    for (const sessionId of ['a', 'b', 'c']) {
      const turn = turns.find((t) => t.attributes['parley.session.id'] === sessionId)!;
      const calls = byName(spans, `call.${sessionId}`);
      expect(calls).toHaveLength(5);
      for (const c of calls) {
        expect(c.spanContext().traceId).toBe(traceIdFor(sessionId));
        expect(c.parentSpanContext?.spanId).toBe(turn.spanContext().spanId);
      }
    }
  });

  it('llm.stream: GenAI attributes, usage and finish reason; safety.check with the verdict, not the text', async () => {
    await on();
    const events: LlmStreamEvent[] = [
      { type: 'text', delta: 'Hello ' },
      { type: 'text', delta: 'there.' },
      { type: 'end', toolCalls: [], finishReason: 'stop', usage: { inputTokens: 21, outputTokens: 13, cachedTokens: 8 }, model: 'gpt-test-2024' },
    ];
    const client: LlmClient = {
      defaultModel: 'gpt-test',
      async *stream() {
        yield* events;
      },
    };
    const ports: LlmPorts = { client, safety: { check: async () => ({ safe: false, category: 'harassment' }) }, budgetMs: 1000 };
    const traced = tracedLlmPorts(ports);
    expect(tracedLlmPorts(ports)).toBe(traced);
    expect(tracedLlmPorts(traced)).toBe(traced);
    const got: LlmStreamEvent[] = [];
    await inTurnSpan(turnStart('s-llm'), async () => {
      for await (const e of traced.client.stream({ model: 'gpt-test', messages: [{ role: 'user', content: 'secret words' }], temperature: 0.3 }, Date.now() + 1000)) {
        got.push(e);
        // As the agent does: nothing comes after `end`.
        if (e.type === 'end') break;
      }
      await traced.safety.check('Hello there.', 'en');
    });
    expect(got).toEqual(events);
    const spans = exporter.getFinishedSpans();
    const turn = only(spans, 'parley.turn');
    const llm = only(spans, 'llm.stream');
    expect(llm.parentSpanContext?.spanId).toBe(turn.spanContext().spanId);
    expect(llm.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.system': 'openai',
      'gen_ai.request.model': 'gpt-test',
      'gen_ai.request.temperature': 0.3,
      'gen_ai.response.model': 'gpt-test-2024',
      'gen_ai.response.finish_reasons': ['stop'],
      'gen_ai.usage.input_tokens': 21,
      'gen_ai.usage.output_tokens': 13,
      'gen_ai.usage.cache_read.input_tokens': 8,
      'parley.llm.messages': 1,
      'parley.llm.tool_calls': 0,
    });
    expect(llm.attributes['gen_ai.response.time_to_first_chunk']).toBeTypeOf('number');
    expect(llm.attributes['parley.stream.stopped']).toBeUndefined();
    const safety = only(spans, 'safety.check');
    expect(safety.attributes).toMatchObject({ 'parley.safety.safe': false, 'parley.safety.category': 'harassment', 'parley.safety.characters': 12 });
    expect(dump(spans)).not.toContain('secret words');
    expect(dump(spans)).not.toContain('Hello there');
  });

  it('a stream the reader stops early is closed and its span ends, marked stopped', async () => {
    await on();
    let closed = false;
    const source = async function* () {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        closed = true;
      }
    };
    await inTurnSpan(turnStart('s-stop'), async () => {
      for await (const n of traceStream('tts.synthesize', {}, source)) if (n === 2) break;
    });
    expect(closed).toBe(true);
    const span = only(exporter.getFinishedSpans(), 'tts.synthesize');
    expect(span.attributes['parley.stream.stopped']).toBe(true);
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('tts.synthesize: provider, voice, characters, chunks and bytes; a TtsError marks it failed', async () => {
    await on();
    let fail = false;
    const synth: Synthesizer = {
      provider: 'espeak',
      supports: () => true,
      async *synthesize() {
        yield new Uint8Array(100);
        if (fail) throw new TtsError('tts.connection', 'no route to the synthesizer');
        yield new Uint8Array(60);
      },
    };
    const traced = tracedSynthesizer(synth);
    expect(traced.wordMarks).toBeUndefined();
    expect(traced.provider).toBe('espeak');
    const request = { text: 'Hello there.', voice: { provider: 'espeak', id: 'en-us', language: 'en' }, format: { format: 'pcm', sampleRate: 16000 } } as const;
    await inTurnSpan(turnStart('s-tts'), async () => {
      for await (const _ of traced.synthesize(request));
      fail = true;
      await expect(
        (async () => {
          for await (const _ of traced.synthesize(request));
        })(),
      ).rejects.toThrow(TtsError);
    });
    const [ok, failed] = byName(exporter.getFinishedSpans(), 'tts.synthesize');
    expect(ok!.attributes).toMatchObject({
      'parley.tts.provider': 'espeak',
      'parley.tts.voice': 'en-us',
      'parley.tts.format': 'pcm/16000',
      'parley.tts.characters': 12,
      'parley.tts.chunks': 2,
      'parley.tts.bytes': 160,
    });
    expect(failed!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'tts.connection' });
    expect(failed!.attributes['parley.tts.chunks']).toBe(1);
  });

  it('webhook: name, attempts, ok, the status of a failed answer; never the URL, headers or body', async () => {
    await on();
    const outcomes: ActionOutcome[] = [
      { ok: true, result: { minutes: 6 }, ms: 12, attempts: 1 },
      { ok: false, kind: 'action_failed', detail: 'HTTP 503 Service Unavailable: token abc123secret', ms: 40, attempts: 2 },
      { ok: false, kind: 'action_timeout', detail: 'no answer within 2000 ms', ms: 2000, attempts: 2 },
    ];
    const runner: ActionRunner = { run: async () => outcomes.shift()! };
    const traced = tracedActions(runner);
    await inTurnSpan(turnStart('s-hook'), async () => {
      await traced.run('pickup_wait', { session: { variables: { card: '4111' }, language: 'en', node: null } });
      await traced.run('place_order', { session: { variables: {}, language: 'en', node: null } });
      await traced.run('place_order', { session: { variables: {}, language: 'en', node: null } });
    });
    const [ok, failed, timedOut] = byName(exporter.getFinishedSpans(), 'webhook');
    expect(ok!.attributes).toMatchObject({ 'parley.action.name': 'pickup_wait', 'parley.action.ok': true, 'parley.action.attempts': 1 });
    expect(ok!.status.code).toBe(SpanStatusCode.UNSET);
    expect(failed!.attributes).toMatchObject({ 'parley.action.name': 'place_order', 'parley.action.ok': false, 'parley.action.attempts': 2, 'http.response.status_code': 503 });
    expect(failed!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'action_failed' });
    expect(timedOut!.status.message).toBe('action_timeout');
    expect(timedOut!.attributes['http.response.status_code']).toBeUndefined();
    const all = dump(exporter.getFinishedSpans());
    expect(all).not.toContain('abc123secret');
    expect(all).not.toContain('4111');
  });

  it('starting twice in one process is refused', async () => {
    await on();
    await expect(startTracing({ exporter: new InMemorySpanExporter() })).rejects.toThrow(/already on/);
  });
});
