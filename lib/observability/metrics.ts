import { MetricUnit, Metrics as PowertoolsMetrics } from '@aws-lambda-powertools/metrics';
import type { Metrics } from '../protocol/v1';
import type { Log } from './log';

/** One committed turn, as the metrics port sees it. */
export interface TurnMetricsRecord {
  traceId: string;
  sessionId: string;
  turnId: string;
  status: string;
  inputKind: string;
  metrics: Metrics;
}

/**
 * Port for per-turn latency metrics. `publish` is synchronous and complete: whatever it records for
 * one turn is written (or dropped) before it returns, so nothing of a conversation is left behind
 * for the next turn. It never throws: metrics must not fail a turn.
 */
export interface TurnMetricsSink {
  publish(turn: TurnMetricsRecord): void;
}

/** The turn timings published as metrics, in ms. Any other key a `Metrics` object carries is not. */
export const TURN_METRIC_NAMES = ['t1', 't2', 't3', 't4', 't5', 't6', 'runMs', 'commitMs', 'totalMs'] as const;

/** What a user waits for before hearing the bot: t6 (first bot audio sent, counted from t1). */
export const TIME_TO_FIRST_AUDIO = 'timeToFirstAudioMs';

/** The values a turn publishes, by metric name: only those present (and finite), plus the derived ones. */
export function turnMetricValues(metrics: Metrics): Record<string, number> {
  const values: Record<string, number> = {};
  for (const name of TURN_METRIC_NAMES) {
    const value = metrics[name];
    if (typeof value === 'number' && Number.isFinite(value)) values[name] = value;
  }
  if (values.t6 !== undefined) values[TIME_TO_FIRST_AUDIO] = values.t6;
  return values;
}

export interface EmfMetricsSinkOptions {
  /** CloudWatch namespace. Default `Parley`. */
  namespace?: string;
  /** The `service` dimension. Default `parley` (the Logger's service name). */
  serviceName?: string;
  /**
   * Also publish every metric per input kind (dimension set `[service, inputKind]`), next to the
   * `[service]` set that gives the overall percentiles (CloudWatch cannot merge percentiles across
   * dimension values). Input kinds are a handful of fixed values. Default true.
   */
  byInputKind?: boolean;
  /** Where Powertools' own warnings and a failed publish go. Default: nowhere. */
  log?: Log;
}

/**
 * Publishes each turn as one CloudWatch Embedded Metric Format document on stdout (Powertools for
 * AWS Lambda Metrics), which CloudWatch Logs turns into metrics in `namespace`.
 *
 * Dimensions stay low-cardinality: `service`, and `inputKind` in a second set. The trace, session
 * and turn ids and the status are metadata: plain properties of the document, searchable with
 * Logs Insights, never dimensions.
 *
 * The Powertools instance holds only its configuration between turns: `publish` adds one turn's
 * metrics, dimensions and metadata and flushes them (`publishStoredMetrics`, which clears them) in
 * one synchronous call, so no other turn can interleave and nothing of one turn reaches the next.
 * Powertools writes nothing when `POWERTOOLS_METRICS_DISABLED` is true, or when `POWERTOOLS_DEV`
 * is and `POWERTOOLS_METRICS_DISABLED` is unset.
 */
export function emfMetricsSink(options: EmfMetricsSinkOptions = {}): TurnMetricsSink {
  const log = options.log;
  const byInputKind = options.byInputKind ?? true;
  const metrics = new PowertoolsMetrics({
    namespace: options.namespace ?? 'Parley',
    serviceName: options.serviceName ?? 'parley',
    ...(log ? { logger: genericLogger(log) } : {}),
  });
  return {
    publish(turn) {
      const values = turnMetricValues(turn.metrics);
      if (Object.keys(values).length === 0) return;
      try {
        for (const [name, value] of Object.entries(values)) metrics.addMetric(name, MetricUnit.Milliseconds, value);
        if (byInputKind) {
          // addDimension extends the first set to [service, inputKind]; addDimensions({}) adds a
          // second set holding the default dimension alone: [service].
          metrics.addDimension('inputKind', turn.inputKind);
          metrics.addDimensions({});
        } else {
          metrics.addMetadata('inputKind', turn.inputKind);
        }
        metrics
          .addMetadata('traceId', turn.traceId)
          .addMetadata('sessionId', turn.sessionId)
          .addMetadata('turnId', turn.turnId)
          .addMetadata('status', turn.status)
          .publishStoredMetrics();
      } catch (error) {
        // publishStoredMetrics clears what it stored even when it throws; an add that threw did not get there.
        metrics.clearMetrics();
        metrics.clearDimensions();
        metrics.clearMetadata();
        log?.warn('turn metrics not published', { turnId: turn.turnId, error: error instanceof Error ? error.message : String(error) });
      }
    },
  };
}

/** For the local runtime: the same values as one debug line. */
export function logMetricsSink(log: Log): TurnMetricsSink {
  return {
    publish(turn) {
      const { metrics, ...ids } = turn;
      log.debug('turn metrics', { ...ids, metrics: turnMetricValues(metrics) });
    },
  };
}

export const noMetricsSink: TurnMetricsSink = { publish: () => {} };

/** Keeps what was published in memory: for tests that assert a turn's metrics. */
export function memoryMetricsSink(published: TurnMetricsRecord[] = []): TurnMetricsSink & { published: TurnMetricsRecord[] } {
  return { published, publish: (turn) => void published.push(structuredClone(turn)) };
}

function genericLogger(log: Log) {
  const text = (content: unknown[]) => content.map(String).join(' ');
  return {
    debug: (...content: unknown[]) => log.debug(text(content)),
    info: (...content: unknown[]) => log.info(text(content)),
    warn: (...content: unknown[]) => log.warn(text(content)),
    error: (...content: unknown[]) => log.error(text(content)),
  };
}
