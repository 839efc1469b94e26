import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DialogueMap } from '../flow/map';
import { isModelCurrent, type NluModel } from './model';
import { trainNlu } from './train';

/** The repository root (this file is lib/nlu/model-file.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * build/nlu/<map file name without .json>.nlu.json under the repo root (build/ is git-ignored). A map
 * in a subfolder of the repo keeps its folder, so examples/ru/dialogue_map.json does not overwrite
 * the root map's model: build/nlu/examples/ru/dialogue_map.nlu.json.
 */
export function modelPathFor(mapPath: string, repoRoot: string = REPO_ROOT): string {
  const file = `${basename(mapPath).replace(/\.json$/i, '')}.nlu.json`;
  const folder = relative(repoRoot, dirname(resolve(repoRoot, mapPath)));
  const inside = folder !== '' && !folder.startsWith('..') && !isAbsolute(folder);
  return inside ? join(repoRoot, 'build', 'nlu', folder, file) : join(repoRoot, 'build', 'nlu', file);
}

/** The model stored at `path`, or undefined when there is no file or it is not valid JSON. */
export function readModelFile(path: string): NluModel | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as NluModel;
  } catch {
    return undefined;
  }
}

/** Writes the model (creating its directory) through a temporary file, so a reader never sees half a model. Returns its size in bytes. */
export function writeModelFile(path: string, model: NluModel): number {
  mkdirSync(dirname(path), { recursive: true });
  const json = `${JSON.stringify(model)}\n`;
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, json);
  renameSync(tmp, path);
  return Buffer.byteLength(json);
}

/**
 * For the local runtime at start-up: the map's model file when it is current, else a freshly
 * trained model, written to that file. Logs nothing; the caller reports `trained` and `ms`.
 */
export async function loadOrTrain(
  map: DialogueMap,
  mapPath: string,
  options: { modelPath?: string } = {},
): Promise<{ model: NluModel; trained: boolean; ms: number; path: string }> {
  const started = performance.now();
  const path = options.modelPath ?? modelPathFor(mapPath);
  const stored = readModelFile(path);
  if (stored && isModelCurrent(map, stored)) return { model: stored, trained: false, ms: performance.now() - started, path };
  const model = await trainNlu(map);
  writeModelFile(path, model);
  return { model, trained: true, ms: performance.now() - started, path };
}
