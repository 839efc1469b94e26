import type { liveTranscriber } from './transcribe-live';

/*
 * Loads the live-transcription bundle (parley-transcribe.js, the AWS SDK's Transcribe client) the
 * first time a session says its speech goes to Amazon Transcribe: most sessions never need it, and
 * it is about three times the size of the widget.
 */

/** The lazy bundle's file name, next to the widget's own script wherever that is hosted. */
export const TRANSCRIBE_FILE = 'parley-transcribe.js';

/** Where the lazy bundle leaves what it exports (a registered symbol: both bundles make the same one). */
export const TRANSCRIBE_GLOBAL = Symbol.for('parley.transcribe');

export interface TranscribeModule {
  liveTranscriber: typeof liveTranscriber;
}

// The widget's own URL is known only while its script runs, so it is taken now, at load.
const WIDGET_SCRIPT_URL: string | undefined =
  typeof document === 'undefined' ? undefined : ((document.currentScript as HTMLScriptElement | null)?.src || undefined);

let loading: Promise<TranscribeModule> | undefined;

/** The lazy bundle, loaded once per page; a failed load is tried again on the next call. */
export function loadTranscribe(): Promise<TranscribeModule> {
  const present = (globalThis as Record<symbol, TranscribeModule | undefined>)[TRANSCRIBE_GLOBAL];
  if (present) return Promise.resolve(present);
  loading ??= new Promise<TranscribeModule>((resolve, reject) => {
    const script = document.createElement('script');
    script.src = new URL(TRANSCRIBE_FILE, WIDGET_SCRIPT_URL ?? document.baseURI).href;
    script.async = true;
    script.onload = () => {
      const module = (globalThis as Record<symbol, TranscribeModule | undefined>)[TRANSCRIBE_GLOBAL];
      if (module) resolve(module);
      else reject(new Error(`${script.src} did not register the live transcriber`));
    };
    script.onerror = () => reject(new Error(`could not load ${script.src}`));
    document.head.append(script);
  }).catch((err: unknown) => {
    loading = undefined;
    throw err;
  });
  return loading;
}
