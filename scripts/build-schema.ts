/*
 * Generates dialogue_map.schema.json from the zod DialogueMap (lib/flow/map.ts), the single
 * definition of the format, so editors validate and autocomplete maps that say
 * `"$schema": "./dialogue_map.schema.json"`.
 *
 *   npm run build:schema            writes the file
 *   npm run build:schema -- --check exits 1 if the committed file differs from what would be written
 *
 * Draft-07 (VS Code's JSON language service handles it best), the input type (fields with defaults
 * are optional), descriptions from the schemas' `.describe()`, and the map's building blocks as
 * named definitions so hovers and errors say "State", "Intent", … instead of repeating them inline.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as z from 'zod';
import * as map from '../lib/flow/map';

export const SCHEMA_FILE = resolve(fileURLToPath(new URL('..', import.meta.url)), 'dialogue_map.schema.json');

/** The parts of the format that get a name under `definitions`. */
const DEFINITIONS: [z.ZodType, string][] = [
  [map.Localized, 'Localized'],
  [map.PromptKey, 'PromptKey'],
  [map.PlaylistItem, 'PlaylistItem'],
  [map.Playlist, 'Playlist'],
  [map.Target, 'Target'],
  [map.State, 'State'],
  [map.Slot, 'Slot'],
  [map.Intent, 'Intent'],
  [map.Entity, 'Entity'],
  [map.GlobalIntent, 'GlobalIntent'],
  [map.Webhook, 'Webhook'],
  [map.FaqEntry, 'FaqEntry'],
  [map.Messages, 'Messages'],
];

/**
 * The metadata zod reads while converting: the global registry (`.describe()`, `.meta()`) plus an
 * id for each definition. A separate registry, so the shared global one is never modified.
 */
function metadataRegistry() {
  const ids = new Map<unknown, string>(DEFINITIONS.map(([schema, id]) => [schema, id]));
  const registry = z.registry<Record<string, unknown>>();
  registry.get = ((schema: z.ZodType) => {
    const meta = z.globalRegistry.get(schema);
    const id = ids.get(schema);
    return id === undefined ? meta : { ...meta, id };
  }) as typeof registry.get;
  return registry;
}

export function buildSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(map.DialogueMap, {
    target: 'draft-07',
    io: 'input',
    metadata: metadataRegistry(),
  }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return {
    $schema,
    title: 'Parley dialogue map',
    description: 'What a Parley bot says and how it moves: states, intents, entities, prompts, actions and FAQ. Generated from lib/flow/map.ts by `npm run build:schema`; do not edit.',
    ...rest,
  };
}

/** The file's text: two-space indentation and a trailing newline. */
export const renderSchema = (): string => `${JSON.stringify(buildSchema(), null, 2)}\n`;

function main(args: readonly string[]): number {
  const text = renderSchema();
  if (args.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(SCHEMA_FILE, 'utf8');
    } catch {
      // a missing file differs
    }
    if (current === text) {
      console.log('dialogue_map.schema.json is up to date');
      return 0;
    }
    console.error('dialogue_map.schema.json is out of date with lib/flow/map.ts: run `npm run build:schema`');
    return 1;
  }
  writeFileSync(SCHEMA_FILE, text);
  console.log(`wrote ${SCHEMA_FILE}`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
