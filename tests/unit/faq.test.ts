import { describe, expect, it } from 'vitest';
import { buildFaqIndex, DEFAULT_FAQ_MIN_SCORE } from '../../lib/faq/minisearch-index';
import { normalizeForSearch } from '../../lib/faq/normalize';
import { loadDialogueMap, localize, MESSAGE_KINDS, type DialogueMap, type FaqEntry } from '../../lib/flow/map';

/** A map that only has an FAQ worth the name. */
function mapWith(faq: FaqEntry[], language = 'en'): DialogueMap {
  return loadDialogueMap({
    name: 'faq',
    language,
    initial_state: 'start',
    messages: Object.fromEntries(MESSAGE_KINDS.map((k) => [k, k])),
    intents: { yes: { examples: ['yes'] } },
    states: { start: { system_response: { playlist: [{ type: 'tts', text_template: 'Hi.' }] } } },
    faq,
  });
}

/** A café's FAQ, written the way a map author would (several phrasings per entry). */
const CAFE: FaqEntry[] = [
  {
    id: 'hours',
    questions: ['What are your opening hours?', 'When do you open?', 'What time do you close?', 'Are you open on Sundays?'],
    answer: 'We are open from 7 am to 7 pm on weekdays and from 8 am to 5 pm at weekends.',
  },
  {
    id: 'wifi',
    questions: ['Do you have wifi?', 'What is the wifi password?', 'Is there internet access?'],
    answer: 'Yes, the wifi is free: the network is ParleyCafe and the password is printed on your receipt.',
  },
  {
    id: 'vegan',
    questions: ['Do you have vegan options?', 'Do you have oat milk?', 'Is there plant-based milk?', 'Can I get soy or almond milk?'],
    answer: 'Yes: oat, soy and almond milk at no extra charge, and vegan pastries every day.',
  },
  {
    id: 'prices',
    questions: ['How much is a coffee?', 'What are your prices?', 'How much does a cappuccino cost?', 'Is it expensive?'],
    answer: 'An espresso is 2.50, a cappuccino or a latte 3.80 and a filter coffee 3.00; a large size is 50 cents more.',
  },
  {
    id: 'location',
    questions: ['Where are you located?', 'What is your address?', 'How do I find the café?'],
    answer: 'We are at 12 Harbour Street, next to the old lighthouse.',
  },
  {
    id: 'parking',
    questions: ['Is there parking nearby?', 'Where can I park my car?'],
    answer: 'There is a public car park behind the building, free for the first hour.',
  },
  {
    id: 'payment',
    questions: ['Can I pay by card?', 'Do you accept credit cards?', 'Do you take contactless?', 'Can I use Apple Pay?', 'Is it cash only?'],
    answer: 'We accept Visa, Mastercard and Amex, contactless and phone payments; cash is welcome too.',
  },
  {
    id: 'allergies',
    questions: ['Do you have gluten-free food?', 'Does this contain nuts?', 'I have a food allergy', 'Is anything lactose-free?'],
    answer: 'Ask our staff for the allergens of any item; we have gluten-free cakes, and nuts are used in our kitchen.',
  },
  {
    id: 'decaf',
    questions: ['Do you have decaf?', 'Is there decaffeinated coffee?', 'Can I get a coffee without caffeine?'],
    answer: 'Yes, every coffee on the menu can be made decaf.',
  },
  {
    id: 'loyalty',
    questions: ['Do you have a loyalty card?', 'Is there a rewards programme?', 'Do regulars get a free coffee?'],
    answer: 'Yes: with our loyalty card every tenth coffee is free. Ask at the till.',
  },
];

/** Paraphrases, typos, casing and filler words: each must find its entry. */
const HITS: Array<[input: string, id: string]> = [
  ['what are your opening hours', 'hours'],
  ['OPENING HOURS', 'hours'],
  ['when are you open', 'hours'],
  ['opening times?', 'hours'],
  ['wat time do u close', 'hours'],
  ['what r ur openin hours', 'hours'],
  ['are you open on sunday', 'hours'],
  ['how late are you open', 'hours'],
  ["I'd like to know your opening hours", 'hours'],
  ['wifi?', 'wifi'],
  ['is there wi-fi', 'wifi'],
  ['whats the wify pasword', 'wifi'],
  ['do you have internet', 'wifi'],
  ['is there free wifi', 'wifi'],
  ['Hi, I was wondering whether you have wifi in here', 'wifi'],
  ['do you have oat milk', 'vegan'],
  ['any vegan options?', 'vegan'],
  ['almond milk', 'vegan'],
  ['soy milk please', 'vegan'],
  ['how much is a latte', 'prices'],
  ['how much does a latte cost', 'prices'],
  ['how much is an espresso', 'prices'],
  ['prices?', 'prices'],
  ['is it expensive here', 'prices'],
  ['where are you', 'location'],
  ['what is your adress', 'location'],
  ['where is the cafe located', 'location'],
  ['where can i park', 'parking'],
  ['is there a car park', 'parking'],
  ['is there somewhere to park', 'parking'],
  ['any parking near by', 'parking'],
  ['can i pay with a credit card', 'payment'],
  ['do you take visa', 'payment'],
  ['do you accept apple pay', 'payment'],
  ['contactless?', 'payment'],
  ['can I pay cash', 'payment'],
  ['I am allergic to nuts', 'allergies'],
  ['nut allergy', 'allergies'],
  ['gluten free options?', 'allergies'],
  ['do you have anything lactose free', 'allergies'],
  ['decaf?', 'decaf'],
  ['do you have decaffeinated', 'decaf'],
  ['do u have decaff', 'decaf'],
  ['coffee without caffeine', 'decaf'],
  ['loyalty card?', 'loyalty'],
  ['loyality card', 'loyalty'],
  ['do you have a rewards program', 'loyalty'],
];

/** Orders, small talk and nonsense: the FAQ must stay out of the way. */
const MISSES = [
  'I want a large coffee',
  'yes',
  'blue elephant',
  'no',
  'no thanks',
  'hello',
  'sure',
  'thank you very much',
  'a cappuccino please',
  "I'd like a cappuccino",
  'I need a coffee',
  'an iced coffee to go',
  'large latte',
  'two espressos',
  'one latte and a croissant',
  'make it a large one',
  'can I have a tea',
  'can I get a muffin',
  'is the coffee fresh',
  'the cake was delicious',
  'what is the weather like',
  'my name is John',
  'how are you',
  'tell me a joke',
  'is my order ready',
  'actually cancel that',
  'do you know a good restaurant',
  'I need a taxi',
];

describe('normalizeForSearch', () => {
  it('folds Turkish dotted and dotless i to i', () => {
    for (const s of ['IŞIK', 'ışık', 'Işık', 'isik', 'ISIK', 'İŞİK']) expect(normalizeForSearch(s)).toBe('isik');
    expect(normalizeForSearch('İstanbul')).toBe('istanbul');
    expect(normalizeForSearch('AÇILIŞ SAATLERİ')).toBe(normalizeForSearch('açılış saatleri'));
    expect(normalizeForSearch('AÇILIŞ SAATLERİ')).toBe('acilis saatleri');
  });

  it('strips diacritics', () => {
    expect(normalizeForSearch('café')).toBe('cafe');
    expect(normalizeForSearch('CAFÉ')).toBe('cafe');
    expect(normalizeForSearch('ёлка')).toBe('елка');
    expect(normalizeForSearch('şğçöü ŞĞÇÖÜ')).toBe('sgcou sgcou');
    expect(normalizeForSearch('naïve Ångström')).toBe('naive angstrom');
    expect(normalizeForSearch('Straße')).toBe('strasse');
    // Decomposed input (e + combining acute) folds the same as precomposed.
    expect(normalizeForSearch('cafe\u0301')).toBe('cafe');
  });

  it('collapses punctuation and spaces, joins apostrophes', () => {
    expect(normalizeForSearch("  What's   the--wifi?!  ")).toBe('whats the wifi');
    expect(normalizeForSearch('¿Qué? «Да», “so” — fine…')).toBe('que да so fine');
    expect(normalizeForSearch('a\u00a0b\u200bc\td\ne')).toBe('a b c d e');
    expect(normalizeForSearch('coffee ☕ 👍🏽 now')).toBe('coffee now');
    expect(normalizeForSearch('3.80€ 24/7')).toBe('3 80 24 7');
    expect(normalizeForSearch('?!...')).toBe('');
  });

  it('separates exactly the punctuation, symbols, spaces and controls of the scripts it spells out', () => {
    // The separator class is spelled as ranges (cheap to compile); check it against Unicode's own.
    const blocks: Array<[number, number]> = [
      [0x0000, 0x024f], // Latin
      [0x0370, 0x058f], // Greek, Cyrillic, Armenian
      [0x2000, 0x206f], // general punctuation
      [0x3000, 0x303f], // CJK punctuation
      [0xff00, 0xff5e], // fullwidth ASCII
    ];
    const wrong: string[] = [];
    for (const [from, to] of blocks) {
      for (let c = from; c <= to; c++) {
        const ch = String.fromCharCode(c);
        if (/['’ʼ`´]|\p{M}|\p{Cn}/u.test(ch)) continue; // apostrophes join, marks go, unassigned do not matter
        const separator = /[\p{P}\p{S}\p{Z}\p{Cc}\p{Cf}]/u.test(ch);
        const out = normalizeForSearch(`a${ch}b`);
        if (separator ? out !== 'a b' : out.includes(' ')) wrong.push(`U+${c.toString(16).padStart(4, '0')}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

describe('buildFaqIndex (café FAQ)', () => {
  const map = mapWith(CAFE);
  const faq = buildFaqIndex(map);

  it.each(HITS)('%j -> %s', (input, id) => {
    const hit = faq.search(input, 'en');
    expect(hit?.id).toBe(id);
    expect(hit!.score).toBeGreaterThanOrEqual(DEFAULT_FAQ_MIN_SCORE);
    expect(hit!.score).toBeLessThanOrEqual(1);
  });

  it.each(MISSES)('%j -> null', (input) => {
    expect(faq.search(input, 'en')).toBeNull();
  });

  it('keeps a margin around the threshold on this FAQ', () => {
    // Calibration: the weakest hit and the strongest miss, scored without a threshold.
    const all = buildFaqIndex(map, { minScore: 0 });
    const weakestHit = Math.min(...HITS.map(([input]) => all.search(input, 'en')!.score));
    const strongestMiss = Math.max(...MISSES.map((input) => all.search(input, 'en')?.score ?? 0));
    expect(strongestMiss).toBeLessThan(DEFAULT_FAQ_MIN_SCORE - 0.02);
    expect(weakestHit).toBeGreaterThan(DEFAULT_FAQ_MIN_SCORE + 0.02);
  });

  it('answers with the entry itself and a score; exact questions score 1', () => {
    expect(faq.search('What are your opening hours?', 'en')).toEqual({ id: 'hours', answer: CAFE[0]!.answer, score: 1 });
  });

  it('honours minScore', () => {
    expect(buildFaqIndex(map, { minScore: 0.99 }).search('opening times?', 'en')).toBeNull();
    expect(buildFaqIndex(map, { minScore: 0.99 }).search('opening hours', 'en')?.id).toBe('hours');
  });

  it('returns null for empty, stop-word-only and punctuation-only input, and for a map without FAQ', () => {
    for (const input of ['', '   ', '?!', 'the', 'what is it', 'can you tell me']) expect(faq.search(input, 'en')).toBeNull();
    expect(buildFaqIndex(mapWith([])).search('opening hours', 'en')).toBeNull();
  });

  it('builds fast (it runs at cold start)', () => {
    buildFaqIndex(map); // the first build pays for JIT warm-up; its cost is reported separately
    const times = Array.from({ length: 15 }, () => {
      const t = performance.now();
      buildFaqIndex(map);
      return performance.now() - t;
    }).sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)]!;
    expect(median).toBeLessThan(5);
  });
});

describe('buildFaqIndex (Turkish and Russian)', () => {
  const faq = buildFaqIndex(
    mapWith(
      [
        {
          id: 'hours',
          questions: ['What are your opening hours?', 'Açılış saatleriniz nedir?', 'Kaçta açıyorsunuz?', 'Какие у вас часы работы?', 'Во сколько вы открываетесь?'],
          answer: { en: 'We open at 7.', tr: "Saat 7'de açıyoruz.", ru: 'Мы открываемся в 7.' },
        },
        {
          id: 'wifi',
          questions: ['Do you have Wi-Fi?', 'Wifi şifresi nedir?', 'Есть ли у вас Wi-Fi?', 'Какой пароль от вайфая?'],
          answer: { en: 'The password is on your receipt.', tr: 'Şifre fişinizde yazıyor.', ru: 'Пароль напечатан на чеке.' },
        },
        {
          id: 'payment',
          questions: ['Can I pay by card?', 'Kredi kartı geçiyor mu?', 'Kartla ödeyebilir miyim?', 'Можно оплатить картой?'],
          answer: { en: 'All cards are welcome.', tr: 'Tüm kartlar geçerli.', ru: 'Принимаем все карты.' },
        },
        {
          id: 'prices',
          questions: ['How much is a coffee?', 'Kahve ne kadar?', 'Сколько стоит кофе?', 'Сколько стоит зелёный чай?'],
          answer: { en: 'Coffee is 3.', tr: 'Kahve 3 lira.', ru: 'Кофе стоит 3.' },
        },
      ],
      'tr',
    ),
  );

  it.each([
    ['acilis saatleri', 'hours'],
    ['AÇILIŞ SAATLERİ', 'hours'],
    ['Açılış saatleriniz nedir?', 'hours'],
    ['açılış saatleriniz ne acaba', 'hours'],
    ['ACILIS SAATLERINIZ', 'hours'],
    ['kaçta açılıyorsunuz', 'hours'],
    ['wifi şifresi', 'wifi'],
    ['WİFİ ŞİFRESİ NEDİR', 'wifi'],
    ['kredi karti geciyor mu', 'payment'],
    ['kartla ödeyebilir miyim', 'payment'],
    ['kahve ne kadar', 'prices'],
  ])('tr: %j -> %s', (input, id) => {
    expect(faq.search(input, 'tr')?.id).toBe(id);
  });

  it.each([
    ['часы работы', 'hours'],
    ['ЧАСЫ РАБОТЫ?', 'hours'],
    ['во сколько вы открываетесь', 'hours'],
    ['во скока открываетесь', 'hours'],
    ['есть wi-fi?', 'wifi'],
    ['у вас есть wifi', 'wifi'],
    ['пароль от вайфая', 'wifi'],
    ['можно оплатить картой', 'payment'],
    ['оплата картой', 'payment'],
    ['оплатить картами можно?', 'payment'],
    ['сколько стоит зеленый чай', 'prices'],
    ['сколко стоит кофе', 'prices'],
  ])('ru: %j -> %s', (input, id) => {
    expect(faq.search(input, 'ru')?.id).toBe(id);
  });

  it.each(['evet', 'hayır', 'büyük bir kahve istiyorum', 'да', 'нет', 'хочу большой кофе', 'синий слон'])('%j -> null', (input) => {
    expect(faq.search(input, 'tr')).toBeNull();
  });

  it('returns the Localized answer for the caller to localize', () => {
    const hit = faq.search('часы работы', 'ru')!;
    expect(localize(hit.answer, 'ru', 'tr')).toBe('Мы открываемся в 7.');
    expect(localize(faq.search('acilis saatleri', 'tr')!.answer, 'tr', 'tr')).toBe("Saat 7'de açıyoruz.");
  });
});
