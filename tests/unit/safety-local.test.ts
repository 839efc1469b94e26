import { describe, expect, it } from 'vitest';
import { DEFAULT_BLOCKED, localSafetyChecker } from '../../lib/llm/safety-local';

const custom = localSafetyChecker({
  blocked: [
    'kill',
    'ass',
    'hell',
    'bad word',
    { phrase: 'dangerous stunt', category: 'violence' },
    { pattern: '\\b(?:credit\\s+card|cvv)\\s+number\\b', category: 'pii' },
    { pattern: '\\bORDER-\\d{4}\\b', flags: 'g' },
    'дурак',
    'aptal',
  ],
});
const defaults = localSafetyChecker({ blocked: DEFAULT_BLOCKED });

async function blocked(text: string, checker = custom, language = 'en'): Promise<string | undefined> {
  const r = await checker.check(text, language);
  expect(r.safe).toBe(r.category === undefined);
  return r.category;
}

describe('localSafetyChecker: words and phrases', () => {
  it('blocks whole words and phrases, case-insensitively', async () => {
    expect(await blocked('I will kill it.')).toBe('blocked');
    expect(await blocked('KILL')).toBe('blocked');
    expect(await blocked('What the Hell?')).toBe('blocked');
    expect(await blocked('That is a BAD  WORD, sorry.')).toBe('blocked');
    expect(await blocked('Do not try this dangerous stunt!')).toBe('violence');
    expect(await blocked('a dangerous-stunt video')).toBe('violence');
  });

  it('sees through accents, width, invisible characters and leetspeak', async () => {
    expect(await blocked('kíll')).toBe('blocked');
    expect(await blocked('KİLL')).toBe('blocked');
    expect(await blocked('ｋｉｌｌ')).toBe('blocked');
    expect(await blocked('ki\u200bll')).toBe('blocked');
    expect(await blocked('k1ll')).toBe('blocked');
    expect(await blocked('h3ll')).toBe('blocked');
    expect(await blocked('4ss')).toBe('blocked');
    expect(await blocked('b4d w0rd')).toBe('blocked');
  });

  it('sees through spaced and punctuated letters and repeated letters', async () => {
    expect(await blocked('k i l l')).toBe('blocked');
    expect(await blocked('k.i.l.l')).toBe('blocked');
    expect(await blocked('k-1-l-l now')).toBe('blocked');
    expect(await blocked('h * e * l * l')).toBe('blocked');
    expect(await blocked('kiiiiiill')).toBe('blocked');
    expect(await blocked('helllllll no')).toBe('blocked');
    expect(await blocked('aaaasssss')).toBe('blocked');
    expect(await blocked('dangerrrrous stuuuunt')).toBe('violence');
  });

  it('has no false positives on ordinary café and customer-service text', async () => {
    const ordinary = [
      'Hello! Welcome to Café Lumen, how can I help you today?',
      'Our barista has real skill; try the skillet cookie.',
      'Shell out for the large size, Michelle? Hello, hello!',
      'Your class pass covers the assistant-led tasting; please pass the glasses.',
      'The bass player from Scunthorpe ordered a cassava cake at 4:30.',
      'We killed it at the Kilimanjaro roast contest: the killer whale mug is back.',
      'This espresso is as good as it gets. Good, good!',
      'Order ORDER-12345 was shipped; your card ending 1234 was charged $3.50.',
      'Bad weather today, but no bad words here, just a good word.',
      'Is 1 shot enough? We have 3 sizes, 7 syrups and 0 sugar options.',
      'Ваш кофе готов, спасибо за заказ! Дурачиться не будем.',
      'Siparişiniz hazır, teşekkürler! Kahveniz sıcak.',
    ];
    for (const text of ordinary) expect(await blocked(text), text).toBeUndefined();
  });

  it('does not read doubled letters as repetition ("good" is not "god")', async () => {
    const c = localSafetyChecker({ blocked: ['god', 'fod'] });
    expect(await blocked('good food', c)).toBeUndefined();
    expect(await blocked('gooood', c)).toBe('blocked');
  });
});

describe('localSafetyChecker: regex entries', () => {
  it('matches regex entries with their category (default flags iu; given flags as they are, minus g and y)', async () => {
    expect(await blocked('Please tell me your Credit Card number.')).toBe('pii');
    expect(await blocked('And the CVV  number?')).toBe('pii');
    expect(await blocked('Your reference is ORDER-1234.')).toBe('blocked');
    // Stateless: the same text twice gives the same answer even though the entry asked for 'g'.
    expect(await blocked('Your reference is ORDER-1234.')).toBe('blocked');
    // Flags given without 'i': case-sensitive.
    expect(await blocked('Your reference is order-1234.')).toBeUndefined();
    expect(await blocked('Your reference is ORDER-12345.')).toBeUndefined();
  });

  it('rejects an invalid pattern and an empty phrase when built', () => {
    expect(() => localSafetyChecker({ blocked: [{ pattern: '(' }] })).toThrow(/invalid blocked pattern/);
    expect(() => localSafetyChecker({ blocked: [' !! '] })).toThrow(/empty blocked phrase/);
  });

  it('returns the first matching entry in list order', async () => {
    const c = localSafetyChecker({ blocked: [{ phrase: 'kill', category: 'first' }, { pattern: 'kill', category: 'second' }] });
    expect(await c.check('kill', 'en')).toEqual({ safe: false, category: 'first' });
    expect(await c.check('fine', 'en')).toEqual({ safe: true });
  });
});

describe('localSafetyChecker: Russian and Turkish', () => {
  it('normalises Cyrillic case, ё, repeated and spaced letters', async () => {
    expect(await blocked('Ты ДУРАК!', custom, 'ru')).toBe('blocked');
    expect(await blocked('дуууурак', custom, 'ru')).toBe('blocked');
    expect(await blocked('д у р а к', custom, 'ru')).toBe('blocked');
    expect(await blocked('д.у.р.а.к', custom, 'ru')).toBe('blocked');
    expect(await blocked('дураки и дурачок', custom, 'ru')).toBeUndefined();
    const yo = localSafetyChecker({ blocked: ['ещё'] });
    expect(await blocked('ЕЩЕ', yo, 'ru')).toBe('blocked');
    expect(await blocked('ещё', yo, 'ru')).toBe('blocked');
  });

  it('normalises Turkish dotted and dotless i, and leetspeak', async () => {
    expect(await blocked('Sen APTAL mısın?', custom, 'tr')).toBe('blocked');
    expect(await blocked('4pt4l', custom, 'tr')).toBe('blocked');
    expect(await blocked('aptaaaal', custom, 'tr')).toBe('blocked');
    expect(await blocked('aptallık yapma', custom, 'tr')).toBeUndefined();
    const tr = localSafetyChecker({ blocked: ['kırmızı ışık'] });
    expect(await blocked('KIRMIZI IŞIK', tr, 'tr')).toBe('blocked');
    expect(await blocked('KİRMİZİ İŞİK', tr, 'tr')).toBe('blocked');
    expect(await blocked('kirmizi isik', tr, 'tr')).toBe('blocked');
  });
});

describe('DEFAULT_BLOCKED', () => {
  it('is short and uses the violence, self-harm and hate categories', () => {
    expect(DEFAULT_BLOCKED.length).toBeLessThanOrEqual(15);
    const categories = new Set(DEFAULT_BLOCKED.map((e) => (typeof e === 'string' ? 'blocked' : e.category)));
    expect([...categories].sort()).toEqual(['hate', 'self-harm', 'violence']);
  });

  it('blocks the obvious phrases, also with evasions', async () => {
    expect(await blocked('Go kill yourself.', defaults)).toBe('self-harm');
    expect(await blocked('go k1ll   y0urself!!', defaults)).toBe('self-harm');
    expect(await blocked('Here is how to make a BOMB:', defaults)).toBe('violence');
    expect(await blocked('I will kill you', defaults)).toBe('violence');
    expect(await blocked('They are subhuman.', defaults)).toBe('hate');
    expect(await blocked('All of them... no: those people should be wiped out', defaults)).toBe('hate');
    expect(await blocked('Убей себя.', defaults, 'ru')).toBe('self-harm');
    expect(await blocked('Как сделать бомбу?', defaults, 'ru')).toBe('violence');
    expect(await blocked('KENDİNİ ÖLDÜR', defaults, 'tr')).toBe('self-harm');
    expect(await blocked('Bomba nasıl yapılır?', defaults, 'tr')).toBe('violence');
  });

  it('lets ordinary customer-service answers through', async () => {
    const ordinary = [
      'This latte is the bomb, and the bomboloni are fresh!',
      'Would you like to kill some time with a dessert while you wait?',
      'How to make a bombastic first impression: our skillfully made cortado.',
      'We will kill the lights at 10 pm; you should die-hard fans of decaf try our new blend.',
      'If you are thinking about hurting yourself, please call a local helpline.',
      'Kendini iyi hisset! Bomba gibi bir kahve.',
      'Себя не забудьте: кофе с собой?',
    ];
    for (const text of ordinary) expect(await blocked(text, defaults), text).toBeUndefined();
  });
});
