import MiniSearch from 'minisearch';
import type { DialogueMap, Localized } from '../flow/map';
import { normalizeForSearch } from './normalize';
import type { FaqHit, FaqIndex } from './port';

/*
 * The map's FAQ as a MiniSearch index. Every question is a document (an entry's answer texts are
 * documents too, worth less); MiniSearch finds, for each term of the input, the indexed terms it
 * matches exactly, as a prefix ("open" -> "opening"), with a typo ("pasword" -> "password") or by a
 * shared stem ("картой" -> "карты", "allergic" -> "allergy": no stemmer, so any language).
 *
 * The score of an entry is not MiniSearch's BM25 sum, whose scale depends on the corpus and the
 * query length, but a 0..1 agreement between the input and the entry:
 *   - input coverage: how much of the input's (IDF-weighted) terms the entry's questions, or at half
 *     weight its answer, match;
 *   - question coverage: how much of its closest question's (IDF-weighted) terms the input matches;
 * combined as an F-measure leaning toward question coverage (a long-winded input that contains a
 * whole question still hits, an input sharing one word with a question does not). Each match counts
 * by its quality: 1 exact, less for a prefix or a typo. Stop words (en, ru, tr) are not terms; "want",
 * "like" and "need" are, so an order ("I want a large coffee") is not mistaken for a question.
 * Questions are plain strings in any language: the search is the same whatever the session's
 * language, and the caller localizes the Localized answer.
 */

/**
 * Below this an input is not an FAQ question. With terms of equal weight: a lone word matching one
 * of a question's two words scores 0.59 and two words matching one of two 0.5 (hits), while one word
 * of three matching one of two scores 0.43 and a lone word matching one of three 0.42 (misses, e.g.
 * "I want a large coffee" against "How much is a coffee?"). 0.46 sits between; on the café FAQ of
 * tests/unit/faq.test.ts the weakest hit scores 0.48 and the strongest miss 0.42.
 */
export const DEFAULT_FAQ_MIN_SCORE = 0.46;

/** How much an answer's words count against a question's. */
const ANSWER_WEIGHT = 0.5;
/** F-beta: beta > 1 weighs question coverage above input coverage. */
const BETA = 1.5;

// Function words and conversational filler (normalized like the text they are removed from).
const STOP_WORDS = new Set(
  normalizeForSearch(
    [
      // English
      'a an the i im ive id me my mine we us our ours you youre your yours he him his she her it its they them their',
      'is am are was were be been being do does did done have has had having can could would will shall should may might must',
      'to of in on at for with by from about as into than and or but if so then there here this that these those',
      'what whats which who whom how hows when whens why',
      'any some all please pls plz tell know get got just also too very really',
      'hi hello hey thanks thank ok okay well um uh oh wondering wonder whether guys folks let lets',
      'somewhere anywhere something anything someone anyone somebody anybody',
      // Russian
      'и в во не на я что как у вас нас мы вы ты он она оно они ли а но с со по это этот эта эти мне меня мой моя',
      'до за из к ко о об от же бы то так да нет или есть был была было были будет можно могу можете подскажите скажите',
      'пожалуйста здравствуйте привет какой какая какое какие когда ваш ваша ваше ваши вашего вашей',
      // Turkish
      've ile bir bu şu o da de mi mı mu mü ne nedir neler için ben sen biz siz onlar var yok',
      'misiniz musunuz miyim muyum acaba lütfen merhaba selam bana size sizin benim',
    ].join(' '),
  ).split(' '),
);

/** Phrases whose words are stop words one by one but mean something together. */
const PHRASES: ReadonlyArray<[RegExp, string]> = [[/\bhow much\b/g, 'howmuch']];

/** Normalized words, phrases joined (before stop words are dropped). */
const words = (text: string): string[] => {
  let normalized = normalizeForSearch(text);
  for (const [re, term] of PHRASES) normalized = normalized.replace(re, term);
  return normalized ? normalized.split(' ') : [];
};
const contentTerm = (term: string): string | null => (term && !STOP_WORDS.has(term) ? term : null);
const unique = (terms: string[]): string[] => [...new Set(terms)];
const contentTerms = (text: string): string[] => unique(words(text).flatMap((t) => contentTerm(t) ?? []));

/** Typos allowed: none for short words, one up to 7 letters, then two. */
const maxTypos = (term: string): number => (term.length <= 3 ? 0 : term.length <= 7 ? 1 : 2);
/** Shortest input term that matches longer indexed terms as a prefix. */
const MIN_PREFIX = 3;
/** Shortest shared stem, and the least share of the shorter word it must be. */
const MIN_STEM = 4;
const STEM_SHARE = 0.6;
/** Terms of an input looked at (bounds the work a very long message costs). */
const MAX_INPUT_TERMS = 32;

/** How well an input term matches an indexed term: 1 exact, ~0.8 for a prefix, 1 - typos/length for a typo. */
function quality(input: string, indexed: string): number {
  if (input === indexed) return 1;
  if (indexed.startsWith(input)) return 0.5 + (0.5 * input.length) / indexed.length;
  if (input.startsWith(indexed)) return 0.5 + (0.5 * indexed.length) / input.length;
  return Math.max(0, 1 - editDistance(input, indexed) / Math.max(input.length, indexed.length));
}

const commonPrefix = (a: string, b: string): number => {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
};

/** A shared stem is worth less than a prefix: 0.4 + 0.6 * shared / longer. */
const stemQuality = (shared: number, a: string, b: string): number => 0.4 + (0.6 * shared) / Math.max(a.length, b.length);

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

interface Doc {
  id: number;
  entry: number;
  kind: 'question' | 'answer';
  terms: string[];
}

const texts = (answer: Localized): string[] => (typeof answer === 'string' ? [answer] : Object.values(answer));

export function buildFaqIndex(map: DialogueMap, options: { minScore?: number } = {}): FaqIndex {
  const minScore = options.minScore ?? DEFAULT_FAQ_MIN_SCORE;
  const entries = map.faq;
  const docs: Doc[] = [];
  entries.forEach((entry, i) => {
    for (const q of entry.questions) docs.push({ id: docs.length, entry: i, kind: 'question', terms: contentTerms(q) });
    for (const a of texts(entry.answer)) docs.push({ id: docs.length, entry: i, kind: 'answer', terms: contentTerms(a) });
  });

  // Documents go in already normalized: MiniSearch only splits them.
  const index = new MiniSearch<Doc>({
    fields: ['terms'],
    storeFields: [],
    extractField: (doc, field) => (field === 'id' ? doc.id : doc.terms.join(' ')),
    tokenize: (text) => text.split(' '),
    processTerm: (term) => term || null,
  });
  index.addAll(docs);

  // Inverse document frequency over entries (an input term nothing knows counts as a rare one).
  const entriesWith = new Map<string, Set<number>>();
  for (const d of docs) for (const t of d.terms) (entriesWith.get(t) ?? entriesWith.set(t, new Set()).get(t)!).add(d.entry);
  const idf = (term: string) => Math.log(1 + entries.length / Math.max(1, entriesWith.get(term)?.size ?? 0));
  const questions = docs.filter((d) => d.kind === 'question' && d.terms.length > 0);
  const docsOf = entries.map((_, i) => docs.filter((d) => d.entry === i));

  /**
   * Input terms, stop words dropped, with compounds spelled as the index spells them: two words
   * joined where the index knows them as one ("wi fi" -> "wifi"), one word split where the index
   * knows its two halves ("wifi" -> "wi" "fi", for a map that wrote "Wi-Fi").
   */
  function inputTerms(text: string): string[] {
    const w = words(text);
    const terms: string[] = [];
    for (let i = 0; i < w.length; i++) {
      const word = w[i]!;
      const pair = i + 1 < w.length ? word + w[i + 1] : '';
      if (pair && entriesWith.has(pair)) {
        terms.push(pair);
        i++;
      } else terms.push(...split(word));
    }
    return unique(terms.flatMap((t) => contentTerm(t) ?? [])).slice(0, MAX_INPUT_TERMS);
  }
  function split(word: string): string[] {
    if (entriesWith.has(word)) return [word];
    for (let k = 2; k <= word.length - 2; k++) {
      const [head, tail] = [word.slice(0, k), word.slice(k)];
      if (entriesWith.has(head) && entriesWith.has(tail)) return [head, tail];
    }
    return [word];
  }

  /** Document id -> indexed term -> how well `term` matches it. */
  function matches(term: string): Map<number, Map<string, number>> {
    const found = new Map<number, Map<string, number>>();
    const add = (doc: number, indexed: string, q = quality(term, indexed)) => {
      const byTerm = found.get(doc) ?? found.set(doc, new Map()).get(doc)!;
      if (q > (byTerm.get(indexed) ?? 0)) byTerm.set(indexed, q);
    };
    const typos = maxTypos(term);
    for (const r of index.search(term, { prefix: term.length >= MIN_PREFIX, fuzzy: typos || false, maxFuzzy: typos })) {
      for (const indexed of r.terms) add(r.id as number, indexed);
    }
    // Shared stems, for inflected and agglutinated words: "картой" ~ "карты", "allergic" ~ "allergy",
    // "kartla" ~ "kart". Indexed terms sharing the input's first letters (at least MIN_STEM, and
    // STEM_SHARE of the shorter word) match by how much of the longer word they share.
    if (term.length > MIN_STEM) {
      const stem = term.slice(0, MIN_STEM);
      for (const r of index.search(stem, { prefix: true, fuzzy: false })) {
        for (const indexed of r.terms) {
          const shared = commonPrefix(term, indexed);
          if (shared >= MIN_STEM && shared >= STEM_SHARE * Math.min(term.length, indexed.length)) add(r.id as number, indexed, stemQuality(shared, term, indexed));
        }
      }
    }
    return found;
  }

  const best = (m: Map<string, number> | undefined): number => Math.max(0, ...(m?.values() ?? []));

  return {
    search(text: string): FaqHit | null {
      const input = inputTerms(text);
      if (!input.length || !questions.length) return null;
      const perTerm = input.map(matches);
      const inputWeight = input.reduce((s, t) => s + idf(t), 0);

      let top: { entry: number; score: number } | null = null;
      entries.forEach((_, e) => {
        // Input coverage: by any of the entry's questions, or its answer at a discount.
        let covered = 0;
        input.forEach((t, i) => {
          let m = 0;
          for (const d of docsOf[e]!) m = Math.max(m, (d.kind === 'answer' ? ANSWER_WEIGHT : 1) * best(perTerm[i]!.get(d.id)));
          covered += idf(t) * m;
        });
        const precision = covered / inputWeight;
        if (!precision) return;
        // Question coverage: the entry's best covered question.
        let recall = 0;
        for (const d of docsOf[e]!) {
          if (d.kind !== 'question' || !d.terms.length) continue;
          let reached = 0;
          let weight = 0;
          for (const u of d.terms) {
            weight += idf(u);
            reached += idf(u) * Math.max(0, ...perTerm.map((m) => m.get(d.id)?.get(u) ?? 0));
          }
          recall = Math.max(recall, reached / weight);
        }
        if (!recall) return;
        const score = ((1 + BETA ** 2) * precision * recall) / (BETA ** 2 * precision + recall);
        if (!top || score > top.score) top = { entry: e, score };
      });
      const hit = top as { entry: number; score: number } | null;
      if (!hit || hit.score < minScore) return null;
      const entry = entries[hit.entry]!;
      return { id: entry.id, answer: entry.answer, score: Math.round(hit.score * 1000) / 1000 };
    },
  };
}
