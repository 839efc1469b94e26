import { SentenceSegmenter } from '../../llm/segmenter';

/** Polly takes (and bills) at most 3,000 characters of text per SynthesizeSpeech request. */
export const POLLY_MAX_CHARS = 3000;

/** A piece of the text and where it starts in it (UTF-16 offset), so marks of the piece map back. */
export interface TextPiece {
  text: string;
  offset: number;
}

const NON_SPACE = /\S/;

/** A run of the text: [start, end) offsets into it. */
type Run = [start: number, end: number];

/**
 * Cuts `text` into pieces of at most `maxChars` UTF-16 units for a synthesizer with a request limit.
 * Whole sentences (ICU sentence boundaries with the corrections of SentenceSegmenter; `language` only
 * adds its abbreviations, the rules are language-agnostic) are packed into each piece up to the
 * limit; a sentence longer than the limit is cut between words (at whitespace, else at ICU word
 * boundaries for scripts without spaces), and a single word longer than the limit is cut at the
 * limit (never inside a surrogate pair). Nothing is lost or reordered: the pieces are the text cut
 * at some points, with whitespace trimmed at each cut and at both ends. Blank text gives no pieces.
 */
export function splitForSynthesis(text: string, maxChars = POLLY_MAX_CHARS, language = ''): string[] {
  return splitWithOffsets(text, maxChars, language).map((p) => p.text);
}

/** splitForSynthesis, with each piece's offset in `text`. */
export function splitWithOffsets(text: string, maxChars = POLLY_MAX_CHARS, language = ''): TextPiece[] {
  if (!(Number.isInteger(maxChars) && maxChars >= 2)) throw new RangeError(`maxChars must be an integer >= 2, got ${maxChars}`);
  const whole = trimRun(text, [0, text.length]);
  if (whole === undefined) return [];
  if (whole[1] - whole[0] <= maxChars) return [{ text: text.slice(whole[0], whole[1]), offset: whole[0] }];

  const units: Run[] = [];
  for (const sentence of sentences(text, language)) {
    const t = trimRun(text, sentence);
    if (t === undefined) continue;
    if (t[1] - t[0] <= maxChars) units.push(t);
    else units.push(...wordRuns(text, t, maxChars));
  }

  // Greedy packing: a piece grows while its trimmed span stays within the limit.
  const pieces: TextPiece[] = [];
  let start = -1;
  let end = -1;
  for (const [s, e] of units) {
    if (start >= 0 && e - start <= maxChars) {
      end = e;
      continue;
    }
    if (start >= 0) pieces.push({ text: text.slice(start, end), offset: start });
    start = s;
    end = e;
  }
  if (start >= 0) pieces.push({ text: text.slice(start, end), offset: start });
  return pieces;
}

/** The run without leading and trailing whitespace, or undefined when it is all whitespace. */
function trimRun(text: string, [s, e]: Run): Run | undefined {
  while (s < e && !NON_SPACE.test(text.charAt(s))) s++;
  while (e > s && !NON_SPACE.test(text.charAt(e - 1))) e--;
  return s < e ? [s, e] : undefined;
}

/** Sentence runs covering the text (their concatenation is the text). */
function sentences(text: string, language: string): Run[] {
  const seg = new SentenceSegmenter(language);
  const parts = [...seg.push(text), ...seg.flush()];
  const runs: Run[] = [];
  let at = 0;
  for (const p of parts) {
    runs.push([at, at + p.length]);
    at += p.length;
  }
  return runs;
}

/** Runs of at most maxChars (trimmed) covering a too-long sentence, cut between words. */
function wordRuns(text: string, [s, e]: Run, maxChars: number): Run[] {
  const out: Run[] = [];
  const tokens = /\S+/g;
  tokens.lastIndex = s;
  const slice = text.slice(0, e);
  for (let m = tokens.exec(slice); m !== null; m = tokens.exec(slice)) {
    const run: Run = [m.index, m.index + m[0].length];
    if (run[1] - run[0] <= maxChars) out.push(run);
    else out.push(...segmentRuns(text, run, maxChars));
  }
  return out;
}

/** A whitespace-free token longer than the limit: ICU word boundaries, else hard cuts. */
function segmentRuns(text: string, [s, e]: Run, maxChars: number): Run[] {
  const out: Run[] = [];
  const words = new Intl.Segmenter(undefined, { granularity: 'word' });
  for (const { index, segment } of words.segment(text.slice(s, e))) {
    const start = s + index;
    const end = start + segment.length;
    if (end - start <= maxChars) {
      out.push([start, end]);
      continue;
    }
    for (let at = start; at < end; ) {
      let cut = Math.min(at + maxChars, end);
      // Never split a surrogate pair.
      if (cut < end && isHighSurrogate(text.charCodeAt(cut - 1))) cut--;
      out.push([at, cut]);
      at = cut;
    }
  }
  return out;
}

const isHighSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdbff;
