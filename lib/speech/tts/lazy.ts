import type { AudioFormat } from '../format';
import type { SynthesisRequest, Synthesizer, WordMark } from './port';

/**
 * A synthesizer whose adapter (and SDK client) loads on first use: a cold start that only serves
 * text never pays for it. `supports` must answer without the adapter (format negotiation at
 * session.start), so it is given up front.
 */
export function lazySynthesizer(provider: string, supports: (format: AudioFormat) => boolean, load: () => Promise<Synthesizer>): Synthesizer {
  let loaded: Promise<Synthesizer> | undefined;
  const adapter = () => (loaded ??= load());
  return {
    provider,
    supports,
    async *synthesize(request: SynthesisRequest): AsyncGenerator<Uint8Array> {
      yield* (await adapter()).synthesize(request);
    },
    async wordMarks(request: Omit<SynthesisRequest, 'format'>): Promise<WordMark[]> {
      const real = await adapter();
      return real.wordMarks ? real.wordMarks(request) : [];
    },
  };
}
