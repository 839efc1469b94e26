/**
 * `npm run bench`: per-turn server time through the local gateway and dynalite, Lambda bundle sizes, the chat widget's size,
 * the cold import time of the turn bundle, the NLU (model load, classification), the LLM path and
 * speech latency, what tracing adds to a turn, how fast a recorded replay runs. Prints one JSON document on stdout; progress on stderr.
 * `npm run bench -- --only speech` runs the speech section alone; `npm run bench -- --only early` the early work on partial
 * transcripts (bench/early.ts; add `--tts-first-byte-ms 150` to delay the synthesizer's first chunk as a cloud one's).
 */
import './env';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleFunctions, coldImport, FUNCTIONS } from './bundle';
import { machine, machineAtEnd } from './machine';
import { benchLlm } from './llm';
import { benchNlu } from './nlu';
import { benchSpeech } from './speech';
import { benchEarly } from './early';
import { progress } from './stats';
import { benchReplay } from './replay';
import { benchTracing } from './tracing';
import { benchTurns } from './turns';
import { bundleWidget } from '../web/build';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT_ROOT = join(REPO_ROOT, 'node_modules', '.cache', 'parley-bench');

const TARGETS = {
  turnP50Ms: 5,
  turnP99Ms: 20,
  bundleBytes: 1.5 * 1024 * 1024,
  coldImportMs: 150,
  classifyP50Ms: 1,
  llmRunnerAddedP50Ms: 5,
  modelLoadMs: 20,
  /** Cached prompt: input.text sent -> first response.audio.delta at the client. */
  speechCachedFirstAudioP50Ms: 20,
  /** LLM + TTS: time to first audio minus the injected first token, first sentence and TTS first byte. */
  speechLlmTtsOverheadP50Ms: 10,
  /** A filler's first audio after its trigger (neutral: typing + neutralAfterMs; state filler: typing). */
  speechFillerStartP50Ms: 20,
  /** The answer's first TTS chunk -> its first audio delta (after the clear) at the client. */
  speechAnswerStartP50Ms: 20,
  /** The chat widget's script, gzipped (it has no voice-activity model to leave out). */
  widgetGzipBytes: 40 * 1024,
};

type SpeechResult = Awaited<ReturnType<typeof benchSpeech>>;

async function runSpeech(): Promise<SpeechResult | { error: string }> {
  progress('speech');
  return benchSpeech(REPO_ROOT).catch((err: unknown) => ({
    error: `the speech benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
  }));
}

function speechPass(speech: SpeechResult | { error: string }) {
  const ok = 'error' in speech ? undefined : speech;
  return {
    speechCachedFirstAudioP50Ms: ok !== undefined && ok.cachedPromptFirstAudio.p50 <= TARGETS.speechCachedFirstAudioP50Ms,
    speechCachedNoSynthesis: ok !== undefined && ok.cachedPromptFirstAudio.synthesizerCalls === 0,
    speechLlmTtsOverheadP50Ms: ok !== undefined && ok.llmTtsOverhead.p50 <= TARGETS.speechLlmTtsOverheadP50Ms,
    speechFillerStartP50Ms: ok !== undefined && ok.fillerStart.p50 <= TARGETS.speechFillerStartP50Ms,
    speechStateFillerStartP50Ms: ok !== undefined && ok.stateFillerStart.p50 <= TARGETS.speechFillerStartP50Ms,
    speechAnswerStartP50Ms: ok !== undefined && ok.answerStart.p50 <= TARGETS.speechAnswerStartP50Ms,
  };
}

type EarlyResult = Awaited<ReturnType<typeof benchEarly>>;

async function runEarly(): Promise<EarlyResult | { error: string }> {
  progress('early work on partial transcripts');
  // `--tts-first-byte-ms 150`: the synthesizer's first chunk delayed as a cloud one's would be (default: eSpeak as it is).
  const at = process.argv.indexOf('--tts-first-byte-ms');
  const ttsFirstByteMs = at < 0 ? 0 : Number(process.argv[at + 1]);
  if (!Number.isFinite(ttsFirstByteMs) || ttsFirstByteMs < 0) throw new Error(`--tts-first-byte-ms takes milliseconds, got '${process.argv[at + 1] ?? ''}'`);
  return benchEarly(REPO_ROOT, { ttsFirstByteMs }).catch((err: unknown) => ({
    error: `the early-work benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
  }));
}

/** `--only speech` / `--only early`: that section alone, with the machine it ran on. */
function onlySection(argv: readonly string[]): string | undefined {
  const at = argv.indexOf('--only');
  if (at < 0) return undefined;
  const name = argv[at + 1];
  if (name !== 'speech' && name !== 'early') throw new Error(`--only takes 'speech' or 'early' (the sections that run alone), got '${name ?? ''}'`);
  return name;
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  const only = onlySection(process.argv.slice(2));
  const info = machine();

  if (only === 'speech') {
    const speech = await runSpeech();
    const result = {
      machine: info,
      speech,
      targets: TARGETS,
      pass: speechPass(speech),
      machineAtEnd: machineAtEnd(),
      benchWallSeconds: Math.round(performance.now() - startedAt) / 1000,
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }

  if (only === 'early') {
    const early = await runEarly();
    const result = { machine: info, early, machineAtEnd: machineAtEnd(), benchWallSeconds: Math.round(performance.now() - startedAt) / 1000 };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }

  progress('turn benchmark');
  const turn = await benchTurns({
    sessions: 5,
    turnsPerSession: 110,
    warmupTurns: 50,
    mapPath: join(REPO_ROOT, 'dialogue_map.json'),
  });

  progress('bundling');
  const bundles = await bundleFunctions(REPO_ROOT, join(OUT_ROOT, 'sdk-external'), 'external');
  // What is deployed: the AWS SDK bundled in, as AWS recommends for cold starts.
  const deployed = await bundleFunctions(REPO_ROOT, join(OUT_ROOT, 'deployed'), 'bundled');
  const widgetBundle = await bundleWidget();
  const widget = { bytes: widgetBundle.js.length, gzipBytes: widgetBundle.gzipBytes, what: 'web/widget bundled by web/build.ts (what build:web and the stack publish), gzip -9' };
  const sizes = (set: typeof bundles) =>
    Object.fromEntries(FUNCTIONS.map((name) => [name, { bytes: set[name].bytes, gzipBytes: set[name].gzipBytes, sourceMapBytes: set[name].sourceMapBytes, file: set[name].file }]));
  const bundle = { ...sizes(bundles), what: 'minified, @aws-sdk external', deployed: { ...sizes(deployed), what: 'minified, @aws-sdk bundled in (what the CDK stack deploys)' } };

  progress('cold imports');
  const cold = await coldImport(deployed.turn.file, OUT_ROOT, 7);
  // What Lambda actually runs: the CDK construct sets NODE_OPTIONS=--enable-source-maps.
  const coldWithSourceMaps = await coldImport(deployed.turn.file, OUT_ROOT, 7, '--enable-source-maps');
  const coldSdkExternal = await coldImport(bundles.turn.file, OUT_ROOT, 7);

  progress('llm');
  const llm = await benchLlm(REPO_ROOT).catch((err: unknown) => ({
    error: `the LLM benchmark failed: ${err instanceof Error ? err.message : String(err)}`,
  }));
  const llmOk = 'error' in llm ? undefined : llm;

  progress('nlu');
  const nlu = await benchNlu(REPO_ROOT).catch((err: unknown) => ({
    error: `the NLU benchmark failed: ${err instanceof Error ? err.message : String(err)}`,
  }));
  const nluOk = 'error' in nlu ? undefined : nlu;

  const speech = await runSpeech();

  const early = await runEarly();

  progress('tracing');
  const tracing = await benchTracing(REPO_ROOT).catch((err: unknown) => ({
    error: `the tracing benchmark failed: ${err instanceof Error ? err.message : String(err)}`,
  }));

  progress('replay');
  const replay = await benchReplay(REPO_ROOT).catch((err: unknown) => ({
    error: `the replay benchmark failed: ${err instanceof Error ? err.message : String(err)}`,
  }));

  // The 1.5 MB target is met by the deployed bundles, which include the SDK, not only by the external ones.
  const largestBundle = Math.max(...FUNCTIONS.map((name) => Math.max(bundles[name].bytes, deployed[name].bytes)));
  const result = {
    machine: info,
    turn,
    bundle,
    widget,
    coldImport: {
      ...cold,
      bundle: 'turn',
      what: 'the deployed turn bundle (@aws-sdk bundled in)',
      sdkExternal: { medianMs: coldSdkExternal.medianMs, what: 'the same code with @aws-sdk left to the runtime: its many ESM files cost more to load' },
      withEnableSourceMaps: {
        medianMs: coldWithSourceMaps.medianMs,
        minMs: coldWithSourceMaps.minMs,
        maxMs: coldWithSourceMaps.maxMs,
        what: 'same, with NODE_OPTIONS=--enable-source-maps as the CDK construct sets for the functions',
      },
    },
    nlu,
    llm,
    speech,
    early,
    tracing,
    replay,
    targets: TARGETS,
    pass: {
      turnP50Ms: turn.p50 <= TARGETS.turnP50Ms,
      turnP99Ms: turn.p99 <= TARGETS.turnP99Ms,
      bundleBytes: largestBundle <= TARGETS.bundleBytes,
      widgetGzipBytes: widget.gzipBytes <= TARGETS.widgetGzipBytes,
      coldImportMs: cold.medianMs <= TARGETS.coldImportMs,
      classifyP50Ms: nluOk !== undefined && nluOk.classifyAndStep.p50 <= TARGETS.classifyP50Ms,
      modelLoadMs: nluOk !== undefined && nluOk.load.inProcess.p50 <= TARGETS.modelLoadMs,
      llmRunnerAddedP50Ms: llmOk !== undefined && llmOk.runnerAddedMs.p50 <= TARGETS.llmRunnerAddedP50Ms,
      modelLoadFreshProcessMs: nluOk !== undefined && nluOk.load.freshProcess.loadMedianMs <= TARGETS.modelLoadMs,
      ...speechPass(speech),
    },
    machineAtEnd: machineAtEnd(),
    benchWallSeconds: Math.round(performance.now() - startedAt) / 1000,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
