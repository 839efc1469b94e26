import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import middy from '@middy/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { traceIdFor } from '../../lib/checkpoint/trace';
import type { RouteResult, WebSocketEvent } from '../../lib/host/events';
import { flushTraces } from '../../lib/host/middleware';
import { memoryLog, type LogLine } from '../../lib/observability/log';
import { inTurnSpan, sessionRootSpanId, startTracing, startTracingFromEnv, traceCall, type Tracing } from '../../lib/observability/tracing';

/*
 * The OTLP exporter against a local HTTP server standing in for a collector: what arrives is
 * what a real collector (Jaeger, the ADOT collector, Tempo) would read, in both OTLP/HTTP encodings.
 */

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

class Collector {
  readonly received: Received[] = [];
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  /** Accept requests and never answer (a collector that hangs). */
  hang = false;

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
        if (this.hang) return;
        const json = (req.headers['content-type'] ?? '').includes('json');
        res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
        res.end(json ? '{}' : undefined);
      });
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  get base(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** One turn with one provider call, as a Lambda invocation would record them. */
async function aTurn(sessionId: string): Promise<void> {
  await inTurnSpan({ sessionId, turnId: 't-1', seq: 1, inputKind: 'text', nodeBefore: 'welcome' }, async (span) => {
    await traceCall('webhook', { 'parley.action.name': 'pickup_wait' }, async () => undefined);
    span.committed({ status: 'completed', checkpoint: { currentNode: 'menu' }, usage: { llm: {}, ttsCharacters: 0, sttSeconds: 0 } });
  });
}

const OTEL_VARS = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES'];

describe('OTLP export', () => {
  let collector: Collector;
  let tracing: Tracing | undefined;
  const saved = Object.fromEntries(OTEL_VARS.map((k) => [k, process.env[k]]));

  beforeAll(async () => {
    collector = await new Collector().start();
  });
  afterEach(async () => {
    collector.hang = false;
    await tracing?.shutdown();
    tracing = undefined;
    collector.received.length = 0;
    for (const k of OTEL_VARS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  afterAll(async () => {
    await collector.close();
  });

  it('OTLP/HTTP JSON: the collector gets the turn and its call under the session trace id, service parley', async () => {
    tracing = await startTracing({ exporter: 'otlp', protocol: 'http/json', url: `${collector.base}/v1/traces` });
    await aTurn('session-json');
    await tracing.flush();

    expect(collector.received.length).toBeGreaterThan(0);
    const request = collector.received[0]!;
    expect(request.path).toBe('/v1/traces');
    expect(request.headers['content-type']).toMatch(/application\/json/);
    const body = JSON.parse(request.body.toString('utf8'));
    const resource = body.resourceSpans[0].resource.attributes as Array<{ key: string; value: { stringValue?: string } }>;
    expect(resource.find((a) => a.key === 'service.name')?.value.stringValue).toBe('parley');
    const spans = body.resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans));
    const turn = spans.find((s: any) => s.name === 'parley.turn');
    const call = spans.find((s: any) => s.name === 'webhook');
    expect(turn.traceId).toBe(traceIdFor('session-json'));
    expect(turn.parentSpanId).toBe(sessionRootSpanId('session-json'));
    expect(call.traceId).toBe(traceIdFor('session-json'));
    expect(call.parentSpanId).toBe(turn.spanId);
  });

  it('from the environment: OTLP/HTTP protobuf to OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces with OTEL_EXPORTER_OTLP_HEADERS', async () => {
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = collector.base;
    process.env.OTEL_EXPORTER_OTLP_HEADERS = 'x-collector-key=k-123';
    tracing = await startTracingFromEnv({ PARLEY_TRACING: 'otlp' }, memoryLog());
    expect(tracing).toBeDefined();
    await aTurn('session-proto');
    await tracing!.flush();

    expect(collector.received.length).toBeGreaterThan(0);
    const request = collector.received[0]!;
    expect(request.path).toBe('/v1/traces');
    expect(request.headers['content-type']).toBe('application/x-protobuf');
    expect(request.headers['x-collector-key']).toBe('k-123');
    // Protobuf carries ids as raw bytes and names as UTF-8.
    expect(request.body.includes(Buffer.from(traceIdFor('session-proto'), 'hex'))).toBe(true);
    expect(request.body.includes(Buffer.from(sessionRootSpanId('session-proto'), 'hex'))).toBe(true);
    expect(request.body.includes(Buffer.from('parley.turn'))).toBe(true);
    expect(request.body.includes(Buffer.from('parley'))).toBe(true);
  });

  it('PARLEY_TRACING=off starts nothing, whatever the OTLP variables say', async () => {
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = collector.base;
    expect(startTracingFromEnv({ PARLEY_TRACING: 'off' }, memoryLog())).toBeUndefined();
    await aTurn('session-off');
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(collector.received).toEqual([]);
  });

  it('Lambda: the handler returns only once its spans reached the collector', async () => {
    // Batched with a 1 s delay: without the flush the spans would still sit in the queue.
    tracing = await startTracing({ exporter: 'otlp', protocol: 'http/json', url: `${collector.base}/v1/traces` });
    const handler = middy<WebSocketEvent, RouteResult>()
      .use(flushTraces(Promise.resolve(tracing)))
      .handler(async () => {
        await aTurn('session-lambda');
        return { statusCode: 200 };
      });
    await handler({} as WebSocketEvent, {} as never);
    const names = collector.received.flatMap((r) =>
      JSON.parse(r.body.toString('utf8')).resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((s: any) => s.spans.map((sp: any) => sp.name))),
    );
    expect(names).toEqual(expect.arrayContaining(['parley.turn', 'webhook']));
  });

  it('a collector that never answers delays the flush by the export timeout at most, and is logged', async () => {
    collector.hang = true;
    const lines: LogLine[] = [];
    tracing = await startTracing({ exporter: 'otlp', protocol: 'http/json', url: `${collector.base}/v1/traces`, exportTimeoutMs: 300, log: memoryLog(lines) });
    await aTurn('session-dead');
    const started = performance.now();
    await tracing.flush();
    const ms = performance.now() - started;
    expect(collector.received.length).toBeGreaterThan(0);
    expect(ms).toBeGreaterThanOrEqual(250);
    // The export timeout (300 ms) plus the flush's margin (500 ms), with room for a slow machine.
    expect(ms).toBeLessThan(1_500);
    await expect.poll(() => lines.some((l) => l.level === 'warn' && l.message.startsWith('tracing:')), { timeout: 2_000 }).toBe(true);
  });
});
