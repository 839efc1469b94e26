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
 * Launches Debian's chromium (with `extraArgs` after the required flags). A missing binary fails under CI=true (a CI run must never skip the
 * browser tests); elsewhere it returns null and prints why, and the tests skip.
 */
export async function launchChromium(extraArgs: readonly string[] = []): Promise<Browser | null> {
  const path = chromiumPath();
  if (!executable(path)) {
    const reason = `no chromium at ${path}: install Debian's chromium (apt-get install chromium) or set PARLEY_CHROMIUM`;
    if (process.env.CI === 'true') throw new Error(`browser tests cannot run under CI: ${reason}`);
    console.warn(`Skipping the browser tests: ${reason}.`);
    return null;
  }
  return chromium.launch({ executablePath: path, headless: true, args: [...CHROMIUM_FLAGS, ...extraArgs], timeout: 30_000 });
}

/** Chromium's fake microphone playing `wavPath` once, permission granted without a prompt. */
export const fakeMicrophone = (wavPath: string): string[] => [
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${wavPath}%noloop`,
];

/**
 * An init script for pages under test: every node connected to an AudioContext's destination is
 * also connected to one AnalyserNode, polled every 5 ms, so a test can tell when sound really
 * left for the speakers and when it stopped (`window.__sound`). It also notes when getUserMedia
 * handed out the microphone (`window.__micAt`): the fake device starts its file then.
 */
export const AUDIO_TAP_SCRIPT = `(() => {
  const sound = { firstAt: null, lastAt: null, peak: 0 };
  window.__sound = sound;
  const connect = AudioNode.prototype.connect;
  let tap = null;
  AudioNode.prototype.connect = function (destination, ...rest) {
    const result = connect.call(this, destination, ...rest);
    if (destination instanceof AudioDestinationNode) {
      if (!tap || tap.context !== destination.context) {
        tap = destination.context.createAnalyser();
        tap.fftSize = 512;
        const data = new Float32Array(tap.fftSize);
        const analyser = tap;
        setInterval(() => {
          analyser.getFloatTimeDomainData(data);
          let peak = 0;
          for (const v of data) peak = Math.max(peak, Math.abs(v));
          sound.peak = Math.max(sound.peak, peak);
          if (peak > 0.01) {
            const now = performance.now();
            sound.firstAt ??= now;
            sound.lastAt = now;
          }
        }, 5);
      }
      connect.call(this, tap);
    }
    return result;
  };
  const gum = navigator.mediaDevices?.getUserMedia?.bind(navigator.mediaDevices);
  if (gum) {
    navigator.mediaDevices.getUserMedia = async (constraints) => {
      const stream = await gum(constraints);
      window.__micAt = performance.now();
      return stream;
    };
  }
})();`;
