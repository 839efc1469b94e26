import core, { type NlpContainer } from '@nlpjs/core';
import nlpPackage, { type NlpInstance } from '@nlpjs/nlp';
import NormalizerEn from '@nlpjs/lang-en-min/src/normalizer-en.js';
import StemmerEn from '@nlpjs/lang-en-min/src/stemmer-en.js';
import StopwordsEn from '@nlpjs/lang-en-min/src/stopwords-en.js';
import TokenizerEn from '@nlpjs/lang-en-min/src/tokenizer-en.js';
import NormalizerRu from '@nlpjs/lang-ru/src/normalizer-ru.js';
import StemmerRu from '@nlpjs/lang-ru/src/stemmer-ru.js';
import StopwordsRu from '@nlpjs/lang-ru/src/stopwords-ru.js';
import TokenizerRu from '@nlpjs/lang-ru/src/tokenizer-ru.js';
import NormalizerTr from '@nlpjs/lang-tr/src/normalizer-tr.js';
import StemmerTr from '@nlpjs/lang-tr/src/stemmer-tr.js';
import StopwordsTr from '@nlpjs/lang-tr/src/stopwords-tr.js';
import TokenizerTr from '@nlpjs/lang-tr/src/tokenizer-tr.js';

/*
 * One nlp.js instance, set up identically at training (build time) and at load (cold start): the
 * same language components, and settings that never touch the file system or the console.
 */

/**
 * Languages with their own tokenizer, stemmer, stop words and normalizer. Other languages still
 * work, with nlp.js's generic tokenizer and no stemming.
 */
export const STEMMED_LANGUAGES = ['en', 'ru', 'tr'] as const;

const COMPONENTS: Record<string, readonly (new (container?: unknown) => unknown)[]> = {
  en: [TokenizerEn, StemmerEn, StopwordsEn, NormalizerEn],
  ru: [TokenizerRu, StemmerRu, StopwordsRu, NormalizerRu],
  tr: [TokenizerTr, StemmerTr, StopwordsTr, NormalizerTr],
};

/**
 * nlp.js defaults that write files (autoSave, autoLoad of model.nlp) or print (`nlu.log` prints
 * every training epoch) are off; sentiment is never computed. `useNoneFeature` lets unknown words
 * pull the score towards None, so gibberish does not land on an intent.
 */
export const NLP_SETTINGS = {
  autoSave: false,
  autoLoad: false,
  log: false,
  calculateSentiment: false,
  executeActionsBeforeAnswers: false,
  nlu: { log: false, useNoneFeature: true },
} as const;

const SILENT_LOGGER = {
  name: 'logger',
  debug() {},
  info() {},
  warn() {},
  error() {},
  log() {},
  trace() {},
  fatal() {},
};

export interface NlpParts {
  nlp: NlpInstance;
  container: NlpContainer;
}

/** A fresh container (never nlp.js's process-wide default one) and an Nlp instance for `languages`. */
export function createNlp(languages: readonly string[]): NlpParts {
  const container = core.containerBootstrap();
  container.register('logger', SILENT_LOGGER);
  for (const language of languages) {
    for (const Component of COMPONENTS[language] ?? []) container.use(Component);
  }
  const nlp = new nlpPackage.Nlp({ ...NLP_SETTINGS, nlu: { ...NLP_SETTINGS.nlu }, languages: [...languages] }, container);
  return { nlp, container };
}
