import { readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_VAD_OPTIONS, EnergyVad } from '../../web/widget/vad';
import { espeakInstalled } from '../support/espeak';
import { speechWav } from '../e2e/speech-wav';

/* The browser tests' spoken input: a WAV file of eSpeak's speech after a known silence. */


// The eSpeak package is an optionalDependency (GPL-3.0): without it there is nothing to speak with.
describe.skipIf(!espeakInstalled)('speechWav (tests/e2e/speech-wav.ts)', () => {
  it.each([
    { options: {}, sampleRate: 48000, leadSilenceMs: 1000 },
    { options: { leadSilenceMs: 400, sampleRate: 16000 }, sampleRate: 16000, leadSilenceMs: 400 },
  ])('writes 16-bit mono PCM at $sampleRate Hz, speech starting right after $leadSilenceMs ms of silence', async ({ options, sampleRate, leadSilenceMs }) => {
    const wav = await speechWav('Stop, I want a large tea instead.', options);
    try {
      const bytes = await readFile(wav.path);
      const ascii = (at: number) => bytes.toString('ascii', at, at + 4);
      expect([ascii(0), ascii(8), ascii(12), ascii(36)]).toEqual(['RIFF', 'WAVE', 'fmt ', 'data']);
      expect(bytes.readUInt32LE(4)).toBe(bytes.length - 8);
      expect(bytes.readUInt32LE(16)).toBe(16);
      expect(bytes.readUInt16LE(20)).toBe(1); // PCM
      expect(bytes.readUInt16LE(22)).toBe(1); // mono
      expect(bytes.readUInt32LE(24)).toBe(sampleRate);
      expect(bytes.readUInt32LE(28)).toBe(sampleRate * 2);
      expect(bytes.readUInt16LE(32)).toBe(2);
      expect(bytes.readUInt16LE(34)).toBe(16);
      const data = bytes.readUInt32LE(40);
      expect(data).toBe(bytes.length - 44);
      expect(wav.durationMs).toBeCloseTo((data / 2 / sampleRate) * 1000, 6);
      expect(wav.durationMs - leadSilenceMs).toBeGreaterThan(1000); // a sentence takes more than a second

      expect(wav.onsetMs).toBeGreaterThanOrEqual(leadSilenceMs);
      expect(wav.onsetMs).toBeLessThanOrEqual(leadSilenceMs + 100);
      // The lead is digital silence; the onset is where it stops being quiet.
      const lead = bytes.subarray(44, 44 + 2 * Math.round((leadSilenceMs * sampleRate) / 1000));
      expect(lead.every((b) => b === 0)).toBe(true);
    } finally {
      await rm(dirname(wav.path), { recursive: true, force: true });
    }
  });

  it('with a room under it (noiseDbfs), the barge-in detector hears the speech ~0.1 s after its onset', async () => {
    const wav = await speechWav('Stop, I want a large tea instead.', { noiseDbfs: -60 });
    try {
      const bytes = await readFile(wav.path);
      expect(bytes.readUInt32LE(24)).toBe(48000);
      // Not digital silence any more, but still quiet before the onset.
      const lead = bytes.subarray(44, 44 + 2 * 48 * (wav.onsetMs - 20));
      let sum = 0;
      for (let i = 0; i < lead.length; i += 2) sum += lead.readInt16LE(i) ** 2;
      const leadDbfs = 20 * Math.log10(Math.sqrt(sum / (lead.length / 2)) / 32768);
      expect(leadDbfs).toBeGreaterThan(-61);
      expect(leadDbfs).toBeLessThan(-59);
      expect(wav.onsetMs).toBeGreaterThanOrEqual(1000);
      expect(wav.onsetMs).toBeLessThanOrEqual(1100);

      // As the browser adapter feeds it: 1024-sample frames at 48 kHz.
      const vad = new EnergyVad();
      const starts: number[] = [];
      for (let at = 44; at + 2048 <= bytes.length; at += 2048) {
        const frame = new Float32Array(1024);
        for (let i = 0; i < 1024; i++) frame[i] = bytes.readInt16LE(at + 2 * i) / 32768;
        const atMs = ((at - 44) / 2 + 1024) / 48;
        if (vad.push(frame, 48000, atMs) === 'start') starts.push(atMs);
      }
      expect(starts).toHaveLength(1);
      expect(starts[0]! - wav.onsetMs).toBeGreaterThanOrEqual(DEFAULT_VAD_OPTIONS.minSpeechMs - 1024 / 48);
      expect(starts[0]! - wav.onsetMs).toBeLessThanOrEqual(DEFAULT_VAD_OPTIONS.minSpeechMs + 2 * (1024 / 48));
    } finally {
      await rm(dirname(wav.path), { recursive: true, force: true });
    }
  });

  it('refuses a noise bed loud enough to hide the onset', async () => {
    await expect(speechWav('Hello.', { noiseDbfs: -30 })).rejects.toThrow(RangeError);
  });
});
