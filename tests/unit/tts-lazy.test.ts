import { describe, expect, it } from 'vitest';
import { PollyClient } from '@aws-sdk/client-polly';
import { lazySynthesizer } from '../../lib/speech/tts/lazy';
import { pollySupports } from '../../lib/speech/tts/polly-formats';
import { PollySynthesizer } from '../../lib/speech/tts/polly';
import type { AudioFormat } from '../../lib/speech/format';
import type { Synthesizer } from '../../lib/speech/tts/port';

const FORMATS: AudioFormat[] = [8000, 16000, 22050, 24000].flatMap((sampleRate) => (['pcm', 'mp3'] as const).map((format) => ({ format, sampleRate }) as AudioFormat));

describe('lazySynthesizer', () => {
  it('loads its adapter once, on the first request, and passes requests and word marks through', async () => {
    let loads = 0;
    const real: Synthesizer = {
      provider: 'fake',
      supports: () => true,
      async *synthesize(request) {
        yield new TextEncoder().encode(request.text);
      },
      wordMarks: async () => [{ timeMs: 0, start: 0, end: 2 }],
    };
    const lazy = lazySynthesizer('fake', () => true, async () => {
      loads += 1;
      return real;
    });
    expect(loads).toBe(0);
    const voice = { provider: 'fake', id: 'v', language: 'en' };
    const chunks: Uint8Array[] = [];
    for await (const c of lazy.synthesize({ text: 'hi', voice, format: { format: 'pcm', sampleRate: 16000 } })) chunks.push(c);
    for await (const c of lazy.synthesize({ text: 'yo', voice, format: { format: 'pcm', sampleRate: 16000 } })) chunks.push(c);
    expect(chunks.map((c) => new TextDecoder().decode(c))).toEqual(['hi', 'yo']);
    expect(await lazy.wordMarks!({ text: 'hi', voice })).toEqual([{ timeMs: 0, start: 0, end: 2 }]);
    expect(loads).toBe(1);
  });

  it("pollySupports answers from Polly's documented formats (pcm 8 and 16 kHz, mp3 at all four rates), and the adapter agrees", () => {
    const polly = new PollySynthesizer(new PollyClient({ region: 'eu-west-1' }));
    const made = FORMATS.filter(pollySupports).map((f) => `${f.format}${f.sampleRate}`);
    expect(made.sort()).toEqual(['mp316000', 'mp322050', 'mp324000', 'mp38000', 'pcm16000', 'pcm8000']);
    for (const f of FORMATS) expect(polly.supports(f), JSON.stringify(f)).toBe(pollySupports(f));
  });
});
