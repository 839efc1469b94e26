/** The primary language subtag, lower case: `en-US` → `en`, `pt_BR` → `pt` (what OpenAI's recognizer and eSpeak take). */
export const primaryLanguage = (language: string): string => (language.trim().split(/[-_]/)[0] ?? '').toLowerCase();

/**
 * The recognizer's language for a session's language. Maps name languages as ISO 639-1 (`en`);
 * Amazon Transcribe streaming wants a locale (`en-US`), and so does a client showing it. A map
 * that names a locale itself (`en-GB`) keeps it.
 */

/** The locale Transcribe streaming most commonly serves for each language (its "supported languages" table). */
const DEFAULT_LOCALE: Readonly<Record<string, string>> = {
  ar: 'ar-SA',
  ca: 'ca-ES',
  cs: 'cs-CZ',
  da: 'da-DK',
  de: 'de-DE',
  el: 'el-GR',
  en: 'en-US',
  es: 'es-US',
  fa: 'fa-IR',
  fi: 'fi-FI',
  fr: 'fr-FR',
  he: 'he-IL',
  hi: 'hi-IN',
  hr: 'hr-HR',
  id: 'id-ID',
  it: 'it-IT',
  ja: 'ja-JP',
  ko: 'ko-KR',
  ms: 'ms-MY',
  nl: 'nl-NL',
  no: 'no-NO',
  pl: 'pl-PL',
  pt: 'pt-BR',
  ro: 'ro-RO',
  ru: 'ru-RU',
  sk: 'sk-SK',
  sv: 'sv-SE',
  th: 'th-TH',
  tl: 'tl-PH',
  uk: 'uk-UA',
  vi: 'vi-VN',
  zh: 'zh-CN',
};

/** `en` → `en-US`; `en-gb` → `en-GB`; a language without a known locale stays as it is. */
export function recognizerLocale(language: string): string {
  const region = language.split(/[-_]/)[1];
  const base = primaryLanguage(language);
  if (region) return `${base}-${region.toUpperCase()}`;
  return DEFAULT_LOCALE[base] ?? base;
}
