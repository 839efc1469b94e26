import { ParleyError } from '../errors';
import type { Classification, ClassifyOptions, IntentClassifier } from '../flow/classifier';
import type { DialogueMap } from '../flow/map';
import { createNlp } from './container';
import { addNerRules, createEntityExtractor, type EntityExtractor } from './entities';
import { isModelCurrent, modelHash, NLU_MODEL_FORMAT, type NluModel } from './model';

export { isModelCurrent, modelHash, type NluModel } from './model';

/**
 * The IntentClassifier port on nlp.js, from a model trained at build time (lib/nlu/train.ts). Loading
 * imports the exported nlp.js model and builds the entity rules from the map: no training, no file
 * access, no output. Cold-start cost is a few milliseconds.
 *
 * - `leader`: nlp.js's top intent over every intent, null when nlp.js answers None.
 * - `intent`: the best-scoring intent among `candidates` whose score reaches `map.nlu.threshold`.
 *   Scores are nlp.js's, normalized over all intents (and None), not re-normalized over the candidates.
 * - `entities`: enum -> canonical value (the key under `values`), regex -> the match (its first
 *   capture group when the pattern has one, as nlp.js does), `number` -> a number (digits or words).
 */
export function loadNluClassifier(map: DialogueMap, model: NluModel): IntentClassifier {
  if (!isModelCurrent(map, model)) {
    const given = (model ?? {}) as Partial<NluModel>;
    const found =
      given.format === NLU_MODEL_FORMAT
        ? `it was trained for a different dialogue map (model ${String(given.mapHash).slice(0, 12)}, map ${modelHash(map).slice(0, 12)})`
        : `it is not a ${NLU_MODEL_FORMAT} model`;
    throw new ParleyError('map.invalid', `the NLU model does not match the dialogue map: ${found}; run \`npm run build:nlu\``);
  }
  const { nlp, container } = createNlp(model.languages);
  // nlp.js keeps references into what it imports (and addNerRules adds to them): import a copy, so
  // the caller's model stays untouched and can be loaded again.
  nlp.import(structuredClone(model.nlp));
  restoreNoneIntent(nlp);
  addNerRules(nlp, map, model.languages);
  const extractors = new Map<string, EntityExtractor>(
    model.languages.map((language) => [language, createEntityExtractor(nlp, container, map, language)]),
  );
  const fallbackLanguage = model.languages.includes(map.language) ? map.language : model.languages[0]!;
  const threshold = map.nlu.threshold;

  return {
    async classify(text: string, options: ClassifyOptions): Promise<Classification> {
      const language = extractors.has(options.language) ? options.language : fallbackLanguage;
      const utterance = text.trim();
      if (!utterance) return { intent: null, score: 0, leader: null, entities: {} };
      const [result, entities] = await Promise.all([
        nlp.classify(language, utterance),
        extractors.get(language)!.extract(utterance),
      ]);
      const leader = result.intent && result.intent !== 'None' ? result.intent : null;
      let intent: string | null = null;
      let score = 0;
      for (const c of result.classifications ?? []) {
        if (c.intent !== 'None' && c.score >= threshold && options.candidates.includes(c.intent) && c.score > score) {
          intent = c.intent;
          score = c.score;
        }
      }
      return { intent, score, leader, entities };
    },
  };
}

/**
 * nlp.js 4.27 bug: a freshly trained intent classifier lists the None intent among its outputs, but
 * one imported from an export does not (Nlu#fromJSON sets `intentsArr` from the trained intents, and
 * None is only appended when `intentsArr` is computed lazily). An imported model then never answers
 * None, and gibberish with one known word lands on an intent. Unset it, so it is computed as after
 * training.
 */
function restoreNoneIntent(nlp: object): void {
  const managers = (nlp as { nluManager?: { domainManagers?: Record<string, { domains?: Record<string, { intentsArr?: unknown }> }> } })
    .nluManager?.domainManagers;
  for (const manager of Object.values(managers ?? {})) {
    for (const domain of Object.values(manager.domains ?? {})) domain.intentsArr = undefined;
  }
}

