import { Metrics as PowertoolsMetrics } from '@aws-lambda-powertools/metrics';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { traceIdFor } from '../../lib/checkpoint/trace';
import { memoryLog } from '../../lib/observability/log';
import {
  emfMetricsSink,
  logMetricsSink,
  memoryMetricsSink,
  type TurnMetricsRecord,
} from '../../lib/observability/metrics';

/*
 * Powertools Metrics writes each EMF document with a `Console` of its own built on process.stdout
 * (not the global console, which vitest intercepts), one `console.log` = one `process.stdout.write`
 * per document. So the spy goes on process.stdout.write, and every write must be one EMF JSON line.
 */
let writes: string[];

beforeEach(() => {
  // Powertools stays silent in dev mode or when disabled; the test wants its production output.
  vi.stubEnv('POWERTOOLS_DEV', undefined);
  vi.stubEnv('POWERTOOLS_METRICS_DISABLED', undefined);
  writes = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    writes.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  });
});

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

interface EmfDocument {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[];
  };
  [key: string]: unknown;
}

function documents(): EmfDocument[] {
  return writes.map((line) => {
    expect(line.endsWith('\n')).toBe(true);
    return JSON.parse(line) as EmfDocument;
  });
}

const sessionA = '0f8fad5b-d9cb-469f-a165-70867728950e';
const sessionB = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

const audioTurn: TurnMetricsRecord = {
  traceId: traceIdFor(sessionA),
  sessionId: sessionA,
  turnId: 'turn-a',
  status: 'completed',
  inputKind: 'audio',
  metrics: { t1: 0, t2: 310, t3: 312, t4: 340, t5: 720, t6: 735, runMs: 900, commitMs: 14, totalMs: 930 },
};

const textTurn: TurnMetricsRecord = {
  traceId: traceIdFor(sessionB),
  sessionId: sessionB,
  turnId: 'turn-b',
  status: 'completed',
  inputKind: 'text',
  metrics: { t1: 0, t3: 2, runMs: 41, commitMs: 9, totalMs: 55 },
};

describe('emfMetricsSink', () => {
  it('writes one EMF document per turn: Milliseconds metrics, service dimensions, ids as properties', () => {
    emfMetricsSink({ namespace: 'ParleyTest' }).publish(audioTurn);

    const [doc, ...more] = documents();
    expect(more).toEqual([]);
    const directive = doc!._aws.CloudWatchMetrics;
    expect(directive).toHaveLength(1);
    expect(directive[0]!.Namespace).toBe('ParleyTest');
    expect(typeof doc!._aws.Timestamp).toBe('number');

    const names = ['t1', 't2', 't3', 't4', 't5', 't6', 'runMs', 'commitMs', 'totalMs', 'timeToFirstAudioMs'];
    expect(directive[0]!.Metrics).toHaveLength(names.length);
    expect(new Set(directive[0]!.Metrics.map((m) => m.Name))).toEqual(new Set(names));
    for (const m of directive[0]!.Metrics) expect(m).toEqual({ Name: m.Name, Unit: 'Milliseconds' });

    expect(doc).toMatchObject({ t1: 0, t2: 310, t3: 312, t4: 340, t5: 720, t6: 735, runMs: 900, commitMs: 14, totalMs: 930 });
    expect(doc!.timeToFirstAudioMs).toBe(735);

    // Low cardinality: service overall and per input kind; the ids are properties, never dimensions.
    expect(directive[0]!.Dimensions).toEqual([['service', 'inputKind'], ['service']]);
    expect(doc).toMatchObject({
      service: 'parley',
      inputKind: 'audio',
      traceId: audioTurn.traceId,
      sessionId: sessionA,
      turnId: 'turn-a',
      status: 'completed',
    });
    expect(doc!.traceId).toMatch(/^[0-9a-f]{32}$/);
    const dimensionNames = directive[0]!.Dimensions.flat();
    for (const id of ['traceId', 'sessionId', 'turnId', 'status']) expect(dimensionNames).not.toContain(id);
  });

  it('leaves out the metrics a turn does not have', () => {
    emfMetricsSink().publish(textTurn);

    const [doc] = documents();
    const directive = doc!._aws.CloudWatchMetrics[0]!;
    expect(directive.Namespace).toBe('Parley');
    expect(directive.Metrics.map((m) => m.Name).sort()).toEqual(['commitMs', 'runMs', 't1', 't3', 'totalMs']);
    for (const absent of ['t2', 't4', 't5', 't6', 'timeToFirstAudioMs']) expect(doc).not.toHaveProperty(absent);
    expect(doc).toMatchObject({ t1: 0, t3: 2, runMs: 41, commitMs: 9, totalMs: 55, inputKind: 'text' });
  });

  it('carries nothing of one turn into the next', () => {
    const sink = emfMetricsSink();
    sink.publish(audioTurn);
    sink.publish(textTurn);

    const [first, second] = documents();
    expect(first!.traceId).toBe(audioTurn.traceId);
    expect(second).toMatchObject({ traceId: textTurn.traceId, sessionId: sessionB, turnId: 'turn-b', inputKind: 'text' });
    // A value kept from the first turn would show as a second value: runMs [900, 41].
    expect(second!.runMs).toBe(41);
    for (const absent of ['t2', 't4', 't5', 't6', 'timeToFirstAudioMs']) expect(second).not.toHaveProperty(absent);
    expect(second!._aws.CloudWatchMetrics[0]!.Metrics).toHaveLength(5);
    expect(second!._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['service', 'inputKind'], ['service']]);
  });

  it('with byInputKind false the only dimension is service, and inputKind is a property', () => {
    emfMetricsSink({ byInputKind: false, serviceName: 'parley-test' }).publish(textTurn);

    const [doc] = documents();
    expect(doc!._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['service']]);
    expect(doc).toMatchObject({ service: 'parley-test', inputKind: 'text', traceId: textTurn.traceId });
  });

  it('skips values that are not finite numbers and never throws', () => {
    const log = memoryLog();
    const sink = emfMetricsSink({ log });
    expect(() => sink.publish({ ...textTurn, metrics: { runMs: Number.NaN, totalMs: 12 } })).not.toThrow();

    const [doc] = documents();
    expect(doc!._aws.CloudWatchMetrics[0]!.Metrics.map((m) => m.Name)).toEqual(['totalMs']);
    expect(doc).not.toHaveProperty('runMs');
    expect(log.lines).toEqual([]);
  });

  it('drops a turn whose publish failed, logs it, and the next turn starts clean', () => {
    const log = memoryLog();
    const sink = emfMetricsSink({ log });
    vi.spyOn(PowertoolsMetrics.prototype, 'addMetadata').mockImplementationOnce(() => {
      throw new Error('boom');
    });
    expect(() => sink.publish(audioTurn)).not.toThrow();
    expect(writes).toEqual([]);
    expect(log.lines).toMatchObject([{ level: 'warn', message: 'turn metrics not published', turnId: 'turn-a', error: 'boom' }]);

    sink.publish(textTurn);
    const [doc, ...more] = documents();
    expect(more).toEqual([]);
    expect(doc!.runMs).toBe(41);
    expect(doc!._aws.CloudWatchMetrics[0]!.Metrics).toHaveLength(5);
    expect(doc!._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['service', 'inputKind'], ['service']]);
  });
});

describe('logMetricsSink', () => {
  it('writes one debug line with the ids and the metric values', () => {
    const log = memoryLog();
    logMetricsSink(log).publish(audioTurn);

    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]).toMatchObject({
      level: 'debug',
      message: 'turn metrics',
      traceId: audioTurn.traceId,
      sessionId: sessionA,
      turnId: 'turn-a',
      status: 'completed',
      inputKind: 'audio',
      metrics: { ...audioTurn.metrics, timeToFirstAudioMs: 735 },
    });
    expect(writes).toEqual([]);
  });
});

describe('memoryMetricsSink', () => {
  it('keeps copies of what was published', () => {
    const sink = memoryMetricsSink();
    sink.publish(textTurn);
    expect(sink.published).toEqual([textTurn]);
    expect(sink.published[0]).not.toBe(textTurn);
  });
});
