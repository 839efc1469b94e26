/*
 * npm run build:nlu [map paths...]   (also `prepare`, so npm install / npm ci produce the models)
 *
 * Trains the NLU model of each dialogue map (default: ./dialogue_map.json and every
 * examples/**\/*.json) and writes it to build/nlu/ (lib/nlu/model-file.ts modelPathFor), where the
 * Lambda bundle imports it from. Prints one line per map; exits 1 if any map could not be built.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { languagesOf, loadDialogueMap } from '../lib/flow/map';
import { modelPathFor, REPO_ROOT, writeModelFile } from '../lib/nlu/model-file';
import { trainNlu } from '../lib/nlu/train';

function jsonFilesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return jsonFilesUnder(path);
      return entry.isFile() && entry.name.endsWith('.json') && !entry.name.endsWith('.schema.json') ? [path] : [];
    });
}

function defaultMaps(): string[] {
  const root = join(REPO_ROOT, 'dialogue_map.json');
  return [...(existsSync(root) ? [root] : []), ...jsonFilesUnder(join(REPO_ROOT, 'examples'))];
}

async function buildOne(mapPath: string): Promise<string> {
  const map = loadDialogueMap(JSON.parse(readFileSync(mapPath, 'utf8')));
  const started = performance.now();
  const model = await trainNlu(map);
  const ms = performance.now() - started;
  const out = modelPathFor(mapPath);
  const bytes = writeModelFile(out, model);
  const show = (p: string) => relative(process.cwd(), p) || p;
  return `${show(mapPath)} -> ${show(out)}: ${Object.keys(map.intents).length} intents, ${languagesOf(map).join('+')}, ${Math.round(ms)} ms, ${bytes} bytes`;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const maps = args.length ? args.map((p) => resolve(p)) : defaultMaps();
  if (!maps.length) {
    process.stderr.write('build:nlu: no dialogue map found (give map paths, or add ./dialogue_map.json)\n');
    return 1;
  }
  let failed = 0;
  for (const mapPath of maps) {
    try {
      process.stdout.write(`${await buildOne(mapPath)}\n`);
    } catch (err) {
      failed += 1;
      process.stderr.write(`build:nlu: ${relative(process.cwd(), mapPath) || mapPath}: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`build:nlu failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
