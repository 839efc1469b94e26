import type { ErrorCode } from '../../lib/protocol/v1';

/*
 * What the user reads when something goes wrong: plain words, never a code. The codes stay in the
 * `parley:error` event and the console for the page's developers.
 */

const MESSAGES: Partial<Record<ErrorCode | 'connection.lost' | 'microphone.denied' | 'microphone.unavailable', string>> = {
  'session.ended': 'This conversation has ended.',
  'session.not_found': 'That conversation is no longer available, so a new one has started.',
  'auth.invalid': 'This chat could not be opened here. Please reload the page.',
  'auth.required': 'This chat could not be opened here. Please reload the page.',
  'server.internal': 'Something went wrong on our side. Please try again.',
  'rate.limited': 'That was a bit fast. Please wait a moment and send it again.',
  'session.limit': 'This conversation has reached its limit. Start a new one to go on.',
  'turn.conflict': 'Another message was still being answered. Please send that again.',
  'protocol.too_large': 'That message is too long. Please shorten it.',
  'protocol.version_unsupported': 'This chat needs an update. Please reload the page.',
  'connection.lost': 'Connection lost. Reconnecting…',
  'microphone.denied': 'The microphone is blocked. Allow it in the browser to talk to the bot.',
  'microphone.unavailable': 'No microphone was found.',
  'stt.failed': 'Sorry, I did not catch that. Please say it again.',
  'stt.unavailable': 'Voice input is not available here: the microphone only stops the bot. Please type.',
};

const FALLBACK = 'That did not work. Please try again.';

export type FriendlyCode = keyof typeof MESSAGES;

export const friendly = (code: string): string => MESSAGES[code as FriendlyCode] ?? FALLBACK;

/** Errors that mean the saved session is gone or not ours: start a fresh one instead. */
export const STALE_SESSION_CODES: ReadonlySet<string> = new Set(['session.not_found', 'auth.invalid', 'session.ended']);
