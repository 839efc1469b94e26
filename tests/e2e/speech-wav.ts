import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concatBytes, pcmFromBytes, pcmToBytes, resamplePcm16, rms } from '../../lib/speech/pcm';
import { pcmToWav } from '../../lib/speech/wav';
import { createEspeakSynthesizer } from '../../local/speech/espeak';

/*
 * Spoken input for the browser tests: a WAV file for chromium's fake microphone
 * (`--use-fake-device-for-media-stream --use-file-for-fake-audio-capture=<path>%noloop`; without
 * `%noloop` chromium plays the file in a loop).
 */

/** eSpeak's own rate: asked for it, the synthesizer does not resample, so the audio is resampled once, here. */
const ESPEAK_RATE = 22050;
/** A 10 ms window at least this loud (RMS, 16-bit units: -40 dBFS) is speech. */
const ONSET_RMS = 32768 * 10 ** (-40 / 20);

export interface SpeechWav {
  /** The WAV file (16-bit PCM, mono) in a fresh temporary folder of its own; the caller may delete the folder. */
  path: string;
  /** Where speech starts in the file (ms): the start of the first 10 ms window louder than -40 dBFS. */
  onsetMs: number;
  /** The whole file's length (ms). */
  durationMs: number;
}

export interface SpeechWavOptions {
  /** Silence before the speech (ms); default 1000. */
  leadSilenceMs?: number;
  /** Default 48000, the rate browsers capture at. */
  sampleRate?: number;
  /**
   * White noise of this RMS (dBFS, at most -50) under the whole file, like the room a real
   * microphone always hears; default none: digital silence. Barge-in latency needs it: in digital
   * silence the detector (web/widget/vad.ts) has no noise floor until the speech starts, so it
   * starts late, at the first pause (about 0.2 s after the onset instead of 0.1 s).
   */
  noiseDbfs?: number;
}

/**
 * `text` spoken by the local synthesizer (eSpeak NG, en-us) after `leadSilenceMs` of silence, and
 * nothing after it. Needs the optional eSpeak package; throws when it is missing or when the text
 * gives no audible speech.
 */
export async function speechWav(text: string, options: SpeechWavOptions = {}): Promise<SpeechWav> {
  const { leadSilenceMs = 1000, sampleRate = 48000, noiseDbfs } = options;
  if (!(Number.isInteger(sampleRate) && sampleRate > 0)) throw new RangeError(`invalid sample rate ${sampleRate}`);
  if (!(leadSilenceMs >= 0)) throw new RangeError(`invalid lead silence ${leadSilenceMs} ms`);
  // A louder bed would hide the onset (ONSET_RMS).
  if (noiseDbfs !== undefined && !(noiseDbfs <= -50)) throw new RangeError(`noise at ${noiseDbfs} dBFS is louder than -50 dBFS`);

  const synth = await createEspeakSynthesizer();
  let speech: Int16Array;
  try {
    const chunks: Uint8Array[] = [];
    const voice = { provider: 'espeak', id: 'en-us', language: 'en' };
    for await (const chunk of synth.synthesize({ text, voice, format: { format: 'pcm', sampleRate: ESPEAK_RATE } })) {
      chunks.push(chunk);
    }
    speech = resamplePcm16(pcmFromBytes(concatBytes(chunks)), ESPEAK_RATE, sampleRate);
  } finally {
    await synth.close();
  }

  const lead = Math.round((leadSilenceMs * sampleRate) / 1000);
  const samples = new Int16Array(lead + speech.length);
  samples.set(speech, lead);
  if (noiseDbfs !== undefined) addNoise(samples, noiseDbfs);
  const onset = firstLoudWindow(samples, sampleRate);
  if (onset === undefined) throw new Error(`the synthesizer gave no audible speech for ${JSON.stringify(text)}`);

  const dir = await mkdtemp(join(tmpdir(), 'parley-speech-'));
  const path = join(dir, 'speech.wav');
  await writeFile(path, pcmToWav(pcmToBytes(samples), sampleRate));
  return { path, onsetMs: (onset * 1000) / sampleRate, durationMs: (samples.length * 1000) / sampleRate };
}

/** Seeded white noise of RMS `dbfs` added in place (the same file every run). */
function addNoise(samples: Int16Array, dbfs: number): void {
  const peak = Math.sqrt(3) * 32768 * 10 ** (dbfs / 20); // uniform on ±peak has RMS peak/√3
  let state = 0x9e3779b9;
  for (let i = 0; i < samples.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const noisy = samples[i]! + Math.round((state / 2 ** 32 - 0.5) * 2 * peak);
    samples[i] = Math.max(-32768, Math.min(32767, noisy));
  }
}

/** The first sample of the first 10 ms window whose RMS is above ONSET_RMS. */
function firstLoudWindow(samples: Int16Array, sampleRate: number): number | undefined {
  const size = Math.max(1, Math.round(sampleRate / 100));
  for (let start = 0; start < samples.length; start += size) {
    if (rms(samples.subarray(start, start + size)) > ONSET_RMS) return start;
  }
  return undefined;
}
