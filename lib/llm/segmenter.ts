/**
 * Streaming sentence segmenter: LLM text deltas in, complete sentences out, so speech (and the
 * safety check) can start at the first sentence instead of the end of the generation.
 *
 * The boundaries come from ICU (`Intl.Segmenter`, granularity 'sentence', UAX #29 rules), corrected
 * where ICU is wrong for a chat stream:
 *
 * - Streaming: a sentence is complete only once text after its boundary has arrived (whitespace
 *   alone is not enough) and ICU's decision there can no longer change (UAX #29 rule SB8 looks ahead
 *   past digits and punctuation for a lower-case letter: "Hello. 12 apples" is one sentence,
 *   "Hello. 12 Apples" two). So "Dr." or "3." at the end of the buffer never emit early.
 * - Abbreviations: V8 does not pass the `-u-ss-standard` extension (ICU's break suppressions) to
 *   ICU (resolvedOptions() drops it and "Mr. Smith" still splits), so a small per-language list
 *   keeps "Dr. Smith", "ул. Ленина", "Sn. Yılmaz" together.
 * - Numbers: a sentence that is only "3." (a list marker) joins the next one; in languages with
 *   ordinal dots (de, tr, …) "1. Mai" stays together.
 * - No space after the terminator ("example.com/a?b=1", "Hi!there") is not a boundary, except
 *   after CJK full-width terminators, which are never followed by a space.
 * - "…" behaves like "...": a boundary before an upper-case word, none before a lower-case one
 *   (ICU never breaks after U+2026).
 * - Newlines end a sentence (ICU: paragraph separators); blank lines and trailing spaces stay with
 *   the sentence before them, so no emitted sentence is whitespace only (except a stream that is
 *   nothing but whitespace).
 *
 * Concatenating everything push() and flush() return reproduces the input exactly.
 *
 * Cost: only the unfinished tail is re-segmented, and not even all of it: ICU restarts at the
 * last point before which nothing can change any more (a settled boundary, or a letter that ICU
 * found no boundary before: the left context of a boundary is Terminator Close* Space*, so no
 * rule looks back across a letter). A tail without any terminator or newline is not segmented at
 * all, and while a boundary waits for its look-ahead, deltas that cannot settle it are only
 * appended. push() is amortized O(delta) for ordinary text (10k chars in 1-char deltas: ~30 ms).
 */

import { primaryLanguage } from '../speech/language';

/** How an abbreviation followed by a boundary joins the next sentence. */
type AbbreviationJoin =
  /** Always (titles, address words, "e.g."): "Dr. Smith", "ул. Ленина". */
  | 'always'
  /** Only before a digit: "No. 5", but "No. I can't." ends a sentence. */
  | 'beforeDigit'
  /** Unless an upper-case letter follows: "etc." often ends a sentence. */
  | 'unlessUpper';

const ABBREVIATIONS: Record<string, Record<string, AbbreviationJoin>> = {
  en: {
    Mr: 'always',
    Mrs: 'always',
    Ms: 'always',
    Dr: 'always',
    Prof: 'always',
    St: 'always',
    vs: 'always',
    'e.g': 'always',
    'i.e': 'always',
    etc: 'unlessUpper',
    'a.m': 'unlessUpper',
    'p.m': 'unlessUpper',
    No: 'beforeDigit',
  },
  ru: {
    'т.е': 'always',
    'т.д': 'unlessUpper',
    'т.п': 'unlessUpper',
    г: 'always',
    ул: 'always',
    д: 'always',
    руб: 'unlessUpper',
    им: 'always',
    др: 'unlessUpper',
  },
  tr: {
    Dr: 'always',
    Prof: 'always',
    Sn: 'always',
    Av: 'always',
    St: 'always',
    // Turkish "vs." and "vb." mean "etc.".
    vb: 'unlessUpper',
    vs: 'unlessUpper',
    No: 'beforeDigit',
  },
};

/** Languages that write ordinals as a number with a dot ("1. Mai", "19. Mayıs"). */
const ORDINAL_DOT_LANGUAGES = new Set([
  'de', 'tr', 'da', 'nb', 'nn', 'no', 'fi', 'is', 'et', 'lv', 'cs', 'sk', 'sl', 'hr', 'sr', 'bs', 'hu', 'pl',
]);

/** Anything that can make ICU break: terminators (STerm, ATerm), "…", paragraph separators. */
const BREAKER = /[\p{Sentence_Terminal}.\u2024\uFE52\uFF0E\u2026\n\r\u000B\u000C\u0085\u2028\u2029]/u;
/** Where UAX #29's look-ahead after a terminator stops (SB8): a letter, a terminator, a separator. */
const LOOKAHEAD_STOP = /[\p{L}\p{Sentence_Terminal}.\u2024\uFE52\uFF0E\u2026\n\r\u000B\u000C\u0085\u2028\u2029]/gu;
const HAS_LOOKAHEAD_STOP = new RegExp(LOOKAHEAD_STOP.source, 'u');
const HAS_NON_SPACE = /\S/;
const PARA_SEP = /[\n\r\u000B\u000C\u0085\u2028\u2029]/;
const SPACE = /\s/;
const NON_SPACE = /\S/g;
const LETTER = /\p{L}/u;
const DIGIT = /\p{Nd}/u;
const UPPER = /\p{Lu}/u;
/** Closing punctuation that may follow a terminator: quotes, brackets. */
const CLOSING = /[\p{Pe}\p{Pf}\p{Pi}"'»«]/u;
/** Terminators of scripts that write no space after them. */
const NO_SPACE_TERMINATOR = /[。｡．！？︒﹒﹖﹗]/u;
/** What may precede an abbreviation or a number token (a space, an opening quote or bracket, a dash). */
const TOKEN_BEFORE = /[\s\p{Ps}\p{Pi}\p{Pd}"'«]/u;

function makeSegmenter(language: string): Intl.Segmenter {
  try {
    return new Intl.Segmenter(language || undefined, { granularity: 'sentence' });
  } catch {
    // An invalid language tag: the root rules are language-independent anyway.
    return new Intl.Segmenter(undefined, { granularity: 'sentence' });
  }
}

function abbreviationsFor(primary: string): Map<string, AbbreviationJoin> {
  const map = new Map<string, AbbreviationJoin>();
  for (const [abbr, join] of Object.entries(ABBREVIATIONS[primary] ?? {})) {
    map.set(abbr, join);
    // Sentence-initial capitalised forms ("Etc.", "Т.е.", "Ул.").
    map.set(abbr.charAt(0).toUpperCase() + abbr.slice(1), join);
  }
  return map;
}

export class SentenceSegmenter {
  private readonly segmenter: Intl.Segmenter;
  private readonly abbreviations: Map<string, AbbreviationJoin>;
  private readonly ordinalDots: boolean;
  /** Text not emitted yet; it starts at the beginning of the current (unfinished) sentence. */
  private pending = '';
  /** Offset in `pending` where ICU restarts; nothing before it can still become a boundary. */
  private scanFrom = 0;
  /** What a delta must contain to change anything, while a boundary waits for its look-ahead. */
  private waitFor: RegExp | null = null;

  constructor(readonly language: string) {
    this.segmenter = makeSegmenter(language);
    const primary = primaryLanguage(language);
    this.abbreviations = abbreviationsFor(primary);
    this.ordinalDots = ORDINAL_DOT_LANGUAGES.has(primary);
  }

  /** Adds a delta; returns the sentences that are now known to be complete (maybe none). */
  push(delta: string): string[] {
    if (delta === '') return [];
    this.pending += delta;
    // Digits, spaces and commas after "Hello. " settle nothing: skip the work until they could.
    if (this.waitFor !== null && !this.waitFor.test(delta)) return [];
    return this.run(false);
  }

  /** The end of the stream: returns the rest as sentences and resets the segmenter. */
  flush(): string[] {
    const out = this.run(true);
    this.pending = '';
    this.scanFrom = 0;
    this.waitFor = null;
    return out;
  }

  private run(final: boolean): string[] {
    const text = this.pending;
    const base = this.scanFrom;
    const out: string[] = [];
    let start = 0; // start of the current sentence in `text`
    let restart = base; // ICU may restart here next time
    let limit = text.length; // first boundary still undecided
    this.waitFor = null;
    const region = text.slice(base);
    if (BREAKER.test(region)) {
      // "…" is one UTF-16 unit like ".", so offsets stay the same.
      const view = region.replace(/\u2026/g, '.');
      for (const { index } of this.segmenter.segment(view)) {
        if (index === 0) continue;
        let b = base + index;
        if (b <= start) continue;
        if (!final && !this.settled(text, b)) {
          limit = b;
          this.waitFor = HAS_LOOKAHEAD_STOP;
          break;
        }
        if (SPACE.test(text.charAt(b))) {
          // ICU breaks before whitespace only after a newline ("Line\n  next", "Line\n\nPara"):
          // the whitespace stays with this sentence, the next one starts at the next non-space.
          NON_SPACE.lastIndex = b;
          const after = NON_SPACE.exec(text);
          if (after === null) {
            if (!final) {
              limit = b;
              this.waitFor = HAS_NON_SPACE;
            }
            break;
          }
          b = after.index;
        }
        restart = b;
        if (this.joins(text, start, b)) continue;
        out.push(text.slice(start, b));
        start = b;
      }
    }
    if (final) {
      if (start < text.length) out.push(text.slice(start));
      return out;
    }
    // Move the restart point as close to the undecided part as possible: ICU found no boundary
    // between `restart` and `limit`, and that cannot change any more; at a letter, no rule looks
    // back across the position (the left context of a boundary is Terminator Close* Space*).
    for (let p = limit - 1; p > restart; p--) {
      if (LETTER.test(text.charAt(p))) {
        restart = p;
        break;
      }
    }
    this.pending = start === 0 ? text : text.slice(start);
    this.scanFrom = restart - start;
    return out;
  }

  /** Whether ICU's boundary at `b` (not at the end of `text`) can no longer move or vanish. */
  private settled(text: string, b: number): boolean {
    if (PARA_SEP.test(text.charAt(b - 1))) return true;
    LOOKAHEAD_STOP.lastIndex = b;
    return LOOKAHEAD_STOP.exec(text) !== null;
  }

  /** Whether ICU's boundary at `b` is not a sentence end (the sentence so far starts at `start`). */
  private joins(text: string, start: number, b: number): boolean {
    const next = text.charAt(b); // never whitespace
    // A whitespace-only start of the stream joins the first sentence.
    NON_SPACE.lastIndex = start;
    const firstText = NON_SPACE.exec(text);
    if (firstText === null || firstText.index >= b) return true;
    // The last non-space character before the boundary.
    let j = b - 1;
    while (j >= start && SPACE.test(text.charAt(j))) {
      if (PARA_SEP.test(text.charAt(j))) return false; // a newline ends the sentence
      j--;
    }
    if (j === b - 1) {
      // No space after the terminator: inside a URL, an e-mail, a typo. CJK writes no space.
      let t = j;
      while (t > start && CLOSING.test(text.charAt(t))) t--;
      return !NO_SPACE_TERMINATOR.test(text.charAt(t));
    }
    if (text.charAt(j) !== '.') return false;

    // The token before the dot: letters and inner dots ("Dr", "e.g", "т.е") or digits ("3", "1").
    let k = j;
    while (k > start && /[\p{L}.]/u.test(text.charAt(k - 1))) k--;
    if (k < j && LETTER.test(text.charAt(k)) && (k === start || TOKEN_BEFORE.test(text.charAt(k - 1)))) {
      const join = this.abbreviations.get(text.slice(k, j));
      if (join === 'always') return true;
      if (join === 'beforeDigit') return DIGIT.test(next);
      if (join === 'unlessUpper') return !UPPER.test(next);
      return false;
    }
    k = j;
    while (k > start && DIGIT.test(text.charAt(k - 1))) k--;
    if (k === j || (k > start && !TOKEN_BEFORE.test(text.charAt(k - 1)))) return false;
    // Only a number: a list item marker ("3. Next").
    NON_SPACE.lastIndex = start;
    if (NON_SPACE.exec(text)?.index === k) return true;
    // An ordinal: "am 1. Mai", "19. Mayıs".
    return this.ordinalDots && j - k <= 4 && LETTER.test(next);
  }
}
