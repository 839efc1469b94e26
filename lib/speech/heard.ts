import type { Checkpoint, LlmMessage } from '../checkpoint/schema';
import { cutLastReply } from '../checkpoint/transcript';
import type { SpokenItem } from './player';
import type { Synthesizer, Voice, WordMark } from './tts/port';

/** Where a cancel's `playedMs` falls: the items heard whole, and the one cut inside, if any. */
export interface CutPoint {
  /** Items played to the end. */
  whole: SpokenItem[];
  /** The item playing when the client stopped, and how far into it. */
  partial: { item: SpokenItem; offsetMs: number } | null;
}

/** Finds the item `playedMs` ends in; no partial item when the client heard everything that was sent. */
export function cutPoint(spoken: readonly SpokenItem[], playedMs: number): CutPoint {
  let before = 0;
  for (let i = 0; i < spoken.length; i++) {
    const item = spoken[i]!;
    if (playedMs < before + item.durationMs) {
      return { whole: spoken.slice(0, i), partial: { item, offsetMs: Math.max(0, playedMs - before) } };
    }
    before += item.durationMs;
  }
  return { whole: [...spoken], partial: null };
}

const WORD = /\S+/g;
const countWords = (text: string) => text.match(WORD)?.length ?? 0;

/**
 * How many words of the cut item the user heard. With word marks (Polly speech marks, the local
 * synthesizer's word events, or the cache) a word counts once it started; without them, in
 * proportion to the time played.
 */
export function wordsHeard(item: SpokenItem, offsetMs: number, marks: readonly WordMark[] | undefined): number {
  if (marks && marks.length > 0) return marks.filter((m) => m.timeMs < offsetMs).length;
  if (item.durationMs <= 0) return 0;
  return Math.floor((countWords(item.text) * offsetMs) / item.durationMs);
}

/** The first `words` words of `text`, with the text's own spacing and punctuation. */
export function firstWords(text: string, words: number): string {
  if (words <= 0) return '';
  let seen = 0;
  for (const match of text.matchAll(WORD)) {
    seen += 1;
    if (seen === words) return text.slice(0, match.index + match[0].length);
  }
  return text;
}

/**
 * Cuts the assistant's words of the last turn to the first `heard` words, in the order they were
 * said, and marks the cut message `interrupted`. The turn's messages are those after its user
 * message (or all of them for a greeting). Tool calls stay: they happened, whatever was heard.
 * The transcript's last reply is cut the same way.
 */
export function cutAssistantWords(checkpoint: Checkpoint, heard: number): Checkpoint {
  return cutLastReply(cutMessages(checkpoint, heard), (text) => firstWords(text, heard));
}

function cutMessages(checkpoint: Checkpoint, heard: number): Checkpoint {
  const messages = checkpoint.messages;
  let start = messages.length;
  while (start > 0 && messages[start - 1]!.role !== 'user') start -= 1;
  let left = heard;
  let changed = false;
  const turn: LlmMessage[] = [];
  for (const m of messages.slice(start)) {
    if (m.role !== 'assistant' || !m.content.trim()) {
      turn.push(m);
      continue;
    }
    const words = countWords(m.content);
    if (words <= left) {
      left -= words;
      turn.push(m);
      continue;
    }
    changed = true;
    const kept = firstWords(m.content, left);
    left = 0;
    // An assistant message that asked for tools keeps its calls; one that only talked goes if unheard.
    if (kept || m.tool_calls) turn.push({ ...m, content: kept, interrupted: true });
  }
  if (!changed) return checkpoint;
  return { ...checkpoint, messages: [...messages.slice(0, start), ...turn] };
}

/** Everything needed to cut a turn's stored answer to what was heard; `marksFor` asks the synthesizer. */
export async function cutToHeard(input: {
  checkpoint: Checkpoint;
  spoken: readonly SpokenItem[];
  playedMs: number;
  marksFor?: (item: SpokenItem) => Promise<WordMark[] | undefined>;
}): Promise<{ checkpoint: Checkpoint; heardWords: number; marks: 'speech_marks' | 'estimate' | 'none' }> {
  // Heard everything sent still cuts: the text may go on past the audio the cancel stopped.
  const point = cutPoint(input.spoken, input.playedMs);
  let heard = point.whole.reduce((n, item) => n + countWords(item.text), 0);
  let marks: WordMark[] | undefined;
  if (point.partial) {
    marks = point.partial.item.marks;
    if (!marks?.length && input.marksFor) marks = await input.marksFor(point.partial.item).catch(() => undefined);
    heard += wordsHeard(point.partial.item, point.partial.offsetMs, marks);
  }
  return {
    checkpoint: cutAssistantWords(input.checkpoint, heard),
    heardWords: heard,
    marks: !point.partial ? 'none' : marks?.length ? 'speech_marks' : 'estimate',
  };
}

/** Word timings for the item a cancel fell in: a second synthesizer request (Polly speech marks), no audio. */
export function wordMarksFrom(synthesizer: Synthesizer | undefined, voice: Voice | undefined): ((item: { text: string }) => Promise<WordMark[]>) | undefined {
  if (!voice || !synthesizer?.wordMarks) return undefined;
  return (item) => synthesizer.wordMarks!({ text: item.text, voice });
}
