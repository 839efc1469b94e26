import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { DynamoSessionStore } from '../../lib/checkpoint/dynamo-store';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import { llmPortsFactory } from '../../lib/llm/configure';
import { emptyAudioCache } from '../../lib/speech/audio-cache';
import { voiceFor } from '../../lib/speech/tts/voice';
import type { SpeechDeps } from '../../lib/session/dispatch';
import type { LocalRuntime } from '../../local/runtime';
import { createEspeakSynthesizer, type EspeakSynthesizer } from '../../local/speech/espeak';
import { sampleMap, startRuntime, storeOf } from '../integration/harness';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';
import { AUDIO_TAP_SCRIPT, fakeMicrophone, launchChromium } from './browser';
import type { SpeechWav } from './speech-wav';
import { bot, botTalks, LONG_ANSWER, nextBargeIn, say as sayWith, sessionIdOf, sound, speechWavOrSkip, voiceOn as voiceOnWith } from './widget-page';

/*
 * The chat widget in a real browser: Debian's chromium through playwright-core, against the local
 * runtime (dynalite, the local gateway, the real handlers), speaking with the local eSpeak
 * synthesizer; the LLM is a local server speaking the OpenAI stream format. Skipped, with the
 * reason printed, when no chromium is installed, except under CI=true, where that fails the run.
 */

const WAIT = { timeout: 15_000 };
const SCREENSHOT = new URL('../../docs/widget.png', import.meta.url).pathname;

/** Whether two PNGs differ in more than a few pixels, decoded by the browser itself. */
async function differentPictures(page: Page, a: Buffer, b: Buffer): Promise<boolean> {
  return page.evaluate(
    async ([a64, b64]) => {
      const pixels = async (b64: string) => {
        const bitmap = await createImageBitmap(await (await fetch(`data:image/png;base64,${b64}`)).blob());
        const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
        const ctx = canvas.getContext('2d')!;
        ctx.drawImage(bitmap, 0, 0);
        return ctx.getImageData(0, 0, bitmap.width, bitmap.height);
      };
      const [x, y] = await Promise.all([pixels(a64), pixels(b64)]);
      if (x.width !== y.width || x.height !== y.height) return true;
      let differing = 0;
      for (let i = 0; i < x.data.length; i += 4) {
        if (Math.max(Math.abs(x.data[i]! - y.data[i]!), Math.abs(x.data[i + 1]! - y.data[i + 1]!), Math.abs(x.data[i + 2]! - y.data[i + 2]!)) > 24) differing += 1;
      }
      return differing > 50;
    },
    [a.toString('base64'), b.toString('base64')] as const,
  );
}

// The fake microphone speaks this (a file made by the local synthesizer) once the widget turns it on.
// A faint noise bed, as every real microphone has: the detector learns the room from it.
const wav: SpeechWav | null = await speechWavOrSkip('Wait, stop please. I have a question.', { leadSilenceMs: 1000, noiseDbfs: -60 }, 'the browser barge-in test');
const browser: Browser | null = await launchChromium(wav ? fakeMicrophone(wav.path) : []);

describe.skipIf(browser === null)('the chat widget in chromium', () => {
  const map = sampleMap();
  let espeak: EspeakSynthesizer;
  let openai: FakeOpenAI;
  let runtime: LocalRuntime;
  let store: DynamoSessionStore;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    espeak = await createEspeakSynthesizer();
    openai = await startFakeOpenAI();
    const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'gpt-test', PARLEY_SAFETY: 'local', PARLEY_LLM_BUDGET_MS: '20000' });
    const speech: SpeechDeps = { synthesizer: espeak, cache: emptyAudioCache, voiceFor: (language) => voiceFor(map, language, 'espeak') };
    runtime = await startRuntime({ servePage: true, llm: llmPortsFactory(env)('test-key'), speech });
    store = storeOf(runtime);
  });

  afterEach(() => openai.reset());

  afterAll(async () => {
    await Promise.all(contexts.map((c) => c.close()));
    await browser?.close();
    await runtime?.close();
    await openai?.close();
    await espeak?.close();
    if (wav) await rm(dirname(wav.path), { recursive: true, force: true });
  });

  /** A fresh page (its own localStorage, so its own session), failing the test on any page error. */
  async function openPage(viewport = { width: 440, height: 680 }): Promise<{ page: Page; errors: string[] }> {
    const context = await browser!.newContext({ viewport });
    contexts.push(context);
    await context.addInitScript(AUDIO_TAP_SCRIPT);
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(runtime.httpUrl);
    return { page, errors };
  }

  /** Types into the widget (waiting until it is enabled: the session has started), presses Enter and waits for the message. */
  const say = (page: Page, text: string) => sayWith(page, text, WAIT);

  it('greets, then streams an answer into the page as it arrives', async () => {
    const { page, errors } = await openPage();
    await bot(page, /welcome to Parley Café/).waitFor(WAIT);
    // Every text the answer's bubble shows on its way, to see it grow rather than appear whole.
    await page.evaluate(() => {
      const seen: string[] = ((window as unknown as { __texts: string[] }).__texts = []);
      const log = document.querySelector('parley-chat')!.shadowRoot!.getElementById('log')!;
      new MutationObserver(() => {
        const last = log.querySelectorAll('.msg.bot');
        const text = last[last.length - 1]?.textContent ?? '';
        if (seen.at(-1) !== text) seen.push(text);
      }).observe(log, { childList: true, subtree: true, characterData: true });
    });
    const answer = 'We roast our beans on Tuesdays. They come from a small farm in Colombia.';
    openai.script({ text: answer, chunkChars: 6, tokensPerSecond: 25 });
    await say(page, 'where do your coffee beans come from?');
    await bot(page, 'small farm in Colombia.').waitFor(WAIT);
    const texts = await page.evaluate(() => (window as unknown as { __texts: string[] }).__texts);
    const partial = texts.filter((t) => t.length > 0 && t.length < answer.length && answer.startsWith(t));
    expect(partial.length).toBeGreaterThanOrEqual(3);
    expect(texts.at(-1)).toBe(answer);
    // Screen readers hear the whole answer, not every piece: the bubble is busy only while it streams.
    await expect(bot(page, answer).getAttribute('aria-busy')).resolves.toBeNull();
    expect(errors).toEqual([]);
  });

  /** Turns the voice on (a click: the user gesture browsers want before audio), checks the button is pressed and waits for the spoken session. */
  const voiceOn = (page: Page) => voiceOnWith(page, WAIT, { checkPressed: true });

  it('plays the spoken reply: sound reaches the speakers (an AnalyserNode reads non-silence); mute silences it at once', async () => {
    const { page, errors } = await openPage();
    await voiceOn(page);
    await botTalks(page, openai, WAIT);
    expect((await sound(page)).peak).toBeGreaterThan(0.05);

    await page.locator('parley-chat #voice').click();
    const mutedAt = await page.evaluate(() => performance.now());
    await page.waitForTimeout(600);
    expect((await sound(page)).lastAt!).toBeLessThan(mutedAt + 50);
    await expect(page.locator('parley-chat #voice').getAttribute('aria-pressed')).resolves.toBe('false');
    // The reply itself stays on screen.
    await bot(page, 'single origin espresso').waitFor(WAIT);
    expect(errors).toEqual([]);
  });

  it('typing while the bot speaks stops it, as speaking over it would', async () => {
    const { page, errors } = await openPage();
    await voiceOn(page);
    await botTalks(page, openai, WAIT);
    const bargeIn = nextBargeIn(page);
    await page.locator('parley-chat #text').pressSequentially('and', { delay: 20 });
    const barge = await bargeIn;
    await page.waitForTimeout(500);
    expect((await sound(page)).lastAt!).toBeLessThan(barge.at + 50);
    expect(barge.playedMs).toBeGreaterThan(0);
    // The bubble of the cut reply says so (to screen readers too).
    await expect(page.locator('parley-chat .msg.bot.interrupted').last().textContent()).resolves.toContain('(interrupted)');
    expect(errors).toEqual([]);
  });

  it.skipIf(wav === null)('barge-in: the user speaks over the bot; playback stops within 300 ms and the stored answer is cut', async () => {
    const { page, errors } = await openPage();
    await voiceOnWith(page, WAIT);
    const bargeIns = nextBargeIn(page);
    // The bot is talking ...
    await botTalks(page, openai, WAIT);
    // ... when the user turns the microphone on and, after a second of silence, speaks.
    await page.locator('parley-chat #mic').click();
    const barge = await bargeIns;
    await page.waitForTimeout(1000); // anything still sounding would show up by now
    const { micAt, lastSoundAt } = await page.evaluate(() => {
      const w = window as unknown as { __micAt: number; __sound: { lastAt: number } };
      return { micAt: w.__micAt, lastSoundAt: w.__sound.lastAt };
    });
    const speechAt = micAt + wav!.onsetMs;
    const stoppedAfterMs = lastSoundAt - speechAt;
    console.log(
      `barge-in: playback stopped ${stoppedAfterMs.toFixed(0)} ms after the user began speaking ` +
        `(detected after ${(barge.at - speechAt).toFixed(0)} ms; ${barge.playedMs} ms of the answer played)`,
    );
    expect(stoppedAfterMs).toBeLessThanOrEqual(300);
    expect(barge.playedMs).toBeGreaterThan(0);
    await expect(page.locator('parley-chat #stop').isHidden()).resolves.toBe(true);

    // The server kept only what was heard: the stored answer is cut and marked.
    const sessionId = await sessionIdOf(page);
    await expect.poll(async () => (await store.loadHead(sessionId))?.checkpoint.transcript.at(-1)?.interrupted, { timeout: 10_000, interval: 50 }).toBeTruthy();
    const head = await store.loadHead(sessionId);
    const stored = head!.checkpoint.transcript.at(-1)!;
    expect(stored).toMatchObject({ role: 'assistant', interrupted: true });
    expect(LONG_ANSWER.startsWith(stored.text)).toBe(true);
    expect(stored.text.length).toBeLessThan(LONG_ANSWER.length);
    expect(head!.checkpoint.messages.at(-1)).toMatchObject({ role: 'assistant', content: stored.text, interrupted: true });
    expect(errors).toEqual([]);
  });

  it('a reload resumes the same session and shows the conversation so far', async () => {
    const { page, errors } = await openPage();
    await say(page, "I'd like an espresso");
    await bot(page, 'Which size: small, medium or large?').waitFor(WAIT);
    const before = await sessionIdOf(page);

    await page.reload();
    await page.locator('parley-chat .msg.note', { hasText: 'Conversation resumed.' }).waitFor(WAIT);
    expect(await sessionIdOf(page)).toBe(before);
    // The history came back from the server, in order.
    const lines = await page.locator('parley-chat .msg.user, parley-chat .msg.bot').allTextContents();
    expect(lines).toEqual([expect.stringMatching(/welcome to Parley Café/), "I'd like an espresso", 'Which size: small, medium or large?']);

    // The resumed session still waits for the size: the next message completes the order.
    await say(page, 'small');
    await bot(page, "So that's 1 × small espresso. Shall I place the order?").waitFor(WAIT);
    expect(await sessionIdOf(page)).toBe(before);
    expect(errors).toEqual([]);
  });

  it('a connection the gateway drops (idle for 10 minutes, or 2 hours old) reconnects and resumes by itself', async () => {
    const before = new Set(runtime.connectionIds());
    const { page, errors } = await openPage();
    await say(page, "I'd like an espresso");
    await bot(page, 'Which size: small, medium or large?').waitFor(WAIT);
    const [mine] = runtime.connectionIds().filter((id) => !before.has(id));
    // What API Gateway does at its limits: DeleteConnection through the management API.
    const res = await fetch(`${runtime.callbackUrl}/@connections/${encodeURIComponent(mine!)}`, { method: 'DELETE' });
    expect(res.status).toBe(204);
    await page.locator('parley-chat .msg.note', { hasText: 'Conversation resumed.' }).waitFor(WAIT);
    expect(runtime.connectionIds()).not.toContain(mine);
    await say(page, 'medium');
    await bot(page, "So that's 1 × medium espresso. Shall I place the order?").waitFor(WAIT);
    expect(errors).toEqual([]);
  });

  it('an ended conversation offers a new one; the new one starts with a greeting', async () => {
    const { page, errors } = await openPage();
    await bot(page, /welcome to Parley Café/).waitFor(WAIT);
    await say(page, "no thanks, that's all");
    await bot(page, 'Goodbye!').waitFor(WAIT);
    await page.locator('parley-chat #again').waitFor({ state: 'visible', ...WAIT });
    await expect(page.locator('parley-chat #composer').isHidden()).resolves.toBe(true);
    await page.locator('parley-chat #again').click();
    await expect(page.locator('parley-chat .msg.bot', { hasText: /welcome to Parley Café/ }).count()).resolves.toBeLessThanOrEqual(1);
    await bot(page, /welcome to Parley Café/).waitFor(WAIT);
    await expect(page.locator('parley-chat .msg.user').count()).resolves.toBe(0);
    await say(page, 'what time do you open?');
    await bot(page, '7 am').waitFor(WAIT);
    expect(errors).toEqual([]);
  });

  it('fits a phone screen: full width, no sideways scrolling, the composer in view', async () => {
    const { page, errors } = await openPage({ width: 375, height: 667 });
    await say(page, 'what time do you open?');
    await bot(page, '7 am').waitFor(WAIT);
    const box = (await page.locator('parley-chat').boundingBox())!;
    expect(box.width).toBe(375);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    const composer = (await page.locator('parley-chat #composer').boundingBox())!;
    expect(composer.y + composer.height).toBeLessThanOrEqual(667);
    // Inputs of 16 px keep phones from zooming in on focus.
    expect(await page.locator('parley-chat #text').evaluate((el) => getComputedStyle(el).fontSize)).toBe('16px');
    expect(errors).toEqual([]);
  });

  it('takes the README screenshot of a short conversation (docs/widget.png)', async () => {
    const { page, errors } = await openPage({ width: 900, height: 720 });
    await say(page, 'what time do you open?');
    await bot(page, '7 am').waitFor(WAIT);
    await say(page, "I'd like a large latte");
    await bot(page, /large latte/).waitFor(WAIT);
    await page.locator('parley-chat #text').fill('yes please');
    const shot = await page.locator('main').screenshot({ animations: 'disabled', caret: 'hide' });
    // Chromium's antialiasing varies by a few bytes from run to run: the file is only rewritten when
    // the picture changed, so the README stays true without touching git on every test run.
    const old = await readFile(SCREENSHOT).catch(() => null);
    if (!old || (await differentPictures(page, old, shot))) await writeFile(SCREENSHOT, shot);
    expect(errors).toEqual([]);
  });
});
