import { runJsonChild } from './child';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build, stop } from 'esbuild';
import { median, progress, round3 } from './stats';

/**
 * Bundles as infra/parley-construct.ts has CDK's NodejsFunction do it (esbuild: bundle, minify, ESM,
 * node22, mainFields module,main, the createRequire banner, linked source map). `awsSdk: 'bundled'`
 * is what is deployed; `'external'` leaves @aws-sdk/* to the Lambda runtime, the size the issue
 * tracks.
 *
 * The output lives under node_modules/.cache/parley-bench/ (git-ignored) rather than os.tmpdir():
 * with @aws-sdk/* external the cold-import child must resolve it from the repo's node_modules, and
 * ESM resolution only walks up from the importing file.
 */
export const FUNCTIONS = ['turn', 'connect', 'disconnect'] as const;
export type FunctionName = (typeof FUNCTIONS)[number];

const BANNER =
  "import { createRequire as __parleyCreateRequire } from 'node:module'; const require = __parleyCreateRequire(import.meta.url);";

export interface BundleResult {
  file: string;
  bytes: number;
  gzipBytes: number;
  sourceMapBytes: number;
}

export async function bundleFunctions(repoRoot: string, outRoot: string, awsSdk: 'external' | 'bundled' = 'external'): Promise<Record<FunctionName, BundleResult>> {
  rmSync(outRoot, { recursive: true, force: true });
  const results = {} as Record<FunctionName, BundleResult>;
  for (const name of FUNCTIONS) {
    const outdir = join(outRoot, name);
    mkdirSync(outdir, { recursive: true });
    const outfile = join(outdir, 'index.mjs');
    await build({
      absWorkingDir: repoRoot,
      entryPoints: [join(repoRoot, 'functions', name, 'handler.ts')],
      outfile,
      bundle: true,
      minify: true,
      sourcemap: true,
      format: 'esm',
      platform: 'node',
      target: 'node22',
      mainFields: ['module', 'main'],
      external: awsSdk === 'external' ? ['@aws-sdk/*'] : [],
      banner: { js: BANNER },
      logLevel: 'silent',
    });
    const code = readFileSync(outfile);
    results[name] = {
      file: outfile,
      bytes: code.length,
      gzipBytes: gzipSync(code, { level: 9 }).length,
      sourceMapBytes: statSync(`${outfile}.map`).size,
    };
    progress(`bundled ${name} (@aws-sdk ${awsSdk}): ${code.length} bytes`);
  }
  await stop();
  return results;
}

const COLD_IMPORT_SCRIPT = `
const url = process.argv[2];
const before = performance.now();
const mod = await import(url);
const after = performance.now();
if (typeof mod.handler !== 'function') throw new Error('the bundle exports no handler');
process.stdout.write(JSON.stringify({ importMs: after - before, processStartToImportedMs: after }));
`;

interface ColdImportSample {
  importMs: number;
  processStartToImportedMs: number;
}

function importOnce(script: string, bundle: string, nodeOptions: string | undefined): Promise<ColdImportSample> {
  // A clean environment as in Lambda: no tsx loader (it lives in execArgv, not inherited here).
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PARLEY_TABLE: 'parley',
    AWS_REGION: 'us-east-1',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
  };
  return runJsonChild<ColdImportSample>(script, bundle, env, 'cold import');
}

export async function coldImport(bundle: string, outRoot: string, runs: number, nodeOptions?: string) {
  const script = join(outRoot, 'cold-import.mjs');
  writeFileSync(script, COLD_IMPORT_SCRIPT);
  const samples: ColdImportSample[] = [];
  // Sequential: parallel children would compete for the 2 cores and inflate each other.
  for (let i = 0; i < runs; i++) samples.push(await importOnce(script, bundle, nodeOptions));
  const ms = samples.map((s) => s.importMs);
  return {
    runs,
    medianMs: median(ms),
    minMs: round3(Math.min(...ms)),
    maxMs: round3(Math.max(...ms)),
    samplesMs: ms.map(round3),
    processStartToImportedMedianMs: median(samples.map((s) => s.processStartToImportedMs)),
  };
}
