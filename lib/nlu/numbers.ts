/*
 * The built-in `number` entity: digits ("2", "12.5", "1,5" in ru/tr) and number words in en, ru and
 * tr from 0 to 999 ("twenty five", "two hundred and five", "двадцать пять", "сто два", "yirmi beş",
 * "iki yüz"). nlp.js has no number words for these languages, and @nlpjs/builtin-default 4.23.4
 * console.logs every number it finds, so both live here: a small table and a parser.
 */

/** A number found in a text; `start`/`end` are UTF-16 offsets into the text (end exclusive). */
export interface NumberMatch {
  value: number;
  start: number;
  end: number;
  text: string;
}

/**
 * How a word combines: `unit` 1-9 (follows a ten or a hundred), `teen` 10-19 (follows nothing but a
 * hundred), `ten` 20-90 (and the Turkish "on" = 10, which takes units: "on bir" = 11), `hundreds` a
 * whole hundred in one word (ru "двести"), `hundred` a multiplier (en "hundred", tr "yüz"),
 * `zero` stands alone.
 */
type Kind = 'zero' | 'unit' | 'teen' | 'ten' | 'hundreds' | 'hundred';
interface Word {
  value: number;
  kind: Kind;
}

const EN: Record<string, number> = {
  zero: 0, nought: 0, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9,
  ten: 10, eleven: 11, twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17,
  eighteen: 18, nineteen: 19, twenty: 20, thirty: 30, forty: 40, fourty: 40, fifty: 50, sixty: 60,
  seventy: 70, eighty: 80, ninety: 90, hundred: 100,
};

/** Russian, with the common case forms ("двух", "пяти", "одну"); ё is folded to е before lookup. */
const RU: Record<string, number> = {
  ноль: 0, нуль: 0, нуля: 0,
  один: 1, одна: 1, одно: 1, одну: 1, одного: 1, одной: 1, одном: 1,
  два: 2, две: 2, двух: 2, двум: 2, двумя: 2,
  три: 3, трех: 3, трем: 3, тремя: 3,
  четыре: 4, четырех: 4, четырем: 4, четырьмя: 4,
  пять: 5, пяти: 5, пятью: 5, шесть: 6, шести: 6, семь: 7, семи: 7, восемь: 8, восьми: 8, девять: 9, девяти: 9,
  десять: 10, десяти: 10, одиннадцать: 11, одиннадцати: 11, двенадцать: 12, двенадцати: 12,
  тринадцать: 13, тринадцати: 13, четырнадцать: 14, четырнадцати: 14, пятнадцать: 15, пятнадцати: 15,
  шестнадцать: 16, шестнадцати: 16, семнадцать: 17, семнадцати: 17, восемнадцать: 18, восемнадцати: 18,
  девятнадцать: 19, девятнадцати: 19,
  двадцать: 20, двадцати: 20, тридцать: 30, тридцати: 30, сорок: 40, сорока: 40, пятьдесят: 50, пятидесяти: 50,
  шестьдесят: 60, шестидесяти: 60, семьдесят: 70, семидесяти: 70, восемьдесят: 80, восьмидесяти: 80,
  девяносто: 90, девяноста: 90,
  сто: 100, ста: 100, двести: 200, двухсот: 200, триста: 300, трехсот: 300, четыреста: 400, четырехсот: 400,
  пятьсот: 500, пятисот: 500, шестьсот: 600, шестисот: 600, семьсот: 700, семисот: 700, восемьсот: 800,
  восьмисот: 800, девятьсот: 900, девятисот: 900,
};

/** Turkish; words are also looked up without diacritics ("bes", "dort", "uc"), as people type them. */
const TR: Record<string, number> = {
  sıfır: 0, bir: 1, iki: 2, üç: 3, dört: 4, beş: 5, altı: 6, yedi: 7, sekiz: 8, dokuz: 9,
  on: 10, yirmi: 20, otuz: 30, kırk: 40, elli: 50, altmış: 60, yetmiş: 70, seksen: 80, doksan: 90, yüz: 100,
};

/** Turkish case and possessive endings a number word may carry ("ikiyi", "beşe", "üçü", "ikisini", "birer"). */
const TR_SUFFIXES = [
  'yi', 'yı', 'yu', 'yü', 'ye', 'ya', 'i', 'ı', 'u', 'ü', 'e', 'a', 'de', 'da', 'te', 'ta',
  'den', 'dan', 'ten', 'tan', 'si', 'sı', 'su', 'sü', 'sini', 'sını', 'sunu', 'sünü', 'sine', 'sına', 'er', 'ar', 'şer', 'şar',
];
/** Words whose suffixed forms are mostly other words ("onu" = him, "yüzde" = per cent, "yüze" = to the face). */
const TR_NO_SUFFIX = new Set(['on', 'yüz', 'yuz']);

function kindOf(language: string, value: number, word: string): Kind {
  if (value === 0) return 'zero';
  if (value < 10) return 'unit';
  if (language === 'tr' && value === 10) return 'ten';
  if (value < 20) return 'teen';
  if (value < 100) return 'ten';
  if (value === 100 && (word === 'hundred' || word === 'yüz' || word === 'yuz')) return 'hundred';
  return 'hundreds';
}

const foldTr = (s: string): string =>
  s.replace(/ı/g, 'i').replace(/ş/g, 's').replace(/ğ/g, 'g').replace(/ç/g, 'c').replace(/ö/g, 'o').replace(/ü/g, 'u');

function buildTable(language: string, words: Record<string, number>): Map<string, Word> {
  const table = new Map<string, Word>();
  for (const [word, value] of Object.entries(words)) {
    table.set(word, { value, kind: kindOf(language, value, word) });
    if (language === 'tr') {
      const folded = foldTr(word);
      if (!table.has(folded)) table.set(folded, { value, kind: kindOf(language, value, folded) });
    }
  }
  return table;
}

const TABLES: Record<string, Map<string, Word>> = {
  en: buildTable('en', EN),
  ru: buildTable('ru', RU),
  tr: buildTable('tr', TR),
};

/** The languages with number words. Digits are recognized in every language. */
export const NUMBER_WORD_LANGUAGES = Object.keys(TABLES);

function lookup(language: string, table: Map<string, Word>, token: string): Word | undefined {
  const direct = table.get(token);
  if (direct || language !== 'tr') return direct;
  const forms = [...new Set([token, foldTr(token)])];
  for (const form of forms) {
    const word = table.get(form);
    if (word) return word;
  }
  for (const suffix of TR_SUFFIXES) {
    for (const form of forms) {
      if (!form.endsWith(suffix) && !form.endsWith(foldTr(suffix))) continue;
      const stem = form.slice(0, -suffix.length);
      if (TR_NO_SUFFIX.has(stem) || TR_NO_SUFFIX.has(foldTr(stem))) continue;
      // Consonant softening before a vowel: "dördü" is "dört" + ü.
      const word = table.get(stem) ?? (stem.endsWith('d') ? table.get(`${stem.slice(0, -1)}t`) : undefined);
      if (word) return word;
    }
  }
  return undefined;
}

interface Token {
  text: string;
  norm: string;
  start: number;
  end: number;
}

function tokenize(text: string, language: string): Token[] {
  const tokens: Token[] = [];
  for (const m of text.matchAll(/[\p{L}\p{M}]+/gu)) {
    let norm = m[0].toLocaleLowerCase(language === 'tr' ? 'tr' : 'en');
    if (language === 'ru') norm = norm.replace(/ё/g, 'е');
    // toLocaleLowerCase('tr') keeps "i̇" decomposed from "İ" in some engines: drop the combining dot.
    norm = norm.replace(/\u0307/g, '');
    tokens.push({ text: m[0], norm, start: m.index, end: m.index + m[0].length });
  }
  return tokens;
}

/** Number words in a text, each maximal sequence read as one number ("twenty five" = 25). */
export function findNumberWords(text: string, language: string): NumberMatch[] {
  const table = TABLES[language];
  if (!table) return [];
  const tokens = tokenize(text, language);
  const found: NumberMatch[] = [];
  let current: { value: number; last: Kind | 'start'; start: number; end: number } | undefined;
  let pendingAnd = false;

  const close = () => {
    if (current) found.push({ value: current.value, start: current.start, end: current.end, text: text.slice(current.start, current.end) });
    current = undefined;
    pendingAnd = false;
  };

  for (let i = 0; i < tokens.length; i += 1) {
    const token = tokens[i]!;
    // Words must be adjacent (spaces, hyphens): "two, three" is two numbers.
    if (current && !/^[\s-]*$/.test(text.slice(current.end, token.start)) && !pendingAnd) close();
    let word = lookup(language, table, token.norm);
    // "a hundred": the article counts as one, only right before "hundred".
    if (!word && language === 'en' && token.norm === 'a' && !current && tokens[i + 1]?.norm === 'hundred') {
      word = { value: 1, kind: 'unit' };
    }
    if (!word) {
      // "one hundred and five": "and" joins a hundred to what follows.
      if (language === 'en' && token.norm === 'and' && current?.last === 'hundred' && tokens[i + 1] && lookup(language, table, tokens[i + 1]!.norm)) {
        pendingAnd = true;
        continue;
      }
      close();
      continue;
    }
    pendingAnd = false;
    if (current && joins(current.value, current.last, word)) {
      current.value = word.kind === 'hundred' ? (current.value || 1) * 100 : current.value + word.value;
      current.last = word.kind;
      current.end = token.end;
      continue;
    }
    close();
    current = { value: word.kind === 'hundred' ? 100 : word.value, last: word.kind, start: token.start, end: token.end };
    if (word.kind === 'zero') close();
  }
  close();
  return found;
}

/** Whether `word` continues a number whose value so far is `value` and whose last word was `last`. */
function joins(value: number, last: Kind | 'start', word: Word): boolean {
  switch (word.kind) {
    case 'zero':
    case 'hundreds':
      return false;
    case 'hundred':
      return last === 'unit' && value < 10;
    case 'ten':
    case 'teen':
      return (last === 'hundred' || last === 'hundreds') && value % 100 === 0;
    case 'unit':
      return (last === 'ten' || last === 'hundred' || last === 'hundreds') && value % 10 === 0;
  }
}

// English writes thousands with a comma ("1,000"), Russian and Turkish write decimals with one ("1,5").
const digitPattern = (body: string) => new RegExp(`(?<![\\p{L}\\p{N}.,-])-?${body}(?![.,]?\\d)`, 'gu');
const DIGITS_EN = digitPattern('(?:\\d{1,3}(?:,\\d{3})+|\\d+)(?:\\.\\d+)?');
const DIGITS_DECIMAL_COMMA = digitPattern('\\d+(?:[.,]\\d+)?');

/** Digits: "2", "12.5", "-3", "1,000" in English, "1,5" in other languages. */
export function findDigitNumbers(text: string, language: string): NumberMatch[] {
  const english = language === 'en';
  const found: NumberMatch[] = [];
  for (const m of text.matchAll(english ? DIGITS_EN : DIGITS_DECIMAL_COMMA)) {
    const value = Number(english ? m[0].replace(/,/g, '') : m[0].replace(',', '.'));
    if (Number.isFinite(value)) found.push({ value, start: m.index, end: m.index + m[0].length, text: m[0] });
  }
  return found;
}

/** Every number in a text, digits and words, in order of appearance. */
export function findNumbers(text: string, language: string): NumberMatch[] {
  return [...findDigitNumbers(text, language), ...findNumberWords(text, language)].sort((a, b) => a.start - b.start);
}
