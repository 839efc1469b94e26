import { liveTranscriber } from './transcribe-live';
import { TRANSCRIBE_GLOBAL, type TranscribeModule } from './transcribe-loader';

// The lazily loaded bundle (parley-transcribe.js): hands the live transcriber to the widget that loaded it.
(globalThis as Record<symbol, unknown>)[TRANSCRIBE_GLOBAL] = { liveTranscriber } satisfies TranscribeModule;
