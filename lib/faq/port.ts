import type { Localized } from '../flow/map';

export interface FaqHit {
  id: string;
  answer: Localized;
  /** Relevance, higher is better; only hits above the index's threshold are returned. */
  score: number;
}

/** Port: answers a question from the map's FAQ, or null when nothing is close enough. */
export interface FaqIndex {
  search(text: string, language: string): FaqHit | null;
}
