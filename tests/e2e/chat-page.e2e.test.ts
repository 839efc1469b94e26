import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { LocalRuntime } from '../../local/runtime';
import { startRuntime } from '../integration/harness';
import { launchChromium } from './browser';

/*
 * The chat page `npm start` serves, in a real browser: Debian's chromium through playwright-core,
 * against the local runtime (dynalite and the local gateway). Skipped, with the reason printed,
 * when no chromium is installed, except under CI=true, where that fails the run.
 */

const browser: Browser | null = await launchChromium();
const WAIT = { timeout: 10_000 };

describe.skipIf(browser === null)('the chat page in chromium', () => {
  let runtime: LocalRuntime;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    runtime = await startRuntime({ servePage: true });
  });

  afterAll(async () => {
    await Promise.all(contexts.map((c) => c.close()));
    await browser?.close();
    await runtime?.close();
  });

  /** A fresh page (its own localStorage, so its own session), failing the test on any page error. */
  async function openPage(): Promise<{ page: Page; errors: string[] }> {
    const context = await browser!.newContext();
    contexts.push(context);
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(runtime.httpUrl);
    return { page, errors };
  }

  /** Types into the page's input (it waits until the input is enabled: the session has started) and presses Enter. */
  async function say(page: Page, text: string): Promise<void> {
    await page.locator('#text').fill(text, WAIT);
    await page.locator('#text').press('Enter');
    await page.locator('#log .msg.user', { hasText: text }).last().waitFor(WAIT);
  }

  const botSaid = (page: Page, text: string | RegExp) => page.locator('#log .msg.bot', { hasText: text }).last().waitFor(WAIT);

  const savedSessionId = (page: Page) =>
    page.evaluate(() => (JSON.parse(localStorage.getItem('parley.session') ?? 'null') as { sessionId: string } | null)?.sessionId);

  it('greets, then streams the answer to a typed question', async () => {
    const { page, errors } = await openPage();
    await botSaid(page, /welcome to Parley Café/);
    await say(page, 'what time do you open?');
    await botSaid(page, '7 am');
    await expect(page.locator('#log .msg.bot', { hasText: '7 am' }).last().textContent()).resolves.toMatch(/from 7 am to 7 pm/);
    expect(errors).toEqual([]);
  });

  it('resumes the same session after a reload, where the conversation left off', async () => {
    const { page, errors } = await openPage();
    await say(page, "I'd like an espresso");
    await botSaid(page, 'Which size: small, medium or large?');
    const before = await savedSessionId(page);
    expect(before).toMatch(/\S/);

    await page.reload();
    // session.started with resumed: true adds this note and saves the (resumed) session again.
    await page.locator('#log .msg.note', { hasText: 'Conversation resumed.' }).waitFor(WAIT);
    expect(await savedSessionId(page)).toBe(before);
    await expect(page.locator('#status').textContent()).resolves.toMatch(/^resumed at/);

    // The resumed session still waits for the size: the next message completes the order.
    await say(page, 'small');
    await botSaid(page, "So that's 1 × small espresso. Shall I place the order?");
    expect(await savedSessionId(page)).toBe(before);
    expect(errors).toEqual([]);
  });
});
