import type { DialogueMap } from './map';

export interface Classification {
  /** The winning intent among the candidates, or null when nothing matched. */
  intent: string | null;
  /** 0..1; the keyword matcher only knows 0 and 1. */
  score: number;
}

/**
 * Port for intent recognition. The foundation ships a keyword matcher; the dialogue-engine issue
 * plugs NLU in here without touching the engine or the runner.
 */
export interface IntentClassifier {
  classify(text: string, candidates: readonly string[]): Classification;
}

// Phones and word processors type ’ for ': "that’s" must match the keyword "that's".
const words = (text: string): string[] =>
  text.toLocaleLowerCase().replace(/[\u2018\u2019\u02BC]/g, "'").match(/[\p{L}\p{N}']+/gu) ?? [];

/** Whole-word keyword matching; among several matching intents, the longest keyword wins. */
export function keywordClassifier(map: DialogueMap): IntentClassifier {
  // Compiled once per map: candidates are looked up, never re-tokenized per turn.
  const keywords = new Map<string, string[][]>(
    Object.entries(map.intents).map(([name, intent]) => [name, intent.keywords.map(words)]),
  );
  return {
    classify(text, candidates) {
      const input = ` ${words(text).join(' ')} `;
      let best: { intent: string; length: number } | null = null;
      for (const intent of candidates) {
        for (const phrase of keywords.get(intent) ?? []) {
          if (phrase.length === 0 || !input.includes(` ${phrase.join(' ')} `)) continue;
          const length = phrase.join(' ').length;
          if (!best || length > best.length) best = { intent, length };
        }
      }
      return best ? { intent: best.intent, score: 1 } : { intent: null, score: 0 };
    },
  };
}
