/*
 * npm run lint:map [paths...]
 *
 * Lints dialogue maps (default: ./dialogue_map.json and every examples/**\/dialogue_map.json).
 * Prints one `file: $.path: message [rule]` line per problem (warnings say so), a summary, and exits
 * 1 if any file has an error (unreadable, not JSON, not a map, or an error-level lint rule), else 0.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DialogueMap, loadDialogueMap } from '../lib/flow/map';
import { jsonPath, type LintProblem, lintMap } from '../lib/flow/lint';

/** A problem of one file: a lint problem, or why the file could not be linted. */
export interface FileProblem {
  path: string;
  rule: string;
  severity: 'error' | 'warning';
  message: string;
}

const fileError = (rule: string, path: string, message: string): FileProblem => ({ path, rule, severity: 'error', message });

/** Reads, parses, validates and lints one file. */
export function lintFile(file: string): FileProblem[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return [fileError('unreadable', '$', (err as Error).message)];
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return [fileError('invalid-json', '$', (err as Error).message)];
  }
  // The loader's schema check, with every issue at its own path.
  const parsed = DialogueMap.safeParse(json);
  if (!parsed.success) {
    return parsed.error.issues.map((issue) => fileError('schema', jsonPath(issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))), issue.message));
  }
  const problems: FileProblem[] = lintMap(parsed.data);
  // Whatever else the runtime's loader refuses, so a clean lint always means the map loads.
  if (!problems.some((p) => p.severity === 'error')) {
    try {
      loadDialogueMap(json);
    } catch (err) {
      problems.unshift(fileError('load', '$', (err as Error).message.replace(/\s*\n\s*/g, ' ')));
    }
  }
  return problems;
}

/** ./dialogue_map.json and every examples/**\/dialogue_map.json under `root`, relative to it. */
export function defaultFiles(root: string): string[] {
  const files = existsSync(join(root, 'dialogue_map.json')) ? ['dialogue_map.json'] : [];
  const examples = join(root, 'examples');
  if (existsSync(examples)) {
    const found = readdirSync(examples, { recursive: true, encoding: 'utf8' })
      .filter((f) => f === 'dialogue_map.json' || f.endsWith('/dialogue_map.json') || f.endsWith('\\dialogue_map.json'))
      .map((f) => relative(root, join(examples, f)))
      .sort();
    files.push(...found);
  }
  return files;
}

export const formatProblem = (file: string, p: FileProblem | LintProblem): string =>
  `${file}: ${p.path}: ${p.severity === 'warning' ? 'warning: ' : ''}${p.message} [${p.rule}]`;

function main(args: readonly string[]): number {
  const files = args.length ? [...args] : defaultFiles(process.cwd());
  if (files.length === 0) {
    console.error('lint:map: no dialogue maps found (pass paths, or run from the project root)');
    return 1;
  }
  let errors = 0;
  let warnings = 0;
  for (const file of files) {
    for (const p of lintFile(file)) {
      if (p.severity === 'error') errors++;
      else warnings++;
      console.log(formatProblem(file, p));
    }
  }
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  console.log(`${plural(files.length, 'map')} checked: ${plural(errors, 'error')}, ${plural(warnings, 'warning')}`);
  return errors > 0 ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
