/**
 * Where a turn's server time goes: `npx tsx bench/profile.ts [--cpu]`.
 *
 * Runs the same scripted turns as `npm run bench` with instrumentation (so its absolute numbers are
 * a little higher), attributing each measured turn's time to:
 *   - client-side duration of every DynamoDB and @connections SDK call (send() -> resolved),
 *   - the server side of those calls (dynalite / the local gateway's @connections route, from the
 *     http 'request' event to the response 'finish'),
 *   - garbage-collection pauses inside the turn,
 * and, with --cpu, a V8 CPU profile of the measured turns bucketed by package.
 * Prints one JSON document on stdout.
 */
import './env';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { Session } from 'node:inspector';
import { PerformanceObserver } from 'node:perf_hooks';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { cpuCalibrationMs } from './machine';
import { median, progress, round3, summarize } from './stats';
import { benchTurns, type TurnSample } from './turns';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const withCpu = process.argv.includes('--cpu');
const plain = process.argv.includes('--plain');

interface Bucket {
  calls: Record<string, number[]>;
  serverSide: Record<string, number[]>;
  /** Request + response body bytes per server-side call. */
  bytes: Record<string, number[]>;
  start: number;
  end: number;
}
let current: Bucket | undefined;
const turns: Array<{ bucket: Bucket; sample: TurnSample }> = [];

function record(into: Record<string, number[]>, key: string, ms: number) {
  (into[key] ??= []).push(ms);
}

if (!plain) {
  // Client side of each SDK call. Both classes inherit send() from the smithy Client; an own
  // property on the subclass prototype shadows it.
  for (const [label, cls] of [
    ['dynamodb', DynamoDBClient],
    ['connections', ApiGatewayManagementApiClient],
  ] as const) {
    const proto = cls.prototype as unknown as { send: (...args: unknown[]) => Promise<unknown> };
    const original = proto.send;
    proto.send = async function (this: unknown, ...args: unknown[]) {
      const bucket = current;
      const name = `${label}:${(args[0] as object).constructor.name.replace(/Command$/, '')}`;
      const started = performance.now();
      try {
        return await original.apply(this, args);
      } finally {
        if (bucket) record(bucket.calls, name, performance.now() - started);
      }
    };
  }
  // Server side: every in-process HTTP server (dynalite and the gateway's @connections route).
  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function (this: http.Server, event: string, ...args: unknown[]) {
    if (event === 'request' && current) {
      const bucket = current;
      const req = args[0] as http.IncomingMessage;
      const res = args[1] as http.ServerResponse;
      const target = req.headers['x-amz-target'];
      const name = typeof target === 'string' ? `dynalite:${target.split('.').pop()}` : req.url?.includes('@connections') ? 'gateway:@connections' : 'other';
      const started = performance.now();
      res.once('finish', () => {
        record(bucket.serverSide, name, performance.now() - started);
        record(bucket.bytes, name, Number(req.headers['content-length'] ?? 0) + Number(res.getHeader('content-length') ?? 0));
      });
    }
    return (emit as (...a: unknown[]) => boolean).apply(this, [event, ...args]);
  } as typeof emit;
}

const gcs: Array<{ start: number; duration: number; kind: number }> = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcs.push({ start: e.startTime, duration: e.duration, kind: ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind) ?? -1 });
  }
});
gcObserver.observe({ entryTypes: ['gc'] });

const inspector = withCpu ? new Session() : undefined;
const post = (method: string, params?: object) =>
  new Promise<unknown>((ok, fail) => inspector!.post(method, params ?? {}, (err, res) => (err ? fail(err) : ok(res))));
let profiling: Promise<unknown> | undefined;
if (inspector) {
  inspector.connect();
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 100 });
}

const calibrationBefore = cpuCalibrationMs();
const result = await benchTurns({
  sessions: 5,
  turnsPerSession: 110,
  warmupTurns: 50,
  mapPath: join(REPO_ROOT, 'dialogue_map.json'),
  hooks: {
    turnStart() {
      if (inspector && !profiling) profiling = post('Profiler.start');
      current = { calls: {}, serverSide: {}, bytes: {}, start: performance.now(), end: 0 };
    },
    turnEnd(sample) {
      current!.end = performance.now();
      turns.push({ bucket: current!, sample });
      current = undefined;
    },
  },
});
let cpuProfile: CpuProfile | undefined;
if (inspector) {
  await profiling;
  cpuProfile = ((await post('Profiler.stop')) as { profile: CpuProfile }).profile;
  inspector.disconnect();
  const out = join(REPO_ROOT, 'node_modules', '.cache', 'parley-bench');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'turns.cpuprofile'), JSON.stringify(cpuProfile));
  progress(`CPU profile of the measured turns: ${join(out, 'turns.cpuprofile')}`);
}
gcObserver.disconnect();

// ---------------------------------------------------------------------------------------------------
// Per-turn attribution

const sum = (xs: readonly number[] | undefined) => (xs ?? []).reduce((a, b) => a + b, 0);
const keys = (pick: (b: Bucket) => Record<string, number[]>) => [...new Set(turns.flatMap((t) => Object.keys(pick(t.bucket))))].sort();
const gcIn = (b: Bucket) => gcs.filter((g) => g.start >= b.start && g.start < b.end).reduce((a, g) => a + g.duration, 0);

const perKey = (pick: (b: Bucket) => Record<string, number[]>) =>
  Object.fromEntries(
    keys(pick).map((k) => {
      const perTurn = turns.map((t) => sum(pick(t.bucket)[k]));
      const calls = turns.map((t) => pick(t.bucket)[k]?.length ?? 0);
      const each = turns.flatMap((t) => pick(t.bucket)[k] ?? []);
      return [k, { callsPerTurn: median(calls), perTurnP50: median(perTurn), perTurnMean: round3(sum(perTurn) / turns.length), perCallP50: median(each) }];
    }),
  );

const server = turns.map((t) => t.sample.serverMs);
const sdkDynamo = turns.map((t) => sum(Object.entries(t.bucket.calls).filter(([k]) => k.startsWith('dynamodb:')).flatMap(([, v]) => v)));
const sdkPosts = turns.map((t) => sum(Object.entries(t.bucket.calls).filter(([k]) => k.startsWith('connections:')).flatMap(([, v]) => v)));
const srvDynalite = turns.map((t) => sum(Object.entries(t.bucket.serverSide).filter(([k]) => k.startsWith('dynalite:')).flatMap(([, v]) => v)));
const srvConnections = turns.map((t) => sum(t.bucket.serverSide['gateway:@connections']));
const gcPerTurn = turns.map((t) => gcIn(t.bucket));
const outsideCalls = turns.map((t, i) => t.sample.serverMs - sdkDynamo[i]! - sdkPosts[i]!);

const slowest = [...turns.keys()].sort((a, b) => server[b]! - server[a]!).slice(0, Math.max(5, Math.ceil(turns.length / 100)));
const slow = slowest.map((i) => ({
  serverMs: round3(server[i]!),
  position: turns[i]!.sample.position,
  dynamoSdkMs: round3(sdkDynamo[i]!),
  postsSdkMs: round3(sdkPosts[i]!),
  gcMs: round3(gcPerTurn[i]!),
  slowestCall: Object.entries(turns[i]!.bucket.calls)
    .flatMap(([k, v]) => v.map((ms) => ({ k, ms })))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 2)
    .map((c) => `${c.k} ${round3(c.ms)}ms`),
}));

const report = {
  instrumented: !plain,
  turn: { ...summarize(server), clientRoundTripP50: median(turns.map((t) => t.sample.rttMs)) },
  ...(plain
    ? {}
    : {
        perTurnP50Ms: {
          server: median(server),
          dynamoSdkCalls: median(sdkDynamo),
          dynaliteServerSide: median(srvDynalite),
          postToConnectionSdkCalls: median(sdkPosts),
          gatewayConnectionsServerSide: median(srvConnections),
          outsideSdkCalls: median(outsideCalls),
          gc: median(gcPerTurn),
        },
        perTurnMeanMs: {
          server: round3(sum(server) / turns.length),
          dynamoSdkCalls: round3(sum(sdkDynamo) / turns.length),
          dynaliteServerSide: round3(sum(srvDynalite) / turns.length),
          postToConnectionSdkCalls: round3(sum(sdkPosts) / turns.length),
          gatewayConnectionsServerSide: round3(sum(srvConnections) / turns.length),
          outsideSdkCalls: round3(sum(outsideCalls) / turns.length),
          gc: round3(sum(gcPerTurn) / turns.length),
        },
        sdkCalls: perKey((b) => b.calls),
        serverSide: perKey((b) => b.serverSide),
        dynamoBytesByPosition: Object.fromEntries(
          ['dynalite:Query', 'dynalite:PutItem'].map((k) => [
            k,
            {
              turns1to10: median(turns.filter((t) => t.sample.position <= 10).map((t) => sum(t.bucket.bytes[k]))),
              turns101to110: median(turns.filter((t) => t.sample.position > 100).map((t) => sum(t.bucket.bytes[k]))),
            },
          ]),
        ),
        serverP50ByPosition: {
          turns1to10: median(turns.filter((t) => t.sample.position <= 10).map((t) => t.sample.serverMs)),
          turns101to110: median(turns.filter((t) => t.sample.position > 100).map((t) => t.sample.serverMs)),
        },
        turnsWithGc: gcPerTurn.filter((g) => g > 0).length,
        slowestTurns: slow,
      }),
  ...(cpuProfile ? { cpu: summarizeProfile(cpuProfile) } : {}),
  measuredTurns: turns.length,
  cpuCalibrationMs: { before: calibrationBefore, after: cpuCalibrationMs() },
  resultP50: result.p50,
};
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
process.exit(0);

// ---------------------------------------------------------------------------------------------------
// CPU profile, bucketed by where the code lives

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function bucketOf(url: string, fn: string): string {
  if (!url) {
    if (fn === '(idle)') return 'idle';
    if (fn === '(garbage collector)') return 'gc';
    if (fn === '(program)') return 'v8/native (program)';
    return 'native (V8/Node builtins: writev, microtasks, crypto...)';
  }
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) {
    const pkg = m[1]!;
    if (pkg.startsWith('@smithy/') || pkg.startsWith('@aws-sdk/') || pkg.startsWith('@aws-crypto/')) return 'aws-sdk (@aws-sdk, @smithy)';
    if (['dynalite', 'level', 'memory-level', 'abstract-level', 'classic-level', 'level-transcoder', 'lazy', 'async', 'big.js', 'buffer-crc32', 'lock', 'functional-red-black-tree', 'module-error', 'level-supports'].includes(pkg)) return 'dynalite + level';
    return pkg;
  }
  if (url.startsWith('node:')) {
    if (/node:(internal\/)?(http|_http|net|stream|internal\/streams|dns|url|internal\/url)/.test(url)) return 'node http/net/streams';
    return 'node other';
  }
  if (url.includes('/lib/')) return 'parley lib/';
  if (url.includes('/local/')) return 'parley local/ (gateway)';
  if (url.includes('/functions/')) return 'parley functions/';
  if (url.includes('/bench/')) return 'bench client';
  return 'other';
}

function summarizeProfile(profile: CpuProfile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const buckets: Record<string, number> = {};
  const fns: Record<string, number> = {};
  let total = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const node = byId.get(id)!;
    const { url, functionName, lineNumber } = node.callFrame;
    const bucket = bucketOf(url, functionName);
    buckets[bucket] = (buckets[bucket] ?? 0) + us;
    if (bucket !== 'idle') {
      total += us;
      const short = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/\/work\/main\//, '');
      const key = `${functionName || '(anonymous)'} ${short}:${lineNumber + 1}`;
      fns[key] = (fns[key] ?? 0) + us;
    }
  });
  const pct = (us: number) => Math.round((us / total) * 1000) / 10;
  return {
    what: 'self time of the measured turns (whole process: handlers, dynalite, gateway and the ws client share the event loop), excluding idle',
    busyMs: round3(total / 1000),
    busyMsPerTurn: round3(total / 1000 / turns.length),
    idleMs: round3((buckets.idle ?? 0) / 1000),
    byBucketMsPerTurn: Object.fromEntries(
      Object.entries(buckets)
        .filter(([k, us]) => k !== 'idle' && us / total >= 0.005)
        .sort((a, b) => b[1] - a[1])
        .map(([k, us]) => [k, round3(us / 1000 / turns.length)]),
    ),
    byBucketPercent: Object.fromEntries(
      Object.entries(buckets)
        .filter(([k]) => k !== 'idle')
        .sort((a, b) => b[1] - a[1])
        .map(([k, us]) => [k, pct(us)]),
    ),
    topFunctionsPercent: Object.fromEntries(
      Object.entries(fns)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 20)
        .map(([k, us]) => [k, pct(us)]),
    ),
  };
}
