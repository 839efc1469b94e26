import type { NlpContainer } from '@nlpjs/core';
import type { NlpInstance } from '@nlpjs/nlp';
import type { Entities } from '../flow/classifier';
import type { DialogueMap } from '../flow/map';
import { findNumbers } from './numbers';

/*
 * Entities from the map, per language: enums and regexes become nlp.js NER rules (exact and fuzzy
 * matching of the synonyms, regex matching), built at load from the map. nlp.js's enum matching
 * knows no inflection, so an enum value it misses is looked for once more by word stems and, in
 * Russian and Turkish, by endings ("чаю" -> чай, "çayı" -> çay). Numbers come from ./numbers.
 */

/** nlp.js's default: a synonym matches text at least this similar (1 - edit distance / length). */
const FUZZY_THRESHOLD = 0.8;

/** How many letters an ending may add to a synonym word in languages that inflect by suffix. */
const MAX_ENDING: Record<string, number> = { ru: 2, tr: 4 };

/** Canonical value -> synonyms, for one language. */
type EnumValues = Map<string, string[]>;

/** Each enum entity's synonyms in `language`; a plain list is in the map's language, whose synonyms also get the canonical value itself. */
export function enumSynonyms(map: DialogueMap, language: string): Map<string, EnumValues> {
  const result = new Map<string, EnumValues>();
  for (const [name, entity] of Object.entries(map.entities)) {
    if (entity.type !== 'enum') continue;
    const values: EnumValues = new Map();
    for (const [canonical, synonyms] of Object.entries(entity.values)) {
      const texts = Array.isArray(synonyms) ? (language === map.language ? synonyms : []) : (synonyms[language] ?? []);
      const all = language === map.language ? [canonical.replace(/[_-]+/g, ' ').trim(), ...texts] : texts;
      const unique = [...new Set(all.map((t) => t.trim()).filter(Boolean))];
      if (unique.length) values.set(canonical, unique);
    }
    result.set(name, values);
  }
  return result;
}

/** Adds the map's enum and regex entities as nlp.js NER rules for every language. */
export function addNerRules(nlp: NlpInstance, map: DialogueMap, languages: readonly string[]): void {
  for (const language of languages) {
    for (const [name, values] of enumSynonyms(map, language)) {
      for (const [canonical, texts] of values) nlp.addNerRuleOptionTexts(language, name, canonical, texts);
    }
  }
  for (const [name, entity] of Object.entries(map.entities)) {
    if (entity.type === 'regex') nlp.addNerRegexRule([...languages], name, new RegExp(entity.pattern, entity.flags));
  }
}

interface Word {
  form: string;
  stem: string;
}

interface StemSynonym {
  entity: string;
  canonical: string;
  words: Word[];
}

interface Stemmer {
  stem(tokens: string[]): string[];
}
interface Normalizer {
  normalize(text: string): string;
}

/** Matches enum synonyms to text word by word, by equal stems or (ru, tr) by the synonym plus an ending. */
export class StemEnumMatcher {
  private readonly synonyms: StemSynonym[] = [];
  private readonly maxEnding: number;

  constructor(
    private readonly container: NlpContainer,
    private readonly language: string,
    enums: Map<string, EnumValues>,
  ) {
    this.maxEnding = MAX_ENDING[language] ?? 0;
    for (const [entity, values] of enums) {
      for (const [canonical, texts] of values) {
        for (const text of texts) {
          const words = this.words(text);
          if (words.length) this.synonyms.push({ entity, canonical, words });
        }
      }
    }
  }

  get isEmpty(): boolean {
    return this.synonyms.length === 0;
  }

  private words(text: string): Word[] {
    const normalizer = this.container.get(`normalizer-${this.language}`) as Normalizer | undefined;
    const stemmer = this.container.get(`stemmer-${this.language}`) as Stemmer | undefined;
    const normalized = normalizer?.normalize ? normalizer.normalize(text) : text.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
    const forms = normalized.match(/[\p{L}\p{N}]+/gu) ?? [];
    const stems = stemmer?.stem ? stemmer.stem([...forms]) : forms;
    return forms.map((form, i) => ({ form, stem: stems[i] ?? form }));
  }

  private wordMatches(synonym: Word, input: Word): boolean {
    if (synonym.form === input.form) return true;
    if (synonym.stem.length >= 2 && synonym.stem === input.stem) return true;
    if (this.maxEnding && synonym.form.length >= 3 && input.form.startsWith(synonym.form) && input.form.length - synonym.form.length <= this.maxEnding) {
      return true;
    }
    const [shorter, longer] = synonym.stem.length <= input.stem.length ? [synonym.stem, input.stem] : [input.stem, synonym.stem];
    return shorter.length >= 4 && longer.startsWith(shorter) && longer.length - shorter.length <= 2;
  }

  /** Entity -> canonical value of the first synonym found, for the entities not in `skip`. */
  match(text: string, skip: ReadonlySet<string>): Map<string, { canonical: string; position: number }> {
    const found = new Map<string, { canonical: string; position: number }>();
    const input = this.words(text);
    for (let i = 0; i < input.length; i += 1) {
      for (const synonym of this.synonyms) {
        if (skip.has(synonym.entity) || found.has(synonym.entity) || i + synonym.words.length > input.length) continue;
        if (synonym.words.every((word, k) => this.wordMatches(word, input[i + k]!))) {
          found.set(synonym.entity, { canonical: synonym.canonical, position: i });
        }
      }
    }
    return found;
  }
}

/** Everything needed to extract one language's entities. */
export interface EntityExtractor {
  extract(text: string): Promise<Entities>;
}

export function createEntityExtractor(nlp: NlpInstance, container: NlpContainer, map: DialogueMap, language: string): EntityExtractor {
  const names = new Set(Object.keys(map.entities));
  const hasNerRules = names.size > 0;
  const builtinNumber = !map.entities.number;
  const stemMatcher = new StemEnumMatcher(container, language, enumSynonyms(map, language));

  return {
    async extract(text: string): Promise<Entities> {
      const entities: Entities = {};
      if (hasNerRules) {
        const { entities: edges } = await nlp.ner.process({ locale: language, utterance: text, threshold: FUZZY_THRESHOLD });
        for (const edge of [...edges].sort((a, b) => a.start - b.start)) {
          if (!names.has(edge.entity) || entities[edge.entity] !== undefined) continue;
          if (edge.type === 'enum' && edge.option !== undefined) entities[edge.entity] = edge.option;
          else if (edge.type === 'regex') entities[edge.entity] = edge.sourceText;
        }
        if (!stemMatcher.isEmpty) {
          for (const [entity, { canonical }] of stemMatcher.match(text, new Set(Object.keys(entities)))) entities[entity] = canonical;
        }
      }
      if (builtinNumber) {
        const first = findNumbers(text, language)[0];
        if (first) entities.number = first.value;
      }
      return entities;
    },
  };
}
