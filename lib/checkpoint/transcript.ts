import type { HistoryMessage } from '../protocol/v1';
import type { Checkpoint } from './schema';

/*
 * The conversation as the user saw it: one line per user input and one per bot reply, kept in the
 * checkpoint so a resumed client can show it again (session.history) without reading turn records.
 * It is separate from `messages`, the LLM's context, which a state may reset or fold into a summary.
 * Bounded: the newest lines that fit TRANSCRIPT_CHARS, at most TRANSCRIPT_LINES of them.
 */

export const TRANSCRIPT_LINES = 60;
export const TRANSCRIPT_CHARS = 12_000;

/** The checkpoint with the turn's lines added: the user's text (if any) and the bot's reply (if any). */
export function addTurnLines(checkpoint: Checkpoint, user: string | undefined, reply: string): Checkpoint {
  const lines: HistoryMessage[] = [];
  if (user?.trim()) lines.push({ role: 'user', text: user });
  if (reply.trim()) lines.push({ role: 'assistant', text: reply });
  if (lines.length === 0) return checkpoint;
  return bounded(checkpoint, [...checkpoint.transcript, ...lines]);
}

/**
 * The last reply cut to the words the user heard (`cut` gives the kept text of the reply), marked
 * interrupted; a reply of which nothing was heard is removed. Only a reply after the last user line
 * is the last turn's.
 */
export function cutLastReply(checkpoint: Checkpoint, cut: (text: string) => string): Checkpoint {
  const lines = checkpoint.transcript;
  const last = lines.at(-1);
  if (last?.role !== 'assistant') return checkpoint;
  const kept = cut(last.text);
  if (kept === last.text) return checkpoint;
  const rest = lines.slice(0, -1);
  return { ...checkpoint, transcript: kept.trim() ? [...rest, { role: 'assistant', text: kept, interrupted: true }] : rest };
}

/**
 * The transcript a checkpoint from before transcripts gets: its messages' user and assistant
 * text (a turn's assistant messages joined into one reply, as the client saw them streamed).
 */
export function transcriptFromMessages(messages: readonly { role?: unknown; content?: unknown; interrupted?: unknown }[], earlier: boolean): { transcript: HistoryMessage[]; transcriptCut: boolean } {
  const lines: HistoryMessage[] = [];
  for (const m of messages) {
    if ((m.role !== 'user' && m.role !== 'assistant') || typeof m.content !== 'string' || !m.content.trim()) continue;
    const last = lines.at(-1);
    if (m.role === 'assistant' && last?.role === 'assistant') {
      lines[lines.length - 1] = { ...last, text: `${last.text} ${m.content}`, ...(m.interrupted === true ? { interrupted: true } : {}) };
    } else {
      lines.push({ role: m.role, text: m.content, ...(m.role === 'assistant' && m.interrupted === true ? { interrupted: true } : {}) });
    }
  }
  const start = boundedStart(lines);
  return { transcript: lines.slice(start), transcriptCut: earlier || start > 0 };
}

function bounded(checkpoint: Checkpoint, lines: HistoryMessage[]): Checkpoint {
  const start = boundedStart(lines);
  return { ...checkpoint, transcript: lines.slice(start), transcriptCut: checkpoint.transcriptCut || start > 0 };
}

/** Where the newest lines that fit the bounds begin. */
function boundedStart(lines: readonly HistoryMessage[]): number {
  let start = Math.max(0, lines.length - TRANSCRIPT_LINES);
  let chars = 0;
  for (let i = lines.length - 1; i >= start; i -= 1) {
    chars += lines[i]!.text.length;
    if (chars > TRANSCRIPT_CHARS) {
      // Keep at least the newest line, however long (input text is at most 4,000 characters).
      start = Math.min(i + 1, lines.length - 1);
      break;
    }
  }
  return start;
}
