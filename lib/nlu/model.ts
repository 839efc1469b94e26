import { createHash } from 'node:crypto';
import { type DialogueMap, languagesOf } from '../flow/map';

/** The trained NLU model as stored in build/nlu/<map>.nlu.json. Plain JSON. */
export interface NluModel {
  format: typeof NLU_MODEL_FORMAT;
  /** modelHash() of the map it was trained from: a model for another map (or an older one) is refused. */
  mapHash: string;
  languages: string[];
  /** nlp.js's own export (Nlp#export, parsed). */
  nlp: Record<string, unknown>;
}

export const NLU_MODEL_FORMAT = 'parley-nlu/1';

/**
 * Bumped when training changes in a way that makes existing model files wrong (settings, language
 * components), so they count as stale.
 */
const TRAINER_VERSION = 2;

/** JSON with object keys sorted at every level, so equal maps hash equally whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** SHA-256 (hex) of the canonical JSON of what the model depends on: intents, entities, languages, nlu settings, FAQ questions. */
export function modelHash(map: DialogueMap): string {
  const basis = {
    trainer: TRAINER_VERSION,
    intents: map.intents,
    entities: map.entities,
    languages: languagesOf(map),
    nlu: map.nlu,
    faq: map.faq.map((entry) => ({ id: entry.id, questions: entry.questions })),
  };
  return createHash('sha256').update(canonicalJson(basis)).digest('hex');
}

/** Whether `model` is a Parley NLU model trained from this very map. */
export function isModelCurrent(map: DialogueMap, model: unknown): model is NluModel {
  if (!model || typeof model !== 'object') return false;
  const m = model as Partial<NluModel>;
  return m.format === NLU_MODEL_FORMAT && typeof m.nlp === 'object' && m.nlp !== null && m.mapHash === modelHash(map);
}
