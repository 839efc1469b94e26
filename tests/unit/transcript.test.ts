import { describe, expect, it } from 'vitest';
import { addTurnLines, cutLastReply, TRANSCRIPT_CHARS, TRANSCRIPT_LINES, transcriptFromMessages } from '../../lib/checkpoint/transcript';
import { emptyCheckpoint } from '../../lib/checkpoint/schema';
import { firstWords } from '../../lib/speech/heard';

describe('the transcript kept for resumed clients', () => {
  it('adds the user line and the reply; blank ones are left out', () => {
    let c = addTurnLines(emptyCheckpoint(), undefined, 'Welcome!');
    c = addTurnLines(c, 'a tea', 'Which size?');
    c = addTurnLines(c, '   ', '');
    expect(c.transcript).toEqual([
      { role: 'assistant', text: 'Welcome!' },
      { role: 'user', text: 'a tea' },
      { role: 'assistant', text: 'Which size?' },
    ]);
    expect(c.transcriptCut).toBe(false);
  });

  it('keeps the newest lines within the line bound and says older ones were dropped', () => {
    let c = emptyCheckpoint();
    for (let i = 0; i < TRANSCRIPT_LINES; i++) c = addTurnLines(c, `q${i}`, `a${i}`);
    expect(c.transcript).toHaveLength(TRANSCRIPT_LINES);
    expect(c.transcript.at(-1)).toEqual({ role: 'assistant', text: `a${TRANSCRIPT_LINES - 1}` });
    expect(c.transcript[0]).toEqual({ role: 'user', text: `q${TRANSCRIPT_LINES / 2}` });
    expect(c.transcriptCut).toBe(true);
  });

  it('keeps the newest lines within the character bound, and always the newest line', () => {
    const long = 'x'.repeat(TRANSCRIPT_CHARS / 3);
    let c = emptyCheckpoint();
    for (let i = 0; i < 3; i++) c = addTurnLines(c, `${i}${long}`, 'ok');
    expect(c.transcript.map((l) => l.text.slice(0, 1))).toEqual(['o', '1', 'o', '2', 'o']);
    expect(c.transcriptCut).toBe(true);
    const huge = addTurnLines(emptyCheckpoint(), undefined, 'y'.repeat(TRANSCRIPT_CHARS + 1));
    expect(huge.transcript).toHaveLength(1);
  });

  it('cuts the last reply to the heard words and marks it; a reply nobody heard goes', () => {
    const c = addTurnLines(emptyCheckpoint(), 'menu?', 'We have espresso, latte and tea.');
    expect(cutLastReply(c, (t) => firstWords(t, 2)).transcript.at(-1)).toEqual({ role: 'assistant', text: 'We have', interrupted: true });
    expect(cutLastReply(c, (t) => firstWords(t, 0)).transcript).toEqual([{ role: 'user', text: 'menu?' }]);
    // All heard: unchanged, not marked.
    expect(cutLastReply(c, (t) => firstWords(t, 99))).toBe(c);
    // The last line is the user's: the turn had no reply to cut.
    const asked = addTurnLines(emptyCheckpoint(), 'hello?', '');
    expect(cutLastReply(asked, () => '')).toBe(asked);
  });

  it('starts an older checkpoint from its messages: user and assistant text, a turn’s replies joined', () => {
    expect(
      transcriptFromMessages(
        [
          { role: 'system', content: 'rules' },
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: '' },
          { role: 'tool', content: '{}' },
          { role: 'assistant', content: 'Hello.' },
          { role: 'assistant', content: 'What would you like?', interrupted: true },
        ],
        true,
      ),
    ).toEqual({
      transcript: [
        { role: 'user', text: 'hi' },
        { role: 'assistant', text: 'Hello. What would you like?', interrupted: true },
      ],
      transcriptCut: true,
    });
  });
});
