import { createRequire } from 'node:module';

/**
 * Whether the local synthesizer's package is installed: it is an optionalDependency (GPL-3.0), so
 * tests that speak with it skip without it.
 */
export const espeakInstalled: boolean = (() => {
  try {
    createRequire(import.meta.url).resolve('@echogarden/espeak-ng-emscripten');
    return true;
  } catch {
    return false;
  }
})();
