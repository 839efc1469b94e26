/*
 * The slice of nlp.js (v4, CommonJS, untyped) that lib/nlu uses. Each module is imported by its
 * default export (module.exports), which works the same under Node ESM, tsx, vitest and esbuild.
 */

declare module '@nlpjs/core' {
  export interface NlpContainer {
    use(item: unknown, name?: string, isSingleton?: boolean, onlyIfNotExists?: boolean): string;
    register(name: string, item: unknown, isSingleton?: boolean): void;
    get(name: string, settings?: unknown): unknown;
  }
  const core: {
    containerBootstrap(settings?: Record<string, unknown>): NlpContainer;
  };
  export default core;
}

declare module '@nlpjs/nlp' {
  import type { NlpContainer } from '@nlpjs/core';

  export interface NlpClassification {
    intent: string;
    score: number;
  }
  export interface NlpClassifyResult {
    locale: string;
    utterance: string;
    intent: string;
    score: number;
    classifications: NlpClassification[];
  }
  export interface NlpEntity {
    entity: string;
    type: string;
    start: number;
    end: number;
    accuracy: number;
    option?: string;
    sourceText: string;
    utteranceText: string;
  }
  export interface NlpInstance {
    settings: Record<string, unknown>;
    ner: {
      process(input: { locale: string; utterance: string; threshold?: number }): Promise<{ entities: NlpEntity[] }>;
    };
    addLanguage(locales: string | string[]): void;
    addDocument(locale: string, utterance: string, intent: string): void;
    addNerRuleOptionTexts(locale: string | string[], name: string, option: string, texts: string[]): void;
    addNerRegexRule(locale: string | string[], name: string, regex: RegExp): void;
    train(): Promise<unknown>;
    classify(locale: string, utterance: string): Promise<NlpClassifyResult>;
    export(minified?: boolean): string;
    import(data: string | object): void;
  }
  const nlp: {
    Nlp: new (settings: Record<string, unknown>, container?: NlpContainer) => NlpInstance;
  };
  export default nlp;
}

/* Tokenizer, stemmer, stop word and normalizer classes of the language packages, imported one file
 * at a time: the packages' index files also load sentiment lexicons (~400 KB of JSON) Parley never uses. */
declare module '@nlpjs/lang-en-min/src/tokenizer-en.js' {
  const Component: new (container?: unknown) => unknown;
  export default Component;
}
declare module '@nlpjs/lang-en-min/src/stemmer-en.js' {
  const Component: new (container?: unknown) => unknown;
  export default Component;
}
declare module '@nlpjs/lang-en-min/src/stopwords-en.js' {
  const Component: new (container?: unknown) => unknown;
  export default Component;
}
declare module '@nlpjs/lang-en-min/src/normalizer-en.js' {
  const Component: new (container?: unknown) => unknown;
  export default Component;
}
declare module '@nlpjs/lang-ru/src/tokenizer-ru.js' {
  const Component: new (container?: unknown) => unknown;
  export default Component;
}
declare module '@nlpjs/lang-ru/src/stemmer-ru.js' {
  const Component: new (container?: unknown) => unknown;
  export default Component;
}
declare module '@nlpjs/lang-ru/src/stopwords-ru.js' {
  const Component: new (container?: unknown) => unknown;
  export default Component;
}
declare module '@nlpjs/lang-ru/src/normalizer-ru.js' {
  const Component: new (container?: unknown) => unknown;
  export default Component;
}
declare module '@nlpjs/lang-tr/src/tokenizer-tr.js' {
  const Component: new (container?: unknown) => unknown;
  export default Component;
}
declare module '@nlpjs/lang-tr/src/stemmer-tr.js' {
  const Component: new (container?: unknown) => unknown;
  export default Component;
}
declare module '@nlpjs/lang-tr/src/stopwords-tr.js' {
  const Component: new (container?: unknown) => unknown;
  export default Component;
}
declare module '@nlpjs/lang-tr/src/normalizer-tr.js' {
  const Component: new (container?: unknown) => unknown;
  export default Component;
}
