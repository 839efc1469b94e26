import { describe, expect, it } from 'vitest';
import { SentenceSegmenter } from '../../lib/llm/segmenter';
import { mulberry32 } from '../support/pcm';

/** All at once: one push, then flush. */
function whole(language: string, text: string): string[] {
  const s = new SentenceSegmenter(language);
  return [...s.push(text), ...s.flush()];
}

/** One code point at a time. */
function byChar(language: string, text: string): string[] {
  const s = new SentenceSegmenter(language);
  const out: string[] = [];
  for (const c of text) out.push(...s.push(c));
  return [...out, ...s.flush()];
}

/** Random chunks of 1..maxChunk UTF-16 units (may split a surrogate pair, as a careless client might). */
function randomChunks(language: string, text: string, random: () => number, maxChunk: number): string[] {
  const s = new SentenceSegmenter(language);
  const out: string[] = [];
  for (let i = 0; i < text.length; ) {
    const n = 1 + Math.floor(random() * maxChunk);
    out.push(...s.push(text.slice(i, i + n)));
    i += n;
  }
  return [...out, ...s.flush()];
}

/** Same sentences all at once and one character at a time. */
function expectSegments(language: string, text: string, expected: string[]): void {
  expect(whole(language, text)).toEqual(expected);
  expect(byChar(language, text)).toEqual(expected);
  expect(expected.join('')).toBe(text);
}

describe('SentenceSegmenter: English', () => {
  it('splits plain sentences, keeping the trailing space with the sentence', () => {
    expectSegments('en', 'Hello there. How are you? I am fine!', ['Hello there. ', 'How are you? ', 'I am fine!']);
  });

  it('keeps titles and other abbreviations with the next word', () => {
    expectSegments('en', 'Dr. Smith will see you now. Mr. and Mrs. Brown are next.', [
      'Dr. Smith will see you now. ',
      'Mr. and Mrs. Brown are next.',
    ]);
    expectSegments('en', 'Prof. Lee vs. Ms. Kay is on Friday. We open at 7 a.m. and close at 6 p.m. every day.', [
      'Prof. Lee vs. Ms. Kay is on Friday. ',
      'We open at 7 a.m. and close at 6 p.m. every day.',
    ]);
    expectSegments('en', 'Try a flat white, e.g. With oat milk. Or tea, i.e. Something lighter.', [
      'Try a flat white, e.g. With oat milk. ',
      'Or tea, i.e. Something lighter.',
    ]);
  });

  it('ends a sentence at "etc." and "p.m." before a capital, not before a number', () => {
    expectSegments('en', 'We have tea, coffee, etc. The shop opens at 9. It closes at 6 p.m. Come by.', [
      'We have tea, coffee, etc. ',
      'The shop opens at 9. ',
      'It closes at 6 p.m. ',
      'Come by.',
    ]);
    expectSegments('en', 'Cakes, pies, etc. 12 kinds in all.', ['Cakes, pies, etc. 12 kinds in all.']);
  });

  it('treats "No." as an abbreviation only before a number', () => {
    expectSegments('en', 'No. I am sorry. Table No. 5 Is free.', ['No. ', 'I am sorry. ', 'Table No. 5 Is free.']);
  });

  it('does not split decimals, times, prices, URLs or e-mail addresses', () => {
    expectSegments('en', 'It costs 3.50 dollars, about 3.5 euros. Meet at 7.30 tomorrow. Fine.', [
      'It costs 3.50 dollars, about 3.5 euros. ',
      'Meet at 7.30 tomorrow. ',
      'Fine.',
    ]);
    expectSegments('en', 'Order at https://cafe.example.com/menu?item=latte.large&x=1. Or mail orders@cafe.example.co.uk. Thanks!', [
      'Order at https://cafe.example.com/menu?item=latte.large&x=1. ',
      'Or mail orders@cafe.example.co.uk. ',
      'Thanks!',
    ]);
  });

  it('keeps "?!", "!!!" and closing quotes and brackets with their sentence', () => {
    expectSegments('en', 'Really?! Yes!!! He said "Stop." Then he left. (It was late.) Bye.', [
      'Really?! ',
      'Yes!!! ',
      'He said "Stop." ',
      'Then he left. ',
      '(It was late.) ',
      'Bye.',
    ]);
  });

  it('handles the ellipsis like three dots: a break before a capital, none before a lower-case word', () => {
    expectSegments('en', 'Well… let me check. Hmm… Yes, we have it. Wait... Really?', [
      'Well… let me check. ',
      'Hmm… ',
      'Yes, we have it. ',
      'Wait... ',
      'Really?',
    ]);
  });

  it('ends sentences at newlines, keeps blank lines with the previous sentence and list markers with their item', () => {
    expectSegments('en', 'Our menu:\n- Latte\n- Mocha\n\n1. Pick a drink\n2. Pay\nThat is all', [
      'Our menu:\n',
      '- Latte\n',
      '- Mocha\n\n',
      '1. Pick a drink\n',
      '2. Pay\n',
      'That is all',
    ]);
    expectSegments('en', 'First line\n   indented second line. Done', ['First line\n   ', 'indented second line. ', 'Done']);
    expectSegments('en', 'Windows\r\nline endings. Yes', ['Windows\r\n', 'line endings. ', 'Yes']);
  });

  it('keeps a list marker at the start of a sentence with its item, but "Item 3." ends a sentence in English', () => {
    expectSegments('en', 'Step 3. Next comes the milk.', ['Step 3. ', 'Next comes the milk.']);
    expectSegments('en', '3. Next comes the milk.', ['3. Next comes the milk.']);
  });

  it('attaches leading whitespace to the first sentence and keeps trailing whitespace', () => {
    expectSegments('en', '\n\n  Hello. World.  \n', ['\n\n  Hello. ', 'World.  \n']);
    expectSegments('en', '   ', ['   ']);
    expect(whole('en', '')).toEqual([]);
  });

  it('does not split after a terminator that no space follows', () => {
    expectSegments('en', 'Hi!there. Ok?yes. Next', ['Hi!there. ', 'Ok?yes. ', 'Next']);
  });
});

describe('SentenceSegmenter: Russian and Turkish', () => {
  it('keeps Russian abbreviations together', () => {
    expectSegments('ru', 'Мы на ул. Ленина, д. 5. Заходите! Это стоит 100 руб. в месяц.', [
      'Мы на ул. Ленина, д. 5. ',
      'Заходите! ',
      'Это стоит 100 руб. в месяц.',
    ]);
    expectSegments('ru', 'Театр им. Пушкина в г. Москва открыт. Т.е. всё хорошо. Чай, кофе и т.д. Что ещё?', [
      'Театр им. Пушкина в г. Москва открыт. ',
      'Т.е. всё хорошо. ',
      'Чай, кофе и т.д. ',
      'Что ещё?',
    ]);
  });

  it('splits Russian quotes, questions and numbers sensibly', () => {
    expectSegments('ru', '«Привет!» — сказал он. Кофе стоит 3.5 рубля? Да, в 7.30 утра.', [
      '«Привет!» — сказал он. ',
      'Кофе стоит 3.5 рубля? ',
      'Да, в 7.30 утра.',
    ]);
  });

  it('keeps Turkish abbreviations and ordinals together', () => {
    expectSegments('tr', 'Dr. Ahmet geldi. Sn. Yılmaz ve Av. Kaya da burada. Prof. Ayşe yarın gelir.', [
      'Dr. Ahmet geldi. ',
      'Sn. Yılmaz ve Av. Kaya da burada. ',
      'Prof. Ayşe yarın gelir.',
    ]);
    expectSegments('tr', 'Elma, armut vb. meyveler var. 19. Mayıs tatil. Saat 7.30\'da açığız!', [
      'Elma, armut vb. meyveler var. ',
      '19. Mayıs tatil. ',
      "Saat 7.30'da açığız!",
    ]);
  });

  it('keeps German ordinals ("1. Mai") together', () => {
    expectSegments('de', 'Am 1. Mai ist geschlossen. Sonst offen.', ['Am 1. Mai ist geschlossen. ', 'Sonst offen.']);
  });

  it('splits CJK sentences that have no space after the terminator', () => {
    expectSegments('ja', 'こんにちは。コーヒーはいかがですか？はい！', ['こんにちは。', 'コーヒーはいかがですか？', 'はい！']);
  });

  it('accepts an invalid language tag', () => {
    expectSegments('not a tag!', 'One. Two.', ['One. ', 'Two.']);
  });
});

describe('SentenceSegmenter: streaming', () => {
  it('emits a sentence only once non-space text after its boundary has arrived', () => {
    const s = new SentenceSegmenter('en');
    expect(s.push('Hello there.')).toEqual([]);
    expect(s.push(' ')).toEqual([]);
    expect(s.push('  ')).toEqual([]);
    expect(s.push('How')).toEqual(['Hello there.   ']);
    expect(s.push(' are you? I am')).toEqual(['How are you? ']);
    expect(s.flush()).toEqual(['I am']);
    // Reusable after flush.
    expect(s.push('Again. And')).toEqual(['Again. ']);
    expect(s.flush()).toEqual(['And']);
  });

  it('never emits early at "Dr." or "3." at the end of the buffer', () => {
    const s = new SentenceSegmenter('en');
    expect(s.push('Please see Dr.')).toEqual([]);
    expect(s.push(' ')).toEqual([]);
    expect(s.push('Smith. Table 3.')).toEqual(['Please see Dr. Smith. ']);
    expect(s.push('5 is free')).toEqual([]);
    expect(s.push('. Thanks')).toEqual(['Table 3.5 is free. ']);
    expect(s.flush()).toEqual(['Thanks']);
  });

  it('waits while digits follow a terminator, since a lower-case word may still join them', () => {
    const s = new SentenceSegmenter('en');
    expect(s.push('Hello. 12')).toEqual([]);
    expect(s.push(' ')).toEqual([]);
    expect(s.push('apples. And ')).toEqual(['Hello. 12 apples. ']);
    const t = new SentenceSegmenter('en');
    expect(t.push('Hello. 12 ')).toEqual([]);
    expect(t.push('Apples.')).toEqual(['Hello. ']);
    expect(t.flush()).toEqual(['12 Apples.']);
  });

  it('returns several sentences from one delta', () => {
    const s = new SentenceSegmenter('en');
    expect(s.push('One. Two! Three? Fo')).toEqual(['One. ', 'Two! ', 'Three? ']);
    expect(s.push('ur.')).toEqual([]);
    expect(s.flush()).toEqual(['Four.']);
  });

  const paragraphs: Array<[string, string]> = [
    [
      'en',
      'Welcome to Café Lumen! Dr. Brown recommends the flat white, e.g. with oat milk. It costs 3.50, i.e. about 3.5 euros. ' +
        'We open at 7.30 a.m. on weekdays.\n\nOur menu:\n1. Latte\n2. Mocha\n- Tea… or coffee? Really?! "Sure." (Yes.) ' +
        'See https://cafe.example.com/menu?x=1.2 or mail hi@cafe.example.com. Thanks, etc. Bye! 😀 Enjoy 𝄞 music.\n',
    ],
    [
      'ru',
      'Добро пожаловать! Мы на ул. Ленина, д. 5, т.е. в центре. Кофе стоит 150 руб. в среду. «Хотите чай?» — спросил он.\n' +
        'Открыто с 7.30 до 22.00. Т.д. и т.п. Ещё вопросы? Нет!\n\nСпасибо…',
    ],
    [
      'tr',
      'Hoş geldiniz! Dr. Ahmet ve Sn. Yılmaz burada. Çay, kahve vb. içecekler var. 19. Mayıs günü açığız. ' +
        "Saat 7.30'da geliniz. İyi günler! Prof. Ayşe? Evet.\n- Kahve\n- Çay\n",
    ],
  ];

  it('gives the same sentences one character at a time as all at once', () => {
    for (const [language, text] of paragraphs) {
      expect(byChar(language, text)).toEqual(whole(language, text));
    }
  });

  it('reconstructs the input exactly and gives the same sentences for random chunkings (seeded property test)', () => {
    const random = mulberry32(20240611);
    for (const [language, text] of paragraphs) {
      const expected = whole(language, text);
      expect(expected.join('')).toBe(text);
      expect(expected.slice(1).some((x) => x.trim() === '')).toBe(false);
      for (let run = 0; run < 60; run++) {
        const got = randomChunks(language, text, random, 1 + (run % 12));
        expect(got).toEqual(expected);
      }
    }
    // Random soup of tricky pieces, checked against the all-at-once result.
    const pieces = [
      'a', 'Z', 'ж', 'İ', ' ', '  ', '\n', '\r\n', '.', '. ', '?', '!', '…', '"', '»', '(', ')', '1', '3.5', ',',
      'Dr. ', 'No. ', 'ул. ', 'etc. ', 'e.g. ', '。', 'x@y.com', 'https://a.b/c?d=1', '\t', 'Mai', 'word ', 'Word ', '😀',
    ];
    for (let run = 0; run < 400; run++) {
      const language = ['en', 'ru', 'tr', 'de', 'ja'][run % 5] ?? 'en';
      let text = '';
      const n = 1 + Math.floor(random() * 40);
      for (let i = 0; i < n; i++) text += pieces[Math.floor(random() * pieces.length)];
      const expected = whole(language, text);
      expect(expected.join('')).toBe(text);
      expect(randomChunks(language, text, random, 1 + (run % 6))).toEqual(expected);
    }
  });

  it('streams 10k characters in 1-character deltas quickly (guard against quadratic re-segmentation)', () => {
    const text = paragraphs.map(([, t]) => t).join(' ').repeat(20).slice(0, 10_000);
    const longSentence = 'and more words, e.g. Dr. Who, '.repeat(400).slice(0, 10_000);
    for (const input of [text, longSentence]) {
      const s = new SentenceSegmenter('en');
      const started = performance.now();
      const out: string[] = [];
      for (let i = 0; i < input.length; i++) out.push(...s.push(input.charAt(i)));
      out.push(...s.flush());
      const elapsed = performance.now() - started;
      expect(out.join('')).toBe(input);
      expect(elapsed).toBeLessThan(500);
    }
  });
});
