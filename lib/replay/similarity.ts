import { distance } from 'fastest-levenshtein';

/** Case, spacing and punctuation are not what makes two answers differ. */
const normalize = (text: string) =>
  text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();

/**
 * How alike two replies are, 0..1: one minus the edit distance of their normalized text over the
 * longer length. Cheap and dependency-light; it measures wording, not meaning, which is what a
 * replay of the same bot should keep (a paraphrase scores lower than a meaning-preserving typo fix).
 */
export function textSimilarity(a: string, b: string): number {
  const x = normalize(a);
  const y = normalize(b);
  if (x === y) return 1;
  const longer = Math.max(x.length, y.length);
  return Math.round((1 - distance(x, y) / longer) * 1000) / 1000;
}
