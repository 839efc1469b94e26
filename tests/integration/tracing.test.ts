import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, createContextKey, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { traceIdFor } from '../../lib/checkpoint/trace';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import { llmPortsFactory } from '../../lib/llm/configure';
import { sessionRootSpanId, startTracing, startTracingFromEnv, tracingActive, type Tracing } from '../../lib/observability/tracing';
import { memoryLog } from '../../lib/observability/log';
import { emptyAudioCache } from '../../lib/speech/audio-cache';
import { voiceFor } from '../../lib/speech/tts/voice';
import type { SpeechDeps } from '../../lib/session/dispatch';
import type { LocalRuntime } from '../../local/runtime';
import { createEspeakSynthesizer, type EspeakSynthesizer } from '../../local/speech/espeak';
import { espeakInstalled } from '../support/espeak';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';
import { sampleMap, startRuntime, TestClient, textOf } from './harness';

/*
 * Tracing end to end: the real local gateway and dynalite, the real `openai` SDK against a local
 * OpenAI-compatible server, webhooks to a local HTTP server, eSpeak speech when it is installed;
 * the spans land in an in-memory exporter.
 */

const PCM16K = { format: 'pcm', sampleRate: 16000 } as const;

describe('tracing off (no PARLEY_TRACING)', () => {
  let runtime: LocalRuntime;
  afterAll(async () => {
    await runtime?.close();
  });

  it('a conversation installs nothing: no SDK, no context manager, no middleware on the DynamoDB client', async () => {
    // The OTLP variables alone do not turn it on.
    const env = readEnv(FunctionEnv, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' });
    const tracing = startTracingFromEnv(env, memoryLog());
    expect(tracing).toBeUndefined();
    runtime = await startRuntime({ tracing: tracing !== undefined });
    const client = await TestClient.connect(runtime.wsUrl);
    await client.open();
    const events = await client.say('a large latte with oat milk please');
    expect(events.find((e) => e.type === 'node.transition')).toMatchObject({ to: 'confirm' });
    client.close();

    expect(tracingActive()).toBe(false);
    const key = createContextKey('probe');
    expect(context.with(context.active().setValue(key, 1), () => context.active().getValue(key))).toBeUndefined();
    expect(trace.getTracer('any').startSpan('probe').isRecording()).toBe(false);
    expect(runtime.dynamo.client.middlewareStack.identify().some((m) => m.includes('parleyTracing'))).toBe(false);
  });
});

describe('tracing a conversation through the local gateway', () => {
  const map = sampleMap();
  let exporter: InMemorySpanExporter;
  let tracing: Tracing;
  let openai: FakeOpenAI;
  let hooks: Server;
  let hookCalls = 0;
  let espeak: EspeakSynthesizer | undefined;
  let runtime: LocalRuntime;

  beforeAll(async () => {
    exporter = new InMemorySpanExporter();
    tracing = await startTracing({ exporter, processor: 'simple' });
    openai = await startFakeOpenAI();
    // The sample map's pickup_wait webhook: the first attempt of each call fails (503), the retry answers.
    hooks = createServer((req, res) => {
      hookCalls++;
      if (req.url === '/demo/wait-time' && hookCalls % 2 === 1) return void res.writeHead(503, { 'content-type': 'text/plain' }).end('busy');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ minutes: 6 }));
    });
    await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
    const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'gpt-test', PARLEY_SAFETY: 'local', PARLEY_LLM_BUDGET_MS: '5000' });
    espeak = espeakInstalled ? await createEspeakSynthesizer() : undefined;
    const speech: SpeechDeps | undefined = espeak
      ? { synthesizer: espeak, cache: emptyAudioCache, voiceFor: (language) => voiceFor(map, language, 'espeak') }
      : undefined;
    runtime = await startRuntime({
      tracing: true,
      map,
      llm: llmPortsFactory(env)('test-key'),
      actionsBaseUrl: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}`,
      serveDemoKitchen: false,
      ...(speech ? { speech } : {}),
    });
  });
  afterEach(() => {
    openai.reset();
  });
  afterAll(async () => {
    await runtime?.close();
    await openai?.close();
    await espeak?.close();
    await new Promise<void>((resolve) => hooks?.close(() => resolve()));
    await tracing?.shutdown();
  });

  const spans = () => exporter.getFinishedSpans();
  const inTrace = (sessionId: string) => spans().filter((s) => s.spanContext().traceId === traceIdFor(sessionId));
  const turnsOf = (sessionId: string) =>
    inTrace(sessionId)
      .filter((s) => s.name === 'parley.turn')
      .sort((a, b) => Number(a.attributes['parley.turn.seq']) - Number(b.attributes['parley.turn.seq']));
  const childrenOf = (span: ReadableSpan) => spans().filter((s) => s.parentSpanContext?.spanId === span.spanContext().spanId);
  /** The turn span ends after turn.completed is sent (the lease release and the metrics come after it). */
  const waitForTurns = (sessionId: string, n: number) => expect.poll(() => turnsOf(sessionId).length, { timeout: 5_000 }).toBe(n);

  it('one parley.turn span per turn, all in the session trace, with the provider calls as their children', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open({ type: 'session.start', ...(espeak ? { audio: PCM16K } : {}) });
    const sessionId = started.sessionId;
    expect(started.traceId).toBe(traceIdFor(sessionId));

    openai.script({ toolCalls: [{ name: 'pickup_wait', arguments: '{}' }], usage: { prompt_tokens: 100, completion_tokens: 5 } }, { text: 'Right now a pickup order takes about 6 minutes.', usage: { prompt_tokens: 130, completion_tokens: 12, cached: 64 } });
    const llmTurn = await client.say('how long does it take to get my order?');
    expect(textOf(llmTurn)).toBe('Right now a pickup order takes about 6 minutes.');
    const scripted = await client.say('a large latte with oat milk please');
    expect(scripted.find((e) => e.type === 'node.transition')).toMatchObject({ to: 'confirm' });
    await waitForTurns(sessionId, 3);

    const [greeting, answer, order] = turnsOf(sessionId);
    // Every turn: the session's trace id, the session root as parent, its own attributes.
    for (const [seq, turn] of [greeting!, answer!, order!].entries()) {
      expect(turn.spanContext().traceId).toBe(traceIdFor(sessionId));
      expect(turn.parentSpanContext).toMatchObject({ spanId: sessionRootSpanId(sessionId), isRemote: true });
      expect(turn.kind).toBe(SpanKind.SERVER);
      expect(turn.status.code).toBe(SpanStatusCode.UNSET);
      expect(turn.attributes).toMatchObject({ 'parley.session.id': sessionId, 'parley.turn.seq': seq, 'parley.turn.status': 'completed' });
    }
    expect(greeting!.attributes).toMatchObject({ 'parley.input.kind': 'start', 'parley.node.after': 'welcome' });
    expect(answer!.attributes).toMatchObject({ 'parley.input.kind': 'text', 'parley.node.before': 'welcome', 'parley.usage.llm.input_tokens': 230, 'parley.usage.llm.output_tokens': 17 });
    expect(answer!.attributes['parley.turn.id']).toBe((llmTurn.at(-1) as { turnId: string }).turnId);
    expect(order!.attributes).toMatchObject({ 'parley.node.before': 'welcome', 'parley.node.after': 'confirm' });

    // The LLM turn: two completions (the tool call, then the answer), the webhook between them, the safety check.
    const calls = childrenOf(answer!);
    const llm = calls.filter((s) => s.name === 'llm.stream');
    expect(llm).toHaveLength(2);
    expect(llm[0]!.attributes).toMatchObject({ 'gen_ai.request.model': 'gpt-test', 'gen_ai.response.finish_reasons': ['tool_calls'], 'parley.llm.tool_calls': 1, 'gen_ai.usage.input_tokens': 100 });
    expect(llm[1]!.attributes).toMatchObject({ 'gen_ai.response.finish_reasons': ['stop'], 'gen_ai.usage.output_tokens': 12, 'gen_ai.usage.cache_read.input_tokens': 64 });
    // The agent stops reading at the `end` event: that is a completed call, not a stopped one.
    for (const s of llm) expect(s.attributes['parley.stream.stopped']).toBeUndefined();
    const webhook = calls.filter((s) => s.name === 'webhook');
    expect(webhook).toHaveLength(1);
    expect(webhook[0]!.attributes).toMatchObject({ 'parley.action.name': 'pickup_wait', 'parley.action.ok': true, 'parley.action.attempts': 2 });
    expect(calls.some((s) => s.name === 'safety.check')).toBe(true);

    // DynamoDB under every turn: the commit's PutItem at least, with the table and what it consumed.
    for (const turn of [greeting!, answer!, order!]) {
      const db = childrenOf(turn).filter((s) => s.name.startsWith('dynamodb.'));
      const put = db.find((s) => s.name === 'dynamodb.PutItem');
      expect(put, `PutItem under turn ${turn.attributes['parley.turn.seq']}`).toBeDefined();
      expect(put!.kind).toBe(SpanKind.CLIENT);
      expect(put!.attributes).toMatchObject({ 'db.system': 'dynamodb', 'db.operation.name': 'PutItem', 'aws.dynamodb.table_names': [runtime.tableName] });
      expect(put!.attributes['aws.dynamodb.consumed_capacity']).toBeDefined();
    }

    // Speech: the greeting and the answer were synthesized (the cache is empty) under their turns.
    if (espeak) {
      for (const turn of [greeting!, answer!]) {
        const tts = childrenOf(turn).filter((s) => s.name === 'tts.synthesize');
        expect(tts.length, `tts under turn ${turn.attributes['parley.turn.seq']}`).toBeGreaterThan(0);
        expect(tts[0]!.attributes).toMatchObject({ 'parley.tts.provider': 'espeak', 'parley.tts.format': 'pcm/16000' });
        expect(Number(tts[0]!.attributes['parley.tts.bytes'])).toBeGreaterThan(0);
      }
    }

    // Nothing of the trace hangs elsewhere: every span's parent is the session root or a span of the trace.
    const ids = new Set(inTrace(sessionId).map((s) => s.spanContext().spanId));
    for (const s of inTrace(sessionId)) expect([sessionRootSpanId(sessionId), ...ids]).toContain(s.parentSpanContext?.spanId);
    // What was said stays out of the spans.
    const dumped = JSON.stringify(inTrace(sessionId).map((s) => s.attributes));
    expect(dumped).not.toContain('oat milk');
    expect(dumped).not.toContain('6 minutes');
    client.close();
  });

  it('two sessions at once: each trace holds its own turns and calls only', async () => {
    exporter.reset();
    const [a, b] = await Promise.all([TestClient.connect(runtime.wsUrl), TestClient.connect(runtime.wsUrl)]);
    const [sa, sb] = await Promise.all([a.open(), b.open()]);
    // Slow answers, so that the two turns run at the same time in this one process.
    openai.script(
      { text: 'We roast our beans on Tuesdays.', firstTokenDelayMs: 300, chunkChars: 4, tokensPerSecond: 50 },
      { text: 'We roast our beans on Tuesdays.', firstTokenDelayMs: 300, chunkChars: 4, tokensPerSecond: 50 },
    );
    await Promise.all([a.say('where do your coffee beans come from?'), b.say('where do your coffee beans come from?')]);
    const sessions = [sa.started.sessionId, sb.started.sessionId];
    await Promise.all(sessions.map((id) => waitForTurns(id, 2)));

    const [ta, tb] = sessions.map((id) => turnsOf(id)[1]!);
    // They did overlap: each started before the other ended.
    const startMs = (s: ReadableSpan) => s.startTime[0] * 1e3 + s.startTime[1] / 1e6;
    const endMs = (s: ReadableSpan) => s.endTime[0] * 1e3 + s.endTime[1] / 1e6;
    expect(startMs(ta!)).toBeLessThan(endMs(tb!));
    expect(startMs(tb!)).toBeLessThan(endMs(ta!));

    for (const id of sessions) {
      const trace = inTrace(id);
      const turnIds = new Set(trace.filter((s) => s.name === 'parley.turn').map((s) => s.spanContext().spanId));
      for (const s of trace.filter((s) => s.name === 'parley.turn')) expect(s.attributes['parley.session.id']).toBe(id);
      // Every call is a child of one of this session's turns, or of the session root: what a message
      // did around its turn (taking the lease, the idempotency look-up) once its session was known.
      const root = sessionRootSpanId(id);
      for (const s of trace.filter((s) => s.name !== 'parley.turn')) expect([...turnIds, root]).toContain(s.parentSpanContext?.spanId);
      const around = trace.filter((s) => s.name !== 'parley.turn' && s.parentSpanContext?.spanId === root).map((s) => s.name);
      expect(around).toContain('dynamodb.UpdateItem'); // the lease, taken before the turn's span starts
      expect(trace.filter((s) => s.name === 'llm.stream')).toHaveLength(1);
    }
    // No span of the run sits in a trace of its own (the connection lookups before a session is known get none).
    const known = new Set(sessions.map(traceIdFor));
    expect(spans().filter((s) => !known.has(s.spanContext().traceId)).map((s) => s.name)).toEqual([]);
    a.close();
    b.close();
  });
});
