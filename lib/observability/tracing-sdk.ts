/*
 * The OpenTelemetry SDK behind startTracing (lib/observability/tracing.ts), loaded only when tracing
 * is on: a cold start with tracing off never imports it.
 */
import { context, diag, DiagLogLevel, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { describeError, ParleyError } from '../errors';
import { TRACER_NAME, type TracingOptions } from './tracing';

export interface InstalledTracing {
  tracer: Tracer;
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** When neither the options nor OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT say. */
const DEFAULT_EXPORT_TIMEOUT_MS = 2_000;
/** flush gives up this long after the export timeout: the exporter's own timer should have fired by then. */
const FLUSH_MARGIN_MS = 500;

export async function installTracing(options: TracingOptions): Promise<InstalledTracing> {
  const timeoutMs = options.exportTimeoutMs ?? envTimeoutMs() ?? DEFAULT_EXPORT_TIMEOUT_MS;
  const exporter = options.exporter === 'otlp' ? await otlpExporter(options, timeoutMs) : options.exporter;
  const processor: SpanProcessor =
    options.processor === 'simple'
      ? new SimpleSpanProcessor(exporter)
      : new BatchSpanProcessor(exporter, { exportTimeoutMillis: timeoutMs, scheduledDelayMillis: 1_000 });
  const provider = new BasicTracerProvider({ resource: resource(options), spanProcessors: [processor] });

  if (options.log) {
    const log = options.log;
    // Export failures reach the SDK's global error handler, which writes to diag: make them visible.
    diag.setLogger(
      { error: (m) => log.warn(`tracing: ${m}`), warn: (m) => log.warn(`tracing: ${m}`), info: () => {}, debug: () => {}, verbose: () => {} },
      { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
    );
  }
  // Installed globally so that any other OpenTelemetry instrumentation joins the same spans. When an
  // application already installed its own (Parley embedded in it), Parley keeps to its provider and
  // uses the context manager it finds.
  const manager = new AsyncLocalStorageContextManager().enable();
  const ownContext = context.setGlobalContextManager(manager);
  if (!ownContext) manager.disable();
  const ownProvider = trace.setGlobalTracerProvider(provider);

  const flush = async () => {
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<'gave up'>((resolve) => {
      timer = setTimeout(() => resolve('gave up'), timeoutMs + FLUSH_MARGIN_MS);
      timer.unref();
    });
    try {
      // A flush never fails the invocation: a failed export loses those spans, and says so.
      const flushed = provider.forceFlush().then(
        () => true,
        (err: unknown) => void options.log?.warn('tracing: span export failed', { error: describeError(err) }),
      );
      if ((await Promise.race([flushed, gaveUp])) === 'gave up') options.log?.warn('tracing: span export still running at its timeout; the invocation goes on without it', { timeoutMs });
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    tracer: provider.getTracer(TRACER_NAME),
    flush,
    async shutdown() {
      await flush();
      await provider.shutdown().catch(() => undefined);
      if (ownProvider) trace.disable();
      if (ownContext) context.disable();
      if (options.log) diag.disable();
    },
  };
}

async function otlpExporter(options: TracingOptions, timeoutMs: number): Promise<SpanExporter> {
  // Endpoint, headers and compression: the exporter reads OTEL_EXPORTER_OTLP_* itself (the standard names).
  const config = { timeoutMillis: timeoutMs, ...(options.url ? { url: options.url } : {}) };
  switch (options.protocol ?? 'http/protobuf') {
    case 'http/protobuf':
      return new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter(config);
    case 'http/json':
      return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter(config);
    default:
      throw new ParleyError('config.invalid', `OTLP protocol '${String(options.protocol)}': http/protobuf or http/json`);
  }
}

function envTimeoutMs(): number | undefined {
  const raw = process.env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT ?? process.env.OTEL_EXPORTER_OTLP_TIMEOUT;
  const ms = raw === undefined || raw.trim() === '' ? NaN : Number(raw);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/** service.name `parley`, the Lambda function when in one; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win. */
function resource(options: TracingOptions) {
  const env = process.env;
  const lambda = env.AWS_LAMBDA_FUNCTION_NAME
    ? {
        'cloud.provider': 'aws',
        'cloud.platform': 'aws_lambda',
        ...(env.AWS_REGION ? { 'cloud.region': env.AWS_REGION } : {}),
        'faas.name': env.AWS_LAMBDA_FUNCTION_NAME,
        ...(env.AWS_LAMBDA_FUNCTION_VERSION ? { 'faas.version': env.AWS_LAMBDA_FUNCTION_VERSION } : {}),
        ...(env.AWS_LAMBDA_LOG_STREAM_NAME ? { 'faas.instance': env.AWS_LAMBDA_LOG_STREAM_NAME } : {}),
        // MB in Lambda's variable, bytes in the semantic conventions.
        ...(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE ? { 'faas.max_memory': Number(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE) * 1024 * 1024 } : {}),
      }
    : {};
  return defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'parley', ...lambda, ...options.resource }))
    .merge(detectResources({ detectors: [envDetector] }));
}
