import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ParleyError } from '../../lib/errors';
import type { IntentClassifier } from '../../lib/flow/classifier';
import { type DialogueMap, loadDialogueMap } from '../../lib/flow/map';
import { isModelCurrent, loadNluClassifier, modelHash, type NluModel } from '../../lib/nlu/load';
import { loadOrTrain, modelPathFor, readModelFile, writeModelFile } from '../../lib/nlu/model-file';
import { findNumbers } from '../../lib/nlu/numbers';
import { createNlp } from '../../lib/nlu/container';
import { examplesByLanguage, trainNlu } from '../../lib/nlu/train';

const MESSAGES = {
  not_understood: 'Sorry?',
  action_failed: 'That failed.',
  action_timeout: 'That took too long.',
  llm_error: 'Oops.',
  llm_timeout: 'Too slow.',
  internal_error: 'Something broke.',
};

/** A café in English, Russian and Turkish: four intents, two enums, a regex. */
function cafeMap(overrides: Record<string, unknown> = {}): DialogueMap {
  return loadDialogueMap({
    name: 'café',
    language: 'en',
    languages: ['ru', 'tr'],
    initial_state: 'start',
    messages: MESSAGES,
    intents: {
      order: {
        examples: {
          en: [
            'I want a coffee',
            'can I get a tea',
            'I would like to order a drink',
            'one latte please',
            'give me a hot chocolate',
            'could I have a cappuccino',
            "I'll take a small tea",
          ],
          ru: ['хочу кофе', 'можно чай', 'я хочу заказать напиток', 'дайте латте пожалуйста', 'мне какао', 'можно мне капучино', 'я возьму маленький чай'],
          tr: [
            'kahve istiyorum',
            'bir çay alabilir miyim',
            'içecek sipariş etmek istiyorum',
            'bir latte lütfen',
            'sıcak çikolata ver',
            'bana bir kapuçino verir misiniz',
            'küçük bir çay alayım',
          ],
        },
        slots: { drink: { entity: 'drink', prompt: 'Which drink?' }, count: { entity: 'number', required: false } },
      },
      yes: {
        examples: {
          en: ['yes', 'yeah', 'sure', 'correct', 'that is right'],
          ru: ['да', 'конечно', 'верно', 'правильно', 'ага'],
          tr: ['evet', 'tabii', 'doğru', 'aynen', 'olur'],
        },
      },
      no: {
        examples: {
          en: ['no', 'nope', 'that is wrong', 'not really'],
          ru: ['нет', 'неправильно', 'не надо', 'неверно'],
          tr: ['hayır', 'yanlış', 'istemiyorum', 'yok'],
        },
      },
      hours: {
        examples: {
          en: ['when are you open', 'what are your opening hours', 'are you open on sunday', 'what time do you close'],
          ru: ['когда вы открыты', 'часы работы', 'вы работаете в воскресенье', 'во сколько вы закрываетесь'],
          tr: ['ne zaman açıksınız', 'çalışma saatleri', 'pazar günü açık mısınız', 'saat kaçta kapanıyorsunuz'],
        },
      },
    },
    entities: {
      drink: {
        type: 'enum',
        values: {
          coffee: { en: ['coffee', 'latte', 'espresso'], ru: ['кофе', 'латте'], tr: ['kahve', 'latte'] },
          tea: { en: ['tea'], ru: ['чай'], tr: ['çay'] },
          hot_chocolate: { en: ['hot chocolate', 'cocoa'], ru: ['какао', 'горячий шоколад'], tr: ['sıcak çikolata'] },
        },
      },
      size: { type: 'enum', values: { small: ['little', 'tiny'], large: { en: ['big', 'grande'], ru: ['большой'], tr: ['büyük'] } } },
      order_code: { type: 'regex', pattern: '[A-Z]{2}-\\d{3}', flags: '' },
    },
    states: { start: { system_response: { playlist: [{ type: 'tts', text_template: 'Hi!' }] }, transitions: {} } },
    ...overrides,
  });
}

const ALL = ['order', 'yes', 'no', 'hours'];

let map: DialogueMap;
let model: NluModel;
let nlu: IntentClassifier;
const classify = (text: string, language = 'en', candidates: readonly string[] = ALL) => nlu.classify(text, { language, candidates });

beforeAll(async () => {
  map = cafeMap();
  model = await trainNlu(map);
  nlu = loadNluClassifier(map, model);
});

describe('intents', () => {
  it.each([
    ['en', 'could I please have an espresso', 'order'],
    ['en', 'yep that is correct', 'yes'],
    ['en', 'what time do you open', 'hours'],
    ['en', 'nope, wrong', 'no'],
    ['ru', 'я бы хотел чаю', 'order'],
    ['ru', 'да, всё верно', 'yes'],
    ['ru', 'во сколько вы открываетесь', 'hours'],
    ['ru', 'нет, не надо', 'no'],
    ['tr', 'bir kahve alayım', 'order'],
    ['tr', 'evet doğru', 'yes'],
    ['tr', 'hayır istemiyorum', 'no'],
    ['tr', 'pazar açık mısınız', 'hours'],
  ])('%s: recognizes a paraphrase not in the examples: "%s" -> %s', async (language, text, intent) => {
    const result = await classify(text, language);
    expect(result.intent).toBe(intent);
    expect(result.leader).toBe(intent);
    expect(result.score).toBeGreaterThanOrEqual(map.nlu.threshold);
    expect(result.score).toBeLessThanOrEqual(1);
  });

  it('picks only among the candidates, while the leader is the best intent overall', async () => {
    const text = 'could I please have an espresso';
    const outside = await classify(text, 'en', ['yes', 'no']);
    expect(outside.intent).toBeNull();
    expect(outside.score).toBe(0);
    expect(outside.leader).toBe('order');
    const inside = await classify(text, 'en', ['yes', 'order']);
    expect(inside.intent).toBe('order');
    expect(await classify(text, 'en', [])).toMatchObject({ intent: null, leader: 'order' });
  });

  it('leaves gibberish and small talk below the threshold: no intent, score 0', async () => {
    for (const text of ['asdf qwerty zxcv', 'the weather is lovely today', 'a purple giraffe sings loudly', 'хрюкозябра', 'şemsiye unuttum']) {
      const language = /[а-я]/.test(text) ? 'ru' : text.includes('ş') ? 'tr' : 'en';
      const result = await classify(text, language);
      expect(result.intent, text).toBeNull();
      expect(result.score, text).toBe(0);
      expect(result.leader === null || ALL.includes(result.leader), text).toBe(true);
    }
  });

  it('applies map.nlu.threshold: a leader may stand while the intent stays null', async () => {
    const strict = cafeMap({ nlu: { threshold: 1 } });
    const strictNlu = loadNluClassifier(strict, await trainNlu(strict));
    const result = await strictNlu.classify('my code is AB-123 I think', { language: 'en', candidates: ALL });
    expect(result.intent).toBeNull();
    expect(result.score).toBe(0);
    const loose = await classify('my code is AB-123 I think');
    expect(loose.leader).toBe(result.leader);
  });

  it('answers empty input with nothing, and an unknown language in the map language', async () => {
    expect(await classify('   ')).toEqual({ intent: null, score: 0, leader: null, entities: {} });
    expect((await classify('could I please have an espresso', 'de')).intent).toBe('order');
  });
});

describe('entities', () => {
  it.each([
    ['en', 'a big cocoa please', { drink: 'hot_chocolate', size: 'large' }],
    ['en', 'one latte', { drink: 'coffee', number: 1 }],
    ['en', 'a little hot chocolate', { drink: 'hot_chocolate', size: 'small' }],
    ['en', 'just a large tea', { drink: 'tea', size: 'large' }],
    ['ru', 'кофе', { drink: 'coffee' }],
    ['ru', 'я бы выпил чаю', { drink: 'tea' }],
    ['ru', 'большую чашку чая', { drink: 'tea', size: 'large' }],
    ['ru', 'горячий шоколад', { drink: 'hot_chocolate' }],
    ['tr', 'bir çayı alayım', { drink: 'tea', number: 1 }],
    ['tr', 'büyük bir kahveyi istiyorum', { drink: 'coffee', size: 'large', number: 1 }],
    ['tr', 'sıcak çikolata', { drink: 'hot_chocolate' }],
  ])('%s: "%s" gives canonical values %j', async (language, text, entities) => {
    expect((await classify(text, language)).entities).toEqual(entities);
  });

  it('never returns the synonym text of an enum', async () => {
    const { entities } = await classify('an espresso and a grande', 'en');
    expect(entities).toEqual({ drink: 'coffee', size: 'large' });
  });

  it('finds a regex entity, in every language', async () => {
    expect((await classify('my order is AB-123')).entities).toEqual({ order_code: 'AB-123' });
    expect((await classify('мой заказ XY-987', 'ru')).entities).toEqual({ order_code: 'XY-987' });
    expect((await classify('ab-123 lowercase does not match')).entities).toEqual({});
  });

  it.each([
    ['en', 'I want 2 coffees', 2],
    ['en', 'make it 12.5', 12.5],
    ['en', 'two coffees', 2],
    ['en', 'twenty five', 25],
    ['en', 'one hundred and five', 105],
    ['ru', '3 кофе', 3],
    ['ru', 'два кофе', 2],
    ['ru', 'двадцать пять', 25],
    ['ru', 'две чашки', 2],
    ['tr', '4 çay', 4],
    ['tr', 'iki kahve', 2],
    ['tr', 'yirmi beş', 25],
    ['tr', 'on bir', 11],
  ])('%s: the built-in number entity reads "%s" as %d', async (language, text, number) => {
    expect((await classify(text, language)).entities.number).toBe(number);
  });
});

describe('numbers', () => {
  const tables: Record<string, string[]> = {
    en: 'zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty'.split(' '),
    ru: 'ноль один два три четыре пять шесть семь восемь девять десять одиннадцать двенадцать тринадцать четырнадцать пятнадцать шестнадцать семнадцать восемнадцать девятнадцать двадцать'.split(' '),
    tr: 'sıfır bir iki üç dört beş altı yedi sekiz dokuz on on_bir on_iki on_üç on_dört on_beş on_altı on_yedi on_sekiz on_dokuz yirmi'.split(' '),
  };
  const tens: Record<string, string[]> = {
    en: 'ten twenty thirty forty fifty sixty seventy eighty ninety hundred'.split(' '),
    ru: 'десять двадцать тридцать сорок пятьдесят шестьдесят семьдесят восемьдесят девяносто сто'.split(' '),
    tr: 'on yirmi otuz kırk elli altmış yetmiş seksen doksan yüz'.split(' '),
  };

  it.each(Object.keys(tables))('%s: 0-20 and the tens up to 100 in words', (language) => {
    tables[language]!.forEach((word, n) => expect(findNumbers(word.replace('_', ' '), language).map((m) => m.value), word).toEqual([n]));
    tens[language]!.forEach((word, i) => expect(findNumbers(word, language).map((m) => m.value), word).toEqual([(i + 1) * 10]));
  });

  it.each([
    ['en', 'twenty-five and ninety nine', [25, 99]],
    ['en', 'a hundred', [100]],
    ['en', 'two, three', [2, 3]],
    ['en', '1,000 or -3 but not AB-123', [1000, -3]],
    ['ru', 'сто двадцать пять', [125]],
    ['ru', '1,5 литра', [1.5]],
    ['ru', 'Двадцать Пять', [25]],
    ['tr', 'İKİ YÜZ ELLİ', [250]],
    ['tr', 'bes ve dort', [5, 4]],
    ['tr', 'ikisini de', [2]],
    ['tr', 'onu istiyorum', []],
  ])('%s: "%s" -> %j', (language, text, values) => {
    expect(findNumbers(text, language).map((m) => m.value)).toEqual(values);
  });
});

describe('the model', () => {
  it('is plain JSON tagged with the map hash and languages', () => {
    expect(model.format).toBe('parley-nlu/1');
    expect(model.mapHash).toMatch(/^[0-9a-f]{64}$/);
    expect(model.mapHash).toBe(modelHash(map));
    expect(model.languages).toEqual(['en', 'ru', 'tr']);
    expect(JSON.parse(JSON.stringify(model))).toEqual(model);
  });

  it('hashes what training depends on, not key order or unrelated parts of the map', () => {
    const reordered = cafeMap({ entities: Object.fromEntries(Object.entries(cafeMap().entities).reverse()) });
    expect(modelHash(reordered)).toBe(modelHash(map));
    expect(modelHash(cafeMap({ name: 'another name' }))).toBe(modelHash(map));
    expect(modelHash(cafeMap({ nlu: { threshold: 0.7 } }))).not.toBe(modelHash(map));
    expect(isModelCurrent(map, model)).toBe(true);
    expect(isModelCurrent(map, { ...model, mapHash: '0'.repeat(64) })).toBe(false);
    expect(isModelCurrent(map, { nothing: true })).toBe(false);
  });

  it('is refused for a different map, telling to run npm run build:nlu', async () => {
    const other = cafeMap({ intents: { ...cafeMap().intents, menu: { examples: ['show me the menu'] } } });
    const otherModel = await trainNlu(other);
    let error: unknown;
    try {
      loadNluClassifier(map, otherModel);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ParleyError);
    expect((error as ParleyError).code).toBe('map.invalid');
    expect((error as ParleyError).message).toContain('npm run build:nlu');
    expect(() => loadNluClassifier(map, { format: 'nope' } as unknown as NluModel)).toThrow(/npm run build:nlu/);
  });

  it('classifies identically after export -> JSON.stringify -> parse -> load', async () => {
    const again = loadNluClassifier(map, JSON.parse(JSON.stringify(model)) as NluModel);
    const inputs: [string, string][] = [
      ['en', 'could I please have an espresso'],
      ['en', 'two big cocoas and AB-123'],
      ['en', 'asdf'],
      ['ru', 'я бы хотел чаю'],
      ['tr', 'büyük bir kahve istiyorum'],
    ];
    for (const [language, text] of inputs) {
      expect(await again.classify(text, { language, candidates: ALL })).toEqual(await classify(text, language));
    }
  });

  it('answers like the freshly trained nlp.js model, None included (nlp.js drops None on import)', async () => {
    const { nlp } = createNlp(['en']);
    for (const { intent, utterance } of examplesByLanguage(map).en!) nlp.addDocument('en', utterance, intent);
    await nlp.train();
    for (const text of ['a purple giraffe sings loudly', 'I saw a purple giraffe singing', 'could I please have an espresso', 'the weather is lovely today', 'yep that is correct']) {
      const fresh = await nlp.classify('en', text);
      const loaded = await classify(text);
      expect(loaded.leader, text).toBe(fresh.intent === 'None' ? null : fresh.intent);
      if (loaded.intent) expect(loaded.score, text).toBeCloseTo(fresh.classifications.find((c) => c.intent === loaded.intent)!.score, 9);
    }
  });

  it('trains deterministically', async () => {
    expect(JSON.stringify(await trainNlu(map))).toBe(JSON.stringify(model));
  });
});

describe('side effects', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('training and loading write no file and print nothing', async () => {
    const before = readdirSync(process.cwd()).sort();
    const spies = [
      vi.spyOn(process.stdout, 'write'),
      vi.spyOn(process.stderr, 'write'),
      ...(['log', 'info', 'warn', 'error', 'debug', 'trace'] as const).map((m) => vi.spyOn(console, m)),
    ];
    const trained = await trainNlu(map);
    const loaded = loadNluClassifier(map, JSON.parse(JSON.stringify(trained)) as NluModel);
    await loaded.classify('two big coffees AB-123 twenty five', { language: 'en', candidates: ALL });
    await loaded.classify('два больших кофе', { language: 'ru', candidates: ALL });
    await loaded.classify('iki büyük kahve', { language: 'tr', candidates: ALL });
    for (const spy of spies) expect(spy).not.toHaveBeenCalled();
    expect(readdirSync(process.cwd()).sort()).toEqual(before);
  });
});

describe('model files', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'parley-nlu-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('live under build/nlu, named after the map file', () => {
    expect(modelPathFor('/repo/dialogue_map.json', '/repo')).toBe('/repo/build/nlu/dialogue_map.nlu.json');
    expect(modelPathFor('/repo/examples/ru/dialogue_map.json', '/repo')).toBe('/repo/build/nlu/examples/ru/dialogue_map.nlu.json');
    expect(modelPathFor('/elsewhere/bot.json', '/repo')).toBe('/repo/build/nlu/bot.nlu.json');
  });

  it('round-trip through writeModelFile and readModelFile', () => {
    const path = join(dir, 'nested', 'a.nlu.json');
    expect(readModelFile(path)).toBeUndefined();
    expect(writeModelFile(path, model)).toBeGreaterThan(1000);
    expect(readModelFile(path)).toEqual(model);
  });

  it('loadOrTrain trains once, reuses a current model and retrains a stale one', async () => {
    const modelPath = join(dir, 'cafe.nlu.json');
    const first = await loadOrTrain(map, '/x/cafe.json', { modelPath });
    expect(first).toMatchObject({ trained: true, path: modelPath });
    expect(first.ms).toBeGreaterThan(0);
    const second = await loadOrTrain(map, '/x/cafe.json', { modelPath });
    expect(second.trained).toBe(false);
    expect(second.model).toEqual(first.model);
    const changed = cafeMap({ nlu: { threshold: 0.5 } });
    const third = await loadOrTrain(changed, '/x/cafe.json', { modelPath });
    expect(third.trained).toBe(true);
    expect(readModelFile(modelPath)?.mapHash).toBe(modelHash(changed));
  });
});
