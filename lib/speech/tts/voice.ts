import type { DialogueMap } from '../../flow/map';
import type { Voice } from './port';
import { primaryLanguage } from '../language';

export type PollyEngine = 'standard' | 'neural' | 'generative' | 'long-form';

/** What we know about a Polly voice: the engines it has and its locales (the first is its own). */
export interface KnownPollyVoice {
  engines: readonly PollyEngine[];
  locales: readonly string[];
}

/**
 * A few Polly voices and the engines they support (Amazon Polly developer guide, "Available
 * voices"). Russian has no neural voice at all (Tatyana and Maxim are standard only); Turkish has
 * Filiz (standard only) and Burcu (neural only). Voices not listed keep the map's engine.
 */
export const KNOWN_POLLY_VOICES: Readonly<Record<string, KnownPollyVoice>> = {
  // English (US)
  Joanna: { engines: ['standard', 'neural', 'generative'], locales: ['en-US'] },
  Matthew: { engines: ['standard', 'neural', 'generative'], locales: ['en-US'] },
  Ruth: { engines: ['neural', 'generative', 'long-form'], locales: ['en-US'] },
  Danielle: { engines: ['neural', 'generative', 'long-form'], locales: ['en-US'] },
  Stephen: { engines: ['neural', 'generative'], locales: ['en-US'] },
  Ivy: { engines: ['standard', 'neural'], locales: ['en-US'] },
  Kendra: { engines: ['standard', 'neural'], locales: ['en-US'] },
  Kimberly: { engines: ['standard', 'neural'], locales: ['en-US'] },
  Salli: { engines: ['standard', 'neural'], locales: ['en-US'] },
  Joey: { engines: ['standard', 'neural'], locales: ['en-US'] },
  Kevin: { engines: ['standard', 'neural'], locales: ['en-US'] },
  // English (GB)
  Amy: { engines: ['standard', 'neural', 'generative'], locales: ['en-GB'] },
  Brian: { engines: ['standard', 'neural', 'generative'], locales: ['en-GB'] },
  Emma: { engines: ['standard', 'neural'], locales: ['en-GB'] },
  Arthur: { engines: ['neural'], locales: ['en-GB'] },
  // Bilingual voices: the locale follows the request's language.
  Aditi: { engines: ['standard'], locales: ['en-IN', 'hi-IN'] },
  Kajal: { engines: ['neural', 'generative'], locales: ['en-IN', 'hi-IN'] },
  // German, French, Spanish
  Vicki: { engines: ['standard', 'neural'], locales: ['de-DE'] },
  Lea: { engines: ['standard', 'neural'], locales: ['fr-FR'] },
  Lucia: { engines: ['standard', 'neural'], locales: ['es-ES'] },
  // Russian: standard only.
  Tatyana: { engines: ['standard'], locales: ['ru-RU'] },
  Maxim: { engines: ['standard'], locales: ['ru-RU'] },
  // Turkish
  Filiz: { engines: ['standard'], locales: ['tr-TR'] },
  Burcu: { engines: ['neural'], locales: ['tr-TR'] },
};

/** The Polly voice of a language when the map names none. */
const DEFAULT_POLLY_VOICES: Readonly<Record<string, string>> = {
  en: 'Joanna',
  ru: 'Tatyana',
  tr: 'Burcu',
  de: 'Vicki',
  fr: 'Lea',
  es: 'Lucia',
};

const ESPEAK_VOICES: Readonly<Record<string, string>> = { en: 'en-us', ru: 'ru', tr: 'tr' };


/** The engine to ask Polly for: the preferred one when the voice has it, else neural, else what it has. */
export function pollyEngineFor(voiceId: string, preferred: PollyEngine): PollyEngine {
  const known = KNOWN_POLLY_VOICES[voiceId];
  if (known === undefined || known.engines.includes(preferred)) return preferred;
  if (known.engines.includes('neural')) return 'neural';
  if (known.engines.includes('standard')) return 'standard';
  return known.engines[0] ?? preferred;
}

/** Polly's LanguageCode for a known voice speaking `language` (matters for bilingual voices); undefined when unknown. */
export function pollyLanguageCode(voiceId: string, language: string): string | undefined {
  const known = KNOWN_POLLY_VOICES[voiceId];
  if (known === undefined) return undefined;
  const primary = primaryLanguage(language);
  return known.locales.find((l) => primaryLanguage(l) === primary);
}

/**
 * The voice that speaks `language` for a map on a provider.
 *
 * Polly: the map's voice for that language (`voice.voices[language]`), else its main voice when
 * `language` is the map's own, else a default of the language (en Joanna, ru Tatyana, tr Burcu, de
 * Vicki, fr Lea, es Lucia; Joanna for other languages). The engine is the map's (neural when the map has no voice
 * block), unless the voice is known not to have it: Tatyana is standard, Burcu neural.
 *
 * eSpeak: en-us for English, the language code itself otherwise (`ru`, `tr`, `de`).
 */
export function voiceFor(map: DialogueMap, language: string, provider: 'polly' | 'espeak'): Voice {
  const primary = primaryLanguage(language);
  if (provider === 'espeak') return { provider: 'espeak', id: ESPEAK_VOICES[primary] ?? primary, language: primary };
  const v = map.voice;
  const id =
    v?.voices[primary] ??
    (v !== undefined && primary === primaryLanguage(map.language) ? v.id : undefined) ??
    DEFAULT_POLLY_VOICES[primary] ??
    DEFAULT_POLLY_VOICES.en!;
  const engine = pollyEngineFor(id, v?.engine ?? 'neural');
  return { provider: 'polly', id, engine, language: primary };
}
