import { type DialogueMap, languagesOf } from '../flow/map';
import { createNlp } from './container';
import { modelHash, NLU_MODEL_FORMAT, type NluModel } from './model';

export type { NluModel } from './model';

/** The NLU intent an FAQ entry trains; `:` cannot occur in a map's own intent names. */
export const faqIntent = (id: string): string => `faq:${id}`;

/** An intent's examples per language: a plain list is in the map's own language. */
export function examplesByLanguage(map: DialogueMap): Record<string, { intent: string; utterance: string }[]> {
  const result: Record<string, { intent: string; utterance: string }[]> = {};
  for (const language of languagesOf(map)) result[language] = [];
  for (const [intent, def] of Object.entries(map.intents)) {
    const perLanguage = Array.isArray(def.examples) ? { [map.language]: def.examples } : def.examples;
    for (const [language, examples] of Object.entries(perLanguage)) {
      (result[language] ??= []).push(...examples.map((utterance) => ({ intent, utterance })));
    }
  }
  return result;
}

/**
 * Trains nlp.js on the map's examples, every language of the map. Build time only (npm run
 * build:nlu, or the local runtime when its model file is stale): never inside a turn. Writes no
 * file and prints nothing. Deterministic: the same map gives the same model.
 */
export async function trainNlu(map: DialogueMap): Promise<NluModel> {
  const byLanguage = examplesByLanguage(map);
  const languages = Object.keys(byLanguage);
  const { nlp } = createNlp(languages);
  for (const [language, examples] of Object.entries(byLanguage)) {
    for (const { intent, utterance } of examples) nlp.addDocument(language, utterance, intent);
  }
  // FAQ questions compete as intents of their own: "what time do you open?" must not lend its
  // score to a scripted intent that shares a few words with it, so the FAQ gets to answer.
  for (const entry of map.faq) {
    for (const question of entry.questions) nlp.addDocument(map.language, question, faqIntent(entry.id));
  }
  await nlp.train();
  return {
    format: NLU_MODEL_FORMAT,
    mapHash: modelHash(map),
    languages,
    nlp: JSON.parse(nlp.export(true)) as Record<string, unknown>,
  };
}
