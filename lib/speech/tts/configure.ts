import { PollyClient } from '@aws-sdk/client-polly';
import { ParleyError } from '../../errors';
import { PollySynthesizer } from './polly';
import { TtsError, type Synthesizer } from './port';

/** PARLEY_TTS: which synthesizer speaks. */
export type TtsChoice = 'auto' | 'polly' | 'local' | 'off';

export interface CreateSynthesizerOptions {
  /** Where AWS credentials are looked for (default: process.env). */
  env?: Record<string, string | undefined>;
  /** Polly's client, or a whole synthesizer standing in for Polly (default: a PollyClient from the environment). */
  polly?: () => PollyClient | Synthesizer;
  /**
   * The local synthesizer, passed in by the local host (lib/ never loads it: it is GPL-3.0 and an
   * optional dependency). Throws TtsError('tts.connection') when it is not installed.
   */
  local?: () => Promise<Synthesizer>;
}

/**
 * Whether the environment gives the AWS SDK credentials: static keys, a profile, web identity
 * (EKS, GitHub OIDC), a container credentials endpoint (ECS), or the Lambda runtime itself.
 * (EC2 instance metadata is not probed: it would cost a network round trip at start.)
 */
export function hasAwsCredentials(env: Record<string, string | undefined>): boolean {
  const set = (name: string) => (env[name] ?? '').trim() !== '';
  return (
    (set('AWS_ACCESS_KEY_ID') && set('AWS_SECRET_ACCESS_KEY')) ||
    set('AWS_PROFILE') ||
    set('AWS_WEB_IDENTITY_TOKEN_FILE') ||
    set('AWS_CONTAINER_CREDENTIALS_RELATIVE_URI') ||
    set('AWS_CONTAINER_CREDENTIALS_FULL_URI') ||
    set('AWS_LAMBDA_FUNCTION_NAME')
  );
}

const isSynthesizer = (x: PollyClient | Synthesizer): x is Synthesizer =>
  !(x instanceof PollyClient) && typeof (x as Partial<Synthesizer>).synthesize === 'function';

function polly(options: CreateSynthesizerOptions): Synthesizer {
  const made = options.polly ? options.polly() : new PollyClient({});
  return isSynthesizer(made) ? made : new PollySynthesizer(made);
}

/**
 * The synthesizer PARLEY_TTS asks for, or undefined for none (text only).
 *
 * - `off`: none.
 * - `polly`: Polly, whatever the environment (a request without credentials fails as tts.connection).
 * - `local`: the host's local synthesizer; a host without one is a configuration error.
 * - `auto`: Polly when AWS credentials are configured (or in Lambda); else the local synthesizer
 *   when the host has one and it is installed; else none.
 */
export async function createSynthesizer(choice: TtsChoice, options: CreateSynthesizerOptions = {}): Promise<Synthesizer | undefined> {
  const env = options.env ?? process.env;
  switch (choice) {
    case 'off':
      return undefined;
    case 'polly':
      return polly(options);
    case 'local':
      if (!options.local) {
        throw new ParleyError(
          'config.invalid',
          'PARLEY_TTS=local: this host has no local synthesizer (only npm start has one); use polly, auto or off',
        );
      }
      return options.local();
    case 'auto':
      if (hasAwsCredentials(env)) return polly(options);
      if (!options.local) return undefined;
      try {
        return await options.local();
      } catch (err) {
        // The optional eSpeak package is missing: auto means "what is there", so no speech.
        if (err instanceof TtsError && err.code === 'tts.connection') return undefined;
        throw err;
      }
    default:
      throw new ParleyError('config.invalid', `PARLEY_TTS: unknown choice ${String(choice)}`);
  }
}
