import type { AudioFormat } from '../format';

/*
 * What Polly makes, apart from the adapter: format negotiation at session.start needs it without
 * loading the Polly client (lazy.ts), and the adapter checks requests against it.
 */
const MP3_RATES: ReadonlySet<number> = new Set([8000, 16000, 22050, 24000]);
const PCM_RATES: ReadonlySet<number> = new Set([8000, 16000]);

/** pcm at 8000 or 16000 Hz; mp3 at 8000, 16000, 22050 or 24000 Hz. */
export function pollySupports(format: AudioFormat): boolean {
  return format.format === 'mp3' ? MP3_RATES.has(format.sampleRate) : format.format === 'pcm' && PCM_RATES.has(format.sampleRate);
}
