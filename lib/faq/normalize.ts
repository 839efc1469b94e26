/*
 * Text folding for search: what a user types with or without diacritics, in any case, with any
 * punctuation, lands on the same terms.
 */

/** Letters that neither lowercasing nor NFD decomposition bring to a base letter. */
const FOLD: Readonly<Record<string, string>> = {
  ı: 'i', // Turkish dotless i (its capital I lowercases to i already; İ becomes i + a combining dot)
  ß: 'ss',
  æ: 'ae',
  œ: 'oe',
  ø: 'o',
  ł: 'l',
  đ: 'd',
  ð: 'd',
  þ: 'th',
};
const FOLDABLE = new RegExp(`[${Object.keys(FOLD).join('')}]`, 'g');

/*
 * Separators: controls, punctuation, symbols and spaces. Spelled as code point ranges rather than
 * [^\p{L}\p{N}] because compiling a Unicode property class costs about a millisecond on first use,
 * and this runs at cold start. Exact (tests/unit/faq.test.ts checks it against \p{P}, \p{S}, \p{Z},
 * \p{Cc}, \p{L} and \p{N}) over Latin, Greek, Cyrillic, Armenian, general punctuation, CJK
 * punctuation and fullwidth ASCII; elsewhere the main punctuation of Hebrew, Arabic, Devanagari and
 * Thai, the arrow/math/box/shape/dingbat blocks (whole) and emoji (surrogate pairs).
 */
const SEPARATORS = new RegExp(
  '(?:[' +
    '\\u0000-\\u002f\\u003a-\\u0040\\u005b-\\u0060\\u007b-\\u00a9\\u00ab-\\u00b1\\u00b4\\u00b6-\\u00b8\\u00bb\\u00bf\\u00d7\\u00f7' +
    '\\u02c2-\\u02c5\\u02d2-\\u02df\\u02e5-\\u02eb\\u02ed\\u02ef-\\u02ff\\u0375\\u037e\\u0384\\u0385\\u0387\\u03f6\\u0482' +
    '\\u055a-\\u055f\\u0589\\u058a\\u058d-\\u058f\\u05be\\u05c0\\u05c3\\u05c6\\u05f3\\u05f4' +
    '\\u0600-\\u060f\\u061b\\u061d-\\u061f\\u066a-\\u066d\\u06d4\\u06de\\u06e9\\u06fd\\u06fe\\u0964\\u0965\\u0970\\u0e3f\\u0e4f\\u0e5a\\u0e5b' +
    '\\u2000-\\u206f\\u207a-\\u207e\\u208a-\\u208e\\u20a0-\\u20cf\\u2190-\\u2bff\\u2e00-\\u2e7f' +
    '\\u3000-\\u3004\\u3008-\\u3020\\u3030\\u3036\\u3037\\u303d-\\u303f\\ufe10-\\ufe19\\ufe30-\\ufe6f\\ufeff' +
    '\\uff01-\\uff0f\\uff1a-\\uff20\\uff3b-\\uff40\\uff5b-\\uff65\\uffe0-\\uffee' +
    ']|[\\ud83c-\\ud83e][\\udc00-\\udfff])+',
  'g',
);

/**
 * Lowercases (Turkish İ, I, ı and i all become i), strips combining marks (café = cafe, ё = е,
 * ş = s, ğ = g), drops apostrophes inside words (what's = whats) and turns any other run of
 * punctuation or space into one space. The result is trimmed: terms separated by single spaces.
 */
export function normalizeForSearch(text: string): string {
  return text
    .toLowerCase()
    .replace(FOLDABLE, (c) => FOLD[c] ?? c)
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .replace(/['’ʼ`´]/g, '')
    .replace(SEPARATORS, ' ')
    .trim();
}
