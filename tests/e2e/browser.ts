import { accessSync, constants } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/*
 * The browser for the end-to-end tests: Debian's chromium package (`.ci/run` installs it with
 * apt-get), driven by playwright-core, which downloads no browser of its own.
 */

/** Debian's chromium, unless PARLEY_CHROMIUM names another binary. */
export const chromiumPath = (): string => process.env.PARLEY_CHROMIUM || '/usr/bin/chromium';

/** The flags the browser is launched with (Playwright adds its own automation defaults). */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
] as const;

const executable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * Launches Debian's chromium. A missing binary fails under CI=true (a CI run must never skip the
 * browser tests); elsewhere it returns null and prints why, and the tests skip.
 */
export async function launchChromium(): Promise<Browser | null> {
  const path = chromiumPath();
  if (!executable(path)) {
    const reason = `no chromium at ${path}: install Debian's chromium (apt-get install chromium) or set PARLEY_CHROMIUM`;
    if (process.env.CI === 'true') throw new Error(`browser tests cannot run under CI: ${reason}`);
    console.warn(`Skipping the browser tests: ${reason}.`);
    return null;
  }
  return chromium.launch({ executablePath: path, headless: true, args: [...CHROMIUM_FLAGS], timeout: 30_000 });
}
