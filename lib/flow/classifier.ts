/**
 * Port for language understanding. The NLU adapter (lib/nlu) implements it with nlp.js; tests and
 * the flow engine only see this shape.
 */

/** Extracted entity values, by entity name: the canonical value of an enum, the match of a regex, a number. */
export type Entities = Record<string, string | number>;

export interface Classification {
  /** The best intent among the candidates whose score reaches the map's threshold, else null. */
  intent: string | null;
  /** Score of `intent` (0..1); 0 when null. */
  score: number;
  /** The top intent over all intents, whatever its score: the "leader" seed 004 tracks across partial inputs. */
  leader: string | null;
  /** Entities found in the input. */
  entities: Entities;
}

export interface ClassifyOptions {
  language: string;
  /** Intents that can match here (the state's transitions and the global intents). */
  candidates: readonly string[];
}

export interface IntentClassifier {
  classify(text: string, options: ClassifyOptions): Promise<Classification>;
}
