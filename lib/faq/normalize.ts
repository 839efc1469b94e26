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
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
}
