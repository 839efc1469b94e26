import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { renderSchema } from '../../scripts/build-schema';

const file = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const committed = readFileSync(file('dialogue_map.schema.json'), 'utf8');
const schema = JSON.parse(committed) as Record<string, any>;
const ruMap = JSON.parse(readFileSync(file('examples/ru/dialogue_map.json'), 'utf8')) as Record<string, any>;

describe('dialogue_map.schema.json', () => {
  it('is what `npm run build:schema` generates from lib/flow/map.ts', () => {
    expect(committed, 'run `npm run build:schema`').toBe(renderSchema());
  });

  it('is a draft-07 schema of the map: required keys, named definitions, states and intents by reference', () => {
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.title).toBe('Parley dialogue map');
    expect(schema.type).toBe('object');
    expect(schema.required).toEqual(expect.arrayContaining(['name', 'language', 'initial_state', 'messages', 'intents', 'states']));
    // Fields with defaults are optional in a map file (the schema describes zod's input type).
    for (const optional of ['languages', 'nlu', 'prompts', 'entities', 'global_intents', 'actions', 'faq', 'voice', '$schema']) {
      expect(schema.required).not.toContain(optional);
      expect(schema.properties).toHaveProperty([optional]);
    }
    expect(schema.properties.states.additionalProperties).toEqual({ $ref: '#/definitions/State' });
    expect(schema.properties.intents.additionalProperties).toEqual({ $ref: '#/definitions/Intent' });
    expect(schema.properties.actions.additionalProperties).toEqual({ $ref: '#/definitions/Webhook' });
    expect(schema.properties.prompts.propertyNames).toEqual({ $ref: '#/definitions/PromptKey' });
    expect(schema.definitions.State.required).toEqual(['system_response']);
    expect(Object.keys(schema.definitions.Messages.properties)).toEqual([
      'not_understood',
      'action_failed',
      'action_timeout',
      'llm_error',
      'llm_timeout',
      'internal_error',
    ]);
    // Every $ref points at a definition that exists.
    const refs = [...committed.matchAll(/"\$ref": "#\/definitions\/([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(10);
    for (const ref of refs) expect(schema.definitions).toHaveProperty([ref]);
  });

  /*
   * No JSON Schema validator (ajv) is installed; zod's own JSON Schema reader rebuilds a validator
   * from the generated file, so this checks what the file says, not the zod schema it came from.
   */
  const validator = z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]);

  it('accepts examples/ru/dialogue_map.json', () => {
    const result = validator.safeParse(ruMap);
    expect(result.success, JSON.stringify(result.error?.issues)).toBe(true);
  });

  it('rejects what the loader rejects', () => {
    const broken = (edit: (m: Record<string, any>) => void) => {
      const copy = structuredClone(ruMap);
      edit(copy);
      return validator.safeParse(copy).success;
    };
    expect(broken(() => {})).toBe(true);
    expect(broken((m) => delete m.messages.llm_error)).toBe(false);
    expect(broken((m) => (m.states.welcome.system_response.playlist = []))).toBe(false);
    expect(broken((m) => (m.states.welcome.system_response.playlist[0].type = 'audio'))).toBe(false);
    expect(broken((m) => (m.prompts.welcome = 'no cache: or filler: prefix'))).toBe(false);
    expect(broken((m) => (m.language = 'russian'))).toBe(false);
    expect(broken((m) => (m.actions.create_order.timeout_ms = 60_000))).toBe(false);
  });
});
