import { describe, expect, it } from 'vitest';
import type { TemplateContext } from '../../lib/actions/port';
import type { SayItem } from '../../lib/flow/engine';
import { loadDialogueMap, MESSAGE_KINDS, type DialogueMap } from '../../lib/flow/map';
import { renderSay, replyText, type Utterance } from '../../lib/flow/playlist';

/** An English map with a Russian translation for some texts (others stay plain, or English only). */
const map: DialogueMap = loadDialogueMap({
  name: 'playlists',
  language: 'en',
  languages: ['ru'],
  initial_state: 's',
  prompts: {
    'cache:hello': { en: 'Hello!', ru: 'Привет!' },
    'cache:english_only': { en: 'Only in English.' },
    'cache:plain': 'Plain for everyone.',
    'filler:wait': { en: 'One moment…', ru: 'Минутку…' },
  },
  messages: {
    ...Object.fromEntries(MESSAGE_KINDS.map((k) => [k, `<${k}>`])),
    not_understood: { en: "Sorry, I didn't catch that.", ru: 'Простите, я не понял.' },
  },
  intents: {},
  states: { s: { system_response: { playlist: [{ type: 'cache', key: 'cache:hello' }] } } },
});

const ctx = (variables: Record<string, unknown> = {}, language = 'en', node: string | null = 's'): TemplateContext => ({
  session: { variables, language, node, id: 'sess-1' },
});

const texts = (us: readonly Utterance[]) => us.map((u) => u.text);

describe('renderSay', () => {
  it('says cache prompts as written, as speech, with their key as source', () => {
    const { utterances, problems } = renderSay(map, [{ type: 'cache', key: 'cache:hello' }, { type: 'cache', key: 'cache:plain' }], ctx(), 's');
    expect(utterances).toEqual([
      { kind: 'speech', text: 'Hello!', source: 'cache:hello' },
      { kind: 'speech', text: 'Plain for everyone.', source: 'cache:plain' },
    ]);
    expect(problems).toEqual([]);
  });

  it('does not render templates in static prompts', () => {
    const m = loadDialogueMap({ ...rawOf(map), prompts: { ...map.prompts, 'cache:braces': 'Say {{ session.variables.x }} literally.' } });
    const { utterances } = renderSay(m, [{ type: 'cache', key: 'cache:braces' }], ctx({ x: 'NO' }), 's');
    expect(texts(utterances)).toEqual(['Say {{ session.variables.x }} literally.']);
  });

  it('says filler items as fillers', () => {
    const { utterances } = renderSay(map, [{ type: 'filler', key: 'filler:wait' }], ctx(), 's');
    expect(utterances).toEqual([{ kind: 'filler', text: 'One moment…', source: 'filler:wait' }]);
  });

  it('renders tts templates with the session, trimmed, with tts:<where> as source', () => {
    const items: SayItem[] = [{ type: 'tts', text_template: '  A {{ session.variables.size }} {{session.variables.drink}} at {{ session.node }} ({{ session.language }}).  ' }];
    const { utterances, problems } = renderSay(map, items, ctx({ size: 'large', drink: 'tea' }), 'confirm');
    expect(utterances).toEqual([{ kind: 'speech', text: 'A large tea at s (en).', source: 'tts:confirm' }]);
    expect(problems).toEqual([]);
  });

  it('says messages by kind and texts by their own source', () => {
    const items: SayItem[] = [
      { type: 'message', kind: 'action_timeout' },
      { type: 'text', text: 'Which size?', source: 'slot:order.size' },
      { type: 'text', text: 'Open 7 to 7.', source: 'faq:hours' },
    ];
    expect(renderSay(map, items, ctx(), 's').utterances).toEqual([
      { kind: 'speech', text: '<action_timeout>', source: 'message:action_timeout' },
      { kind: 'speech', text: 'Which size?', source: 'slot:order.size' },
      { kind: 'speech', text: 'Open 7 to 7.', source: 'faq:hours' },
    ]);
  });

  it('keeps the order of the items', () => {
    const items: SayItem[] = [
      { type: 'message', kind: 'not_understood' },
      { type: 'filler', key: 'filler:wait' },
      { type: 'tts', text_template: 'T' },
      { type: 'cache', key: 'cache:hello' },
    ];
    expect(renderSay(map, items, ctx(), 's').utterances.map((u) => u.source)).toEqual(['message:not_understood', 'filler:wait', 'tts:s', 'cache:hello']);
  });

  describe('localization', () => {
    const items: SayItem[] = [
      { type: 'cache', key: 'cache:hello' },
      { type: 'filler', key: 'filler:wait' },
      { type: 'message', kind: 'not_understood' },
      { type: 'tts', text_template: { en: 'You chose {{ session.variables.drink }}.', ru: 'Вы выбрали {{ session.variables.drink }}.' } },
      { type: 'text', text: { en: 'Which size?', ru: 'Какой размер?' }, source: 'slot:order.size' },
    ];

    it("says every kind of item in the session's language", () => {
      expect(texts(renderSay(map, items, ctx({ drink: 'чай' }, 'ru'), 's').utterances)).toEqual([
        'Привет!',
        'Минутку…',
        'Простите, я не понял.',
        'Вы выбрали чай.',
        'Какой размер?',
      ]);
    });

    it("falls back to the map's language for a language a text lacks, and plain strings are for every language", () => {
      expect(texts(renderSay(map, items, ctx({ drink: 'tea' }, 'tr'), 's').utterances)).toEqual([
        'Hello!',
        'One moment…',
        "Sorry, I didn't catch that.",
        'You chose tea.',
        'Which size?',
      ]);
      const ru = renderSay(map, [{ type: 'cache', key: 'cache:english_only' }, { type: 'cache', key: 'cache:plain' }, { type: 'message', kind: 'llm_error' }], ctx({}, 'ru'), 's');
      expect(texts(ru.utterances)).toEqual(['Only in English.', 'Plain for everyone.', '<llm_error>']);
    });
  });

  it('leaves out a tts item whose template reads a missing variable, reports it, and says the rest', () => {
    const items: SayItem[] = [
      { type: 'cache', key: 'cache:hello' },
      { type: 'tts', text_template: 'Your {{ session.variables.size }} {{ session.variables.drink }}, {{ session.variables.name }}.' },
      { type: 'cache', key: 'cache:plain' },
    ];
    const { utterances, problems } = renderSay(map, items, ctx({ drink: 'tea', name: null }), 'confirm');
    expect(texts(utterances)).toEqual(['Hello!', 'Plain for everyone.']);
    expect(problems).toEqual([{ source: 'tts:confirm', missing: ['session.variables.size', 'session.variables.name'] }]);
  });

  it('says falsy values that are set (0, false, empty string) and reports nothing', () => {
    const { utterances, problems } = renderSay(
      map,
      [{ type: 'tts', text_template: '[{{ session.variables.n }}|{{ session.variables.b }}|{{ session.variables.e }}]' }],
      ctx({ n: 0, b: false, e: '' }),
      's',
    );
    expect(texts(utterances)).toEqual(['[0|false|]']);
    expect(problems).toEqual([]);
  });

  it('a section on an unset variable is skipped without a problem', () => {
    const item: SayItem = { type: 'tts', text_template: 'Tea{{#session.variables.milk}} with {{ session.variables.milk }}{{/session.variables.milk}}.' };
    expect(renderSay(map, [item], ctx({}), 's')).toEqual({ utterances: [{ kind: 'speech', text: 'Tea.', source: 'tts:s' }], problems: [] });
    expect(texts(renderSay(map, [item], ctx({ milk: 'oat milk' }), 's').utterances)).toEqual(['Tea with oat milk.']);
  });

  it('reads nested variables (a webhook result)', () => {
    const item: SayItem = { type: 'tts', text_template: 'Order {{ session.variables.order.id }}, ready in {{ session.variables.order.eta.minutes }} minutes.' };
    const ok = renderSay(map, [item], ctx({ order: { id: 'A17', eta: { minutes: 5 } } }), 'placed');
    expect(texts(ok.utterances)).toEqual(['Order A17, ready in 5 minutes.']);
    const partial = renderSay(map, [item], ctx({ order: { id: 'A17' } }), 'placed');
    expect(partial.utterances).toEqual([]);
    expect(partial.problems).toEqual([{ source: 'tts:placed', missing: ['session.variables.order.eta.minutes'] }]);
  });

  it('says a tts item that renders to blank as nothing, without a problem', () => {
    expect(renderSay(map, [{ type: 'tts', text_template: '  {{ session.variables.e }} ' }], ctx({ e: '' }), 's')).toEqual({ utterances: [], problems: [] });
  });

  it('reports a prompt key the map does not define instead of saying it', () => {
    const { utterances, problems } = renderSay(map, [{ type: 'cache', key: 'cache:nope' }, { type: 'cache', key: 'cache:plain' }], ctx(), 's');
    expect(texts(utterances)).toEqual(['Plain for everyone.']);
    expect(problems).toEqual([{ source: 'cache:nope', missing: ['cache:nope'] }]);
  });
});

describe('replyText', () => {
  it('joins only the speech utterances, with spaces, in order', () => {
    expect(
      replyText([
        { kind: 'filler', text: 'One moment…', source: 'filler:wait' },
        { kind: 'speech', text: 'Sorry.', source: 'message:not_understood' },
        { kind: 'filler', text: 'Still…', source: 'filler:still' },
        { kind: 'speech', text: 'Which size?', source: 'slot:o.size' },
      ]),
    ).toBe('Sorry. Which size?');
    expect(replyText([{ kind: 'filler', text: 'One moment…', source: 'filler:wait' }])).toBe('');
    expect(replyText([])).toBe('');
  });
});

/** The map back as raw input (for variations that go through the loader again). */
function rawOf(m: DialogueMap): Record<string, unknown> {
  return structuredClone(m) as unknown as Record<string, unknown>;
}
