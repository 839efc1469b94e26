import { describe, expect, it } from 'vitest';
import { recognizerLocale } from '../../lib/speech/language';

describe('recognizerLocale', () => {
  it('gives a bare language its usual Transcribe locale', () => {
    expect(recognizerLocale('en')).toBe('en-US');
    expect(recognizerLocale('pt')).toBe('pt-BR');
    expect(recognizerLocale('de')).toBe('de-DE');
    expect(recognizerLocale('es')).toBe('es-US');
    expect(recognizerLocale('zh')).toBe('zh-CN');
  });

  it('reads a bare language in any case', () => {
    expect(recognizerLocale('EN')).toBe('en-US');
    expect(recognizerLocale('Fr')).toBe('fr-FR');
  });

  it('keeps a locale the map names, in canonical case, whatever its separator', () => {
    expect(recognizerLocale('en-gb')).toBe('en-GB');
    expect(recognizerLocale('en-GB')).toBe('en-GB');
    expect(recognizerLocale('EN-gb')).toBe('en-GB');
    expect(recognizerLocale('pt_BR')).toBe('pt-BR');
    expect(recognizerLocale('pt_pt')).toBe('pt-PT');
    // A named region wins over the default one.
    expect(recognizerLocale('es-es')).toBe('es-ES');
  });

  it('leaves a language without a known locale as it is (lowercased)', () => {
    expect(recognizerLocale('xx')).toBe('xx');
    expect(recognizerLocale('XX')).toBe('xx');
    expect(recognizerLocale('xx-yy')).toBe('xx-YY');
  });
});
