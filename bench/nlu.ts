/**
 * The NLU figures of `npm run bench`, for the repo's dialogue_map.json:
 *
 * - training time and model size (build time, for reference);
 * - model load (loadNluClassifier) in this process, p50 over 20 loads, and in fresh `node` processes
 *   running an esbuild bundle that imports the model as Lambda's does (import, load, first classify);
 * - classification of typical inputs, p50/p99 over 2000 calls, and of inputs never seen before
 *   (nlp.js caches the tokens of texts it has seen);
 * - the size of lib/nlu/load.ts bundled alone, and what in it comes from nlp.js.
 */
import { runJsonChild } from './child';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build, type BuildOptions } from 'esbuild';
import { buildFaqIndex } from '../lib/faq/minisearch-index';
import { advanceFlow, candidateIntents, notUnderstood, stayAndSay } from '../lib/flow/engine';
import { languagesOf, loadDialogueMap } from '../lib/flow/map';
import { renderSay } from '../lib/flow/playlist';
import { loadNluClassifier, type NluModel } from '../lib/nlu/load';
import { loadOrTrain } from '../lib/nlu/model-file';
import { trainNlu } from '../lib/nlu/train';
import { median, progress, round3, summarize } from './stats';

/** Typical café inputs, as a user types them at different states. */
const TYPICAL_INPUTS = [
  'I want a coffee',
  'a large latte with oat milk please',
  'two small teas',
  'can I get a big hot chocolate',
  'what do you have',
  'yes',
  'no',
  'no, change it',
  'yes please go ahead',
  'large',
  'small please',
  'three',
  'say that again',
  'go back',
  'I want to talk to a person',
  'bye',
  'erm',
  'what is the weather like',
];

const BANNER =
  "import { createRequire as __parleyCreateRequire } from 'node:module'; const require = __parleyCreateRequire(import.meta.url);";

/** Built as bench/bundle.ts builds the Lambda functions (CDK's NodejsFunction settings). */
const ESBUILD_LAMBDA: BuildOptions = {
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  mainFields: ['module', 'main'],
  external: ['@aws-sdk/*'],
  banner: { js: BANNER },
  logLevel: 'silent',
};

const CHILD_SCRIPT = `
const url = process.argv[2];
const before = performance.now();
const mod = await import(url);
const imported = performance.now();
const result = await mod.run();
process.stdout.write(JSON.stringify({ importMs: imported - before, processStartToImportedMs: imported, ...result }));
`;

export interface NluBenchOptions {
  /** Where the fresh-process bundle goes (under node_modules so that ESM resolution finds packages). */
  outDir?: string;
  freshProcessRuns?: number;
  classifyCalls?: number;
}

export async function benchNlu(repoRoot: string, options: NluBenchOptions = {}) {
  const outDir = options.outDir ?? join(repoRoot, 'node_modules', '.cache', 'parley-bench-nlu');
  const calls = options.classifyCalls ?? 2000;
  const mapPath = join(repoRoot, 'dialogue_map.json');
  const map = loadDialogueMap(JSON.parse(readFileSync(mapPath, 'utf8')));

  progress('nlu: model file');
  const file = await loadOrTrain(map, mapPath);
  const modelText = JSON.stringify(file.model);
  const trainStarted = performance.now();
  await trainNlu(map);
  const trainMs = performance.now() - trainStarted;

  progress('nlu: loads in process');
  const parseMs: number[] = [];
  const loadMs: number[] = [];
  let classifier = loadNluClassifier(map, file.model);
  for (let i = 0; i < 20; i++) {
    const a = performance.now();
    const model = JSON.parse(modelText) as NluModel;
    const b = performance.now();
    classifier = loadNluClassifier(map, model);
    loadMs.push(performance.now() - b);
    parseMs.push(b - a);
  }

  progress(`nlu: ${calls} classifications`);
  const candidates = Object.keys(map.intents);
  const language = map.language;
  const time = async (text: string) => {
    const a = performance.now();
    await classifier.classify(text, { language, candidates });
    return performance.now() - a;
  };
  for (let i = 0; i < 200; i++) await time(TYPICAL_INPUTS[i % TYPICAL_INPUTS.length]!);
  const typical: number[] = [];
  for (let i = 0; i < calls; i++) typical.push(await time(TYPICAL_INPUTS[i % TYPICAL_INPUTS.length]!));
  const unseen: number[] = [];
  for (let i = 0; i < Math.min(calls, 1000); i++) unseen.push(await time(`${TYPICAL_INPUTS[i % TYPICAL_INPUTS.length]!} ${i}`));

  progress(`nlu: ${calls} classifications plus one flow step`);
  const faq = buildFaqIndex(map);
  const states = Object.keys(map.states);
  const stepTimes: number[] = [];
  for (let i = 0; i < calls + 200; i++) {
    const node = states[i % states.length]!;
    const text = TYPICAL_INPUTS[i % TYPICAL_INPUTS.length]!;
    const state = { node, history: ['welcome'], variables: { drink: 'latte', size: 'large', quantity: 1, milk: '' }, pending: null };
    const a = performance.now();
    // What the runner does for a text turn without I/O: classify, route (flow, else FAQ, else fallback), render.
    const c = await classifier.classify(text, { language, candidates: candidateIntents(map, node) });
    const result = advanceFlow(map, state, c) ?? (faq.search(text, language) ? stayAndSay(state, []) : notUnderstood(map, state));
    renderSay(map, result.say, { session: { variables: { ...result.state.variables }, language, node: result.state.node } }, node);
    if (i >= 200) stepTimes.push(performance.now() - a);
  }

  progress('nlu: fresh processes');
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const fresh = await freshProcessLoads(repoRoot, outDir, file.path, options.freshProcessRuns ?? 7);
  const alone = await bundleLoadAlone(repoRoot, outDir);

  return {
    map: relative(repoRoot, mapPath),
    intents: candidates.length,
    languages: languagesOf(map),
    model: {
      file: relative(repoRoot, file.path),
      bytes: Buffer.byteLength(modelText),
      trainedNow: file.trained,
      trainMs: round3(trainMs),
    },
    load: {
      what: 'loadNluClassifier(map, model): import the nlp.js export and build the entity rules (the JSON is already parsed)',
      inProcess: summarize(loadMs),
      jsonParseMedianMs: median(parseMs),
      freshProcess: fresh,
    },
    classify: {
      what: `classify(text, { language: '${language}', candidates: all ${candidates.length} intents }) with entities`,
      typical: summarize(typical),
      unseenInputs: summarize(unseen),
    },
    classifyAndStep: {
      what: 'classify + advanceFlow (else FAQ search, else notUnderstood) + renderSay, over every state of the map',
      ...summarize(stepTimes),
    },
    bundle: alone,
  };
}

/** One fresh `node` per run: import a bundle holding the map, the model and lib/nlu, then load and classify once. */
async function freshProcessLoads(repoRoot: string, outDir: string, modelPath: string, runs: number) {
  const outfile = join(outDir, 'fresh', 'index.mjs');
  mkdirSync(join(outDir, 'fresh'), { recursive: true });
  const rel = (p: string) => `./${relative(repoRoot, p).split('\\').join('/')}`;
  await build({
    ...ESBUILD_LAMBDA,
    absWorkingDir: repoRoot,
    outfile,
    stdin: {
      resolveDir: repoRoot,
      sourcefile: 'nlu-bench-entry.ts',
      loader: 'ts',
      contents: `
        import model from ${JSON.stringify(rel(modelPath))};
        import rawMap from './dialogue_map.json';
        import { loadDialogueMap } from './lib/flow/map';
        import { loadNluClassifier } from './lib/nlu/load';
        export async function run() {
          const a = performance.now();
          const map = loadDialogueMap(rawMap);
          const b = performance.now();
          const classifier = loadNluClassifier(map, model);
          const c = performance.now();
          await classifier.classify('a large latte with oat milk please', { language: map.language, candidates: Object.keys(map.intents) });
          const d = performance.now();
          return { mapMs: b - a, loadMs: c - b, firstClassifyMs: d - c };
        }
      `,
    },
  });
  const script = join(outDir, 'fresh', 'child.mjs');
  writeFileSync(script, CHILD_SCRIPT);
  const samples: Array<{ importMs: number; loadMs: number; firstClassifyMs: number; mapMs: number }> = [];
  // Sequential: parallel children would compete for the cores and inflate each other.
  for (let i = 0; i < runs; i++) samples.push(await runChild(script, outfile));
  const bytes = readFileSync(outfile).length;
  return {
    runs,
    what: 'a fresh node process imports a bundle of the map, the model and lib/nlu (as the turn Lambda does), then loads the classifier and classifies once',
    importMedianMs: median(samples.map((s) => s.importMs)),
    loadMedianMs: median(samples.map((s) => s.loadMs)),
    loadMaxMs: round3(Math.max(...samples.map((s) => s.loadMs))),
    firstClassifyMedianMs: median(samples.map((s) => s.firstClassifyMs)),
    mapValidateMedianMs: median(samples.map((s) => s.mapMs)),
    loadSamplesMs: samples.map((s) => round3(s.loadMs)),
    bundleBytes: bytes,
  };
}

function runChild(script: string, bundle: string): Promise<{ importMs: number; loadMs: number; firstClassifyMs: number; mapMs: number }> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
  return runJsonChild(script, bundle, env, 'nlu child');
}

/** lib/nlu/load.ts bundled alone (minified, node, @aws-sdk external): what NLU adds to a function bundle. */
async function bundleLoadAlone(repoRoot: string, outDir: string) {
  const outfile = join(outDir, 'alone', 'index.mjs');
  const result = await build({
    ...ESBUILD_LAMBDA,
    absWorkingDir: repoRoot,
    entryPoints: [join(repoRoot, 'lib', 'nlu', 'load.ts')],
    outfile,
    metafile: true,
  });
  const code = readFileSync(outfile);
  const byPackage: Record<string, number> = {};
  for (const [input, info] of Object.entries(result.metafile?.outputs[relative(repoRoot, outfile)]?.inputs ?? {})) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
    const key = m ? m[1]! : 'parley';
    byPackage[key] = (byPackage[key] ?? 0) + info.bytesInOutput;
  }
  return {
    what: 'lib/nlu/load.ts alone, minified ESM for node, @aws-sdk/* external (the model and the map excluded)',
    bytes: code.length,
    gzipBytes: gzipSync(code, { level: 9 }).length,
    nlpjsBytes: Object.entries(byPackage).reduce((sum, [name, bytes]) => (name.startsWith('@nlpjs/') ? sum + bytes : sum), 0),
    bytesByPackage: Object.fromEntries(Object.entries(byPackage).sort(([, a], [, b]) => b - a)),
  };
}
