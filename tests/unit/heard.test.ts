import { describe, expect, it } from 'vitest';
import { emptyCheckpoint, type Checkpoint } from '../../lib/checkpoint/schema';
import { cutAssistantWords, cutPoint, cutToHeard, firstWords, wordsHeard } from '../../lib/speech/heard';
import type { SpokenItem } from '../../lib/speech/player';
import type { WordMark } from '../../lib/speech/tts/port';

const item = (text: string, durationMs: number, marks?: WordMark[]): SpokenItem => ({ itemId: text, text, source: 'llm', durationMs, ...(marks ? { marks } : {}) });

/**
 * Word speech marks as Polly returns them for "We have espresso, latte and cappuccino today."
 * (times in ms; offsets into the text).
 */
const TEXT = 'We have espresso, latte and cappuccino today.';
const MARKS: WordMark[] = [
  { timeMs: 6, start: 0, end: 2 },
  { timeMs: 156, start: 3, end: 7 },
  { timeMs: 420, start: 8, end: 16 },
  { timeMs: 1010, start: 18, end: 23 },
  { timeMs: 1450, start: 24, end: 27 },
  { timeMs: 1600, start: 28, end: 38 },
  { timeMs: 2300, start: 39, end: 44 },
];

function conversation(...assistant: string[]): Checkpoint {
  return {
    ...emptyCheckpoint(),
    messages: [
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: 'Hi! What can I get you?' },
      { role: 'user', content: 'what do you have?' },
      ...assistant.map((content) => ({ role: 'assistant' as const, content })),
    ],
  };
}

describe('what was heard', () => {
  it('finds the item a cancel fell in, and the offset inside it', () => {
    const spoken = [item('One two.', 500), item('Three four five.', 900)];
    expect(cutPoint(spoken, 200)).toEqual({ whole: [], partial: { item: spoken[0], offsetMs: 200 } });
    expect(cutPoint(spoken, 800)).toEqual({ whole: [spoken[0]], partial: { item: spoken[1], offsetMs: 300 } });
    expect(cutPoint(spoken, 1400)).toEqual({ whole: spoken, partial: null });
  });

  it('counts the words that started before the cut, from speech marks', () => {
    const said = item(TEXT, 2800, MARKS);
    expect(wordsHeard(said, 0, MARKS)).toBe(0);
    expect(wordsHeard(said, 100, MARKS)).toBe(1); // "We"
    expect(wordsHeard(said, 1200, MARKS)).toBe(4); // … "latte"
    expect(wordsHeard(said, 1599, MARKS)).toBe(5); // "and" started, "cappuccino" not yet
    expect(firstWords(TEXT, 4)).toBe('We have espresso, latte');
  });

  it('without marks, estimates in proportion to the time played', () => {
    const said = item('one two three four five six seven eight nine ten', 1000);
    expect(wordsHeard(said, 500, undefined)).toBe(5);
    expect(wordsHeard(said, 999, undefined)).toBe(9);
  });

  it('cuts the stored answer at the heard word and marks it interrupted (known speech marks)', async () => {
    const checkpoint = conversation(TEXT + ' Anything else?');
    const spoken = [item(TEXT, 2800), item('Anything else?', 900)];
    const asked: string[] = [];
    const cut = await cutToHeard({
      checkpoint,
      spoken,
      playedMs: 1200,
      marksFor: async (i) => {
        asked.push(i.text);
        return MARKS;
      },
    });
    expect(asked).toEqual([TEXT]); // a second request for the one item the cut fell in
    expect(cut.marks).toBe('speech_marks');
    expect(cut.heardWords).toBe(4);
    expect(cut.checkpoint.messages.at(-1)).toEqual({ role: 'assistant', content: 'We have espresso, latte', interrupted: true });
    // Earlier turns are untouched.
    expect(cut.checkpoint.messages.slice(0, 3)).toEqual(checkpoint.messages.slice(0, 3));
  });

  it('cached marks need no request; a later sentence of the answer goes with the cut', async () => {
    const checkpoint = conversation('First sentence here.', 'Second one.');
    const spoken = [item('First sentence here.', 1000, [{ timeMs: 0, start: 0, end: 5 }, { timeMs: 400, start: 6, end: 14 }, { timeMs: 800, start: 15, end: 20 }]), item('Second one.', 600)];
    const cut = await cutToHeard({ checkpoint, spoken, playedMs: 500, marksFor: async () => Promise.reject(new Error('not expected')) });
    expect(cut.checkpoint.messages.slice(3)).toEqual([{ role: 'assistant', content: 'First sentence', interrupted: true }]);
  });

  it('heard all the audio that was sent, but the text went on: the unsent rest is cut', async () => {
    const checkpoint = conversation('Sent and heard. Never synthesized.');
    const cut = await cutToHeard({ checkpoint, spoken: [item('Sent and heard.', 800)], playedMs: 5000 });
    expect(cut.marks).toBe('none');
    expect(cut.checkpoint.messages.at(-1)).toEqual({ role: 'assistant', content: 'Sent and heard.', interrupted: true });
  });

  it('heard everything: nothing changes', async () => {
    const checkpoint = conversation('All of it.');
    const cut = await cutToHeard({ checkpoint, spoken: [item('All of it.', 800)], playedMs: 900 });
    expect(cut.checkpoint).toBe(checkpoint);
  });

  it('a tool-calling message keeps its calls even when none of its words were heard', () => {
    const checkpoint: Checkpoint = {
      ...conversation(),
      messages: [
        { role: 'user', content: 'how long?' },
        { role: 'assistant', content: 'Let me check.', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'pickup_wait', arguments: '{}' } }] },
        { role: 'tool', content: '{"minutes":5}', tool_call_id: 'c1' },
        { role: 'assistant', content: 'About five minutes.' },
      ],
    };
    const cut = cutAssistantWords(checkpoint, 0);
    expect(cut.messages).toEqual([
      checkpoint.messages[0],
      { ...checkpoint.messages[1], content: '', interrupted: true },
      checkpoint.messages[2],
    ]);
  });
});
