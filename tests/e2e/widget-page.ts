import type { Page } from 'playwright-core';
import { expect } from 'vitest';
import type { FakeOpenAI } from '../support/openai-server';
import { speechWav, type SpeechWav, type SpeechWavOptions } from './speech-wav';

/*
 * What the browser tests share: a long spoken answer to talk over, the fake microphone's speech
 * (or the reason to skip), and helpers that drive and read the widget on a page. Each test file
 * passes its own wait (`{ timeout }`).
 */

export interface Wait {
  timeout: number;
}

/** An answer long enough to be still speaking when the test talks over it. */
export const LONG_ANSWER = [
  'Our beans come from a small farm in the hills of Colombia.',
  'We buy them green and roast them ourselves every Tuesday morning.',
  'The roast is medium, so the chocolate and the caramel notes come through.',
  'Every cup is ground fresh, a few seconds before it is brewed.',
  'If you like, I can tell you more about our single origin espresso as well.',
].join(' ');

/**
 * `text` spoken by the local synthesizer (see speechWav), or null when there is no synthesizer:
 * then `skipping` (what is skipped) is printed, except under CI=true, where the error is thrown.
 */
export async function speechWavOrSkip(text: string, options: SpeechWavOptions, skipping: string): Promise<SpeechWav | null> {
  try {
    return await speechWav(text, options);
  } catch (err) {
    if (process.env.CI === 'true') throw err;
    console.warn(`Skipping ${skipping}: no local synthesizer (${(err as Error).message}).`);
    return null;
  }
}

// Playwright's CSS locators pierce the widget's open shadow root.
export const bot = (page: Page, text: string | RegExp) => page.locator('parley-chat .msg.bot', { hasText: text }).last();

/**
 * Turns the voice on (a click: the user gesture browsers want before audio) and waits for the
 * spoken session; with `checkPressed`, also checks right after the click that the button says so.
 */
export async function voiceOn(page: Page, wait: Wait, { checkPressed = false }: { checkPressed?: boolean } = {}): Promise<void> {
  await bot(page, /welcome to Parley Café/).waitFor(wait);
  await page.locator('parley-chat #voice').click();
  if (checkPressed) await expect(page.locator('parley-chat #voice').getAttribute('aria-pressed')).resolves.toBe('true');
  await page.locator('parley-chat .msg.note', { hasText: 'Voice on' }).waitFor(wait);
}

/** The session id the widget saved in localStorage. */
export const sessionIdOf = async (page: Page): Promise<string> => {
  const saved = await page.evaluate(() => Object.entries(localStorage).find(([k]) => k.startsWith('parley:ws'))?.[1]);
  return (JSON.parse(saved ?? 'null') as { sessionId: string }).sessionId;
};

/** Resolves with the widget's next parley:barge-in event. */
export const nextBargeIn = (page: Page) =>
  page.evaluate(
    () =>
      new Promise<{ turnId: string; playedMs: number; at: number }>((resolve) =>
        document
          .querySelector('parley-chat')!
          .addEventListener('parley:barge-in', (e) => resolve({ ...(e as CustomEvent).detail, at: performance.now() }), { once: true }),
      ),
  );

/** What the audio tap (AUDIO_TAP_SCRIPT) heard so far. */
export const sound = (page: Page) =>
  page.evaluate(() => (window as unknown as { __sound: { firstAt: number | null; lastAt: number | null; peak: number } }).__sound);

/** Waits until the page makes a sound. */
export const soundStarted = (page: Page, wait: Wait) =>
  page.waitForFunction(() => (window as unknown as { __sound: { firstAt: number | null } }).__sound.firstAt !== null, undefined, wait);

/** Types into the widget (waiting until it is enabled: the session has started), presses Enter and waits for the message to show. */
export async function say(page: Page, text: string, wait: Wait): Promise<void> {
  await page.locator('parley-chat #text').fill(text, wait);
  await page.locator('parley-chat #text').press('Enter');
  await page.locator('parley-chat .msg.user', { hasText: text }).last().waitFor(wait);
}

/** Asks a question the fake LLM answers with LONG_ANSWER, and waits until the bot is heard saying it. */
export async function botTalks(page: Page, openai: FakeOpenAI, wait: Wait): Promise<void> {
  openai.script({ text: LONG_ANSWER, chunkChars: 8, tokensPerSecond: 80 });
  await say(page, 'where do your coffee beans come from?', wait);
  await soundStarted(page, wait);
}
