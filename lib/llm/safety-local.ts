/**
 * The offline SafetyChecker: a block list, no network, no model. Good against the obvious (a model
 * talked into saying something plainly unacceptable) and the usual spelling tricks; not a
 * classifier — a paraphrase gets through.
 *
 * Words and phrases match whole words, case-insensitively, after normalisation of both the text
 * and the entry:
 * - NFKC (full-width and styled letters become plain), lower case, invisible format characters
 *   (zero-width space, soft hyphen) removed, combining marks stripped ("é" -> "e", "ё" -> "е",
 *   Turkish "İ" -> "i"), Turkish dotless "ı" -> "i";
 * - leetspeak digits inside words: 0->o 1->i 3->e 4->a 5->s 7->t ("k1ll" -> "kill"; "2024" stays);
 * - a letter repeated three or more times matches the single or double letter of the entry
 *   ("kiiiill" matches "kill", but "good" does not match "god");
 * - three or more single letters separated by spaces or punctuation are also read joined
 *   ("b a d", "b.a.d", "b-a-d" -> "bad");
 * - the words of a phrase may be separated by any run of spaces and punctuation.
 * A word never matches inside a longer word ("kill" is not in "skill") or a hyphenated compound
 * ("die-hard" is not "die").
 *
 * Regex entries are tested against the text as given (NFKC) and against both normalised forms;
 * their flags default to 'iu' ('g' and 'y' are dropped: a check is stateless).
 */
import type { SafetyChecker } from './port';

export type BlockedEntry =
  /** A word or phrase; category 'blocked'. */
  | string
  /** A word or phrase with its category (same matching as a plain string). */
  | { phrase: string; category?: string }
  /** A regular expression source; category 'blocked' unless given. */
  | { pattern: string; flags?: string; category?: string };

export interface LocalSafetyOptions {
  blocked: BlockedEntry[];
}

/**
 * A short, neutral default for a customer-service bot: a few phrases no such bot should ever say,
 * in English, Russian and Turkish. Deliberately small: extend it per deployment.
 */
export const DEFAULT_BLOCKED: BlockedEntry[] = [
  { phrase: 'kill yourself', category: 'self-harm' },
  { phrase: 'you should die', category: 'self-harm' },
  { phrase: 'убей себя', category: 'self-harm' },
  { phrase: 'kendini öldür', category: 'self-harm' },
  { phrase: 'how to make a bomb', category: 'violence' },
  { phrase: 'how to build a bomb', category: 'violence' },
  { phrase: 'i will kill you', category: 'violence' },
  { phrase: 'как сделать бомбу', category: 'violence' },
  { phrase: 'bomba nasıl yapılır', category: 'violence' },
  // Dehumanising a group, without spelling out any slur.
  { pattern: '(?<![\\p{L}\\p{N}])sub-?humans?(?![\\p{L}\\p{N}])', category: 'hate' },
  {
    pattern:
      '(?<![\\p{L}\\p{N}])(?:all|those|these)\\s+\\p{L}+\\s+(?:should|must|deserve\\s+to)\\s+(?:die|be\\s+(?:killed|exterminated|wiped\\s+out))(?![\\p{L}\\p{N}])',
    category: 'hate',
  },
];

const LEET: Record<string, string> = { '0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't' };

const WORD_CHAR = '[\\p{L}\\p{N}]';
/** Word edges; a hyphen between letters joins a compound ("die-hard" is not "die"). */
const BEFORE_WORD = `(?<!${WORD_CHAR}|${WORD_CHAR}-)`;
const AFTER_WORD = `(?!${WORD_CHAR}|-${WORD_CHAR})`;
const SEPARATORS = `[^\\p{L}\\p{N}]+`;

/** NFKC, lower case, no format characters, no combining marks, "ı" -> "i". */
function fold(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/\p{Cf}/gu, '')
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .replace(/ı/g, 'i')
    .normalize('NFC');
}

/** Leetspeak digits inside words that have at least one letter. */
function unleet(text: string): string {
  return text.replace(/[\p{L}\p{N}]+/gu, (word) =>
    /\p{L}/u.test(word) ? word.replace(/[013457]/g, (d) => LEET[d] ?? d) : word,
  );
}

/** Runs of three or more single letters or digits split by spaces or punctuation, joined. */
const SPACED = new RegExp(
  `(?<!${WORD_CHAR})${WORD_CHAR}(?:[\\s.\\-_*·•,|/+~'"]{1,3}${WORD_CHAR}(?!${WORD_CHAR})){2,}`,
  'gu',
);
function unspace(text: string): string {
  return text.replace(SPACED, (run) => run.replace(/[^\p{L}\p{N}]/gu, ''));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A word of an entry as a pattern: a run of one letter also matches 3+, a double letter 2+. */
function wordPattern(word: string): string {
  let out = '';
  for (const run of word.match(/(.)\1*/gu) ?? []) {
    const chars = [...run];
    const c = escapeRegExp(chars[0] ?? '');
    const n = chars.length;
    out += n === 1 ? `(?:${c}{3,}|${c})` : `${c}{${n},}`;
  }
  return out;
}

interface Rule {
  category: string;
  /** Tested against the normalised texts (never global or sticky: test() keeps no state). */
  re: RegExp;
  /** A regex entry: also tested against the text as given (NFKC). */
  raw: boolean;
}

function compilePhrase(phrase: string, category: string): Rule {
  const words = unleet(fold(phrase)).split(/[^\p{L}\p{N}]+/u).filter((w) => w !== '');
  if (words.length === 0) throw new TypeError(`localSafetyChecker: empty blocked phrase ${JSON.stringify(phrase)}`);
  const source = BEFORE_WORD + words.map(wordPattern).join(SEPARATORS) + AFTER_WORD;
  return { category, re: new RegExp(source, 'u'), raw: false };
}

function compilePattern(pattern: string, flags: string | undefined, category: string): Rule {
  const f = (flags ?? 'iu').replace(/[gy]/g, '');
  let re: RegExp;
  try {
    re = new RegExp(pattern, f);
  } catch (err) {
    throw new TypeError(`localSafetyChecker: invalid blocked pattern ${JSON.stringify(pattern)}: ${(err as Error).message}`);
  }
  return { category, re, raw: true };
}

export function localSafetyChecker(options: LocalSafetyOptions): SafetyChecker {
  const rules: Rule[] = options.blocked.map((entry) => {
    if (typeof entry === 'string') return compilePhrase(entry, 'blocked');
    if ('pattern' in entry) return compilePattern(entry.pattern, entry.flags, entry.category ?? 'blocked');
    return compilePhrase(entry.phrase, entry.category ?? 'blocked');
  });
  return {
    async check(text: string): Promise<{ safe: boolean; category?: string }> {
      const raw = text.normalize('NFKC');
      const folded = fold(text);
      const plain = unleet(folded);
      const joined = unleet(unspace(folded));
      for (const rule of rules) {
        if ((rule.raw && rule.re.test(raw)) || rule.re.test(plain) || (joined !== plain && rule.re.test(joined))) {
          return { safe: false, category: rule.category };
        }
      }
      return { safe: true };
    },
  };
}
