import { describe, expect, it } from 'vitest';
import type { TemplateContext } from '../../lib/actions/port';
import { ParleyError } from '../../lib/errors';
import { renderTemplate, templateReferences } from '../../lib/flow/template';

const ctx = (variables: Record<string, unknown>, extra: Partial<TemplateContext['session']> = {}): TemplateContext => ({
  session: { variables, language: 'en', node: 'order', ...extra },
});

const tricky = 'say "hi" \\ back\nnew line\ttab <b>&amp; café ☕ 𝄞 ü';

describe('renderTemplate: text', () => {
  it('renders nested variables and the session fields', () => {
    const r = renderTemplate(
      'A {{ session.variables.size }} {{session.variables.drink.name}} for {{ session.variables.customer.address.city }} ({{ session.language }}, {{ session.node }}, {{ session.id }}).',
      ctx({ size: 'large', drink: { name: 'latte' }, customer: { address: { city: 'İzmir' } } }, { id: 's-1' }),
    );
    expect(r).toEqual({ text: 'A large latte for İzmir (en, order, s-1).', missing: [] });
  });

  it('does no HTML escaping, whatever the tag form', () => {
    const c = ctx({ v: `<b>Tom & "Jerry"</b> it's` });
    for (const t of ['{{ session.variables.v }}', '{{{ session.variables.v }}}', '{{& session.variables.v }}']) {
      expect(renderTemplate(t, c).text).toBe(`<b>Tom & "Jerry"</b> it's`);
    }
  });

  it('renders numbers, booleans, zero and false as they are, objects and arrays as JSON', () => {
    const c = ctx({ n: 3.5, zero: 0, no: false, yes: true, list: [1, 'two'], obj: { a: 1, b: [null] } });
    expect(
      renderTemplate('{{session.variables.n}}|{{session.variables.zero}}|{{session.variables.no}}|{{session.variables.yes}}|{{session.variables.list}}|{{session.variables.obj}}', c).text,
    ).toBe('3.5|0|false|true|[1,"two"]|{"a":1,"b":[null]}');
  });

  it('does not render templates found in values (no second pass)', () => {
    expect(renderTemplate('{{ session.variables.a }}', ctx({ a: '{{ session.variables.b }}', b: 'no' })).text).toBe('{{ session.variables.b }}');
  });

  it('supports sections and inverted sections over the data', () => {
    const c = ctx({ items: [{ name: 'tea' }, { name: 'cake' }], vip: true, empty: [] });
    expect(renderTemplate('{{#session.variables.items}}{{name}}, {{/session.variables.items}}', c).text).toBe('tea, cake, ');
    expect(renderTemplate('{{#session.variables.vip}}VIP{{/session.variables.vip}}{{^session.variables.vip}}guest{{/session.variables.vip}}', c).text).toBe('VIP');
    expect(renderTemplate('{{^session.variables.empty}}nothing yet{{/session.variables.empty}}', c)).toEqual({ text: 'nothing yet', missing: [] });
  });

  it('comments and partials render as nothing (there are no partials)', () => {
    expect(renderTemplate('a{{! a note }}b{{> other }}c', ctx({}))).toEqual({ text: 'abc', missing: [] });
  });
});

describe('renderTemplate: missing variables', () => {
  it('lists undefined and null variables, top-level and nested, once each, in order', () => {
    const r = renderTemplate(
      '{{ session.variables.a }} {{ session.variables.b.c }} {{ session.variables.n }} {{{ session.variables.t }}} {{& session.variables.u }} {{ nowhere }} {{ session.variables.a }} {{ session.variables.ok }}',
      ctx({ b: {}, n: null, ok: 'fine' }),
    );
    expect(r.text).toBe(`${' '.repeat(7)}fine`);
    expect(r.missing).toEqual(['session.variables.a', 'session.variables.b.c', 'session.variables.n', 'session.variables.t', 'session.variables.u', 'nowhere']);
  });

  it('does not report falsy values that are present', () => {
    expect(renderTemplate('{{session.variables.z}}{{session.variables.f}}{{session.variables.e}}', ctx({ z: 0, f: false, e: '' }))).toEqual({ text: '0false', missing: [] });
  });

  it('does not report absent section names (that is what sections are for)', () => {
    const r = renderTemplate(
      '{{#session.variables.coupon}}Coupon {{session.variables.coupon}}.{{/session.variables.coupon}}{{^session.variables.name}}Hello!{{/session.variables.name}}',
      ctx({}),
    );
    expect(r).toEqual({ text: 'Hello!', missing: [] });
  });

  it('reports a missing variable inside a section that renders', () => {
    const r = renderTemplate('{{#session.variables.items}}{{name}}/{{price}};{{/session.variables.items}}', ctx({ items: [{ name: 'tea', price: 2 }, { name: 'cake' }] }));
    expect(r).toEqual({ text: 'tea/2;cake/;', missing: ['price'] });
  });
});

describe('renderTemplate: url', () => {
  it('URL-encodes every interpolated value, not the template', () => {
    const r = renderTemplate(
      'https://api.example.com/orders/{{ session.variables.id }}?q={{ session.variables.q }}&raw={{{ session.variables.q }}}&n={{ session.variables.n }}',
      ctx({ id: 'a/b?c#d', q: 'a & b = "c" é', n: 42 }),
      'url',
    );
    expect(r.text).toBe('https://api.example.com/orders/a%2Fb%3Fc%23d?q=a%20%26%20b%20%3D%20%22c%22%20%C3%A9&raw=a%20%26%20b%20%3D%20%22c%22%20%C3%A9&n=42');
    expect(r.missing).toEqual([]);
  });

  it('round-trips tricky values and survives lone surrogates', () => {
    const r = renderTemplate('?v={{ session.variables.v }}', ctx({ v: tricky }), 'url');
    expect(r.text).not.toMatch(/[\s"\\<>&]/);
    expect(decodeURIComponent(r.text.slice('?v='.length))).toBe(tricky);
    expect(renderTemplate('{{ session.variables.v }}', ctx({ v: 'a\uD800b' }), 'url').text).toBe('a%EF%BF%BDb');
  });

  it('encodes objects as their JSON', () => {
    expect(renderTemplate('{{ session.variables.o }}', ctx({ o: { a: 1 } }), 'url').text).toBe(encodeURIComponent('{"a":1}'));
  });
});

describe('renderTemplate: json', () => {
  const body = '{"size": "{{ session.variables.size }}", "note": "{{{ session.variables.note }}}", "qty": {{ session.variables.qty }}, "gift": {{ session.variables.gift }}}';

  it('keeps a body template valid JSON whatever the values contain', () => {
    for (const note of [tricky, '", "admin": true, "x": "', '\\', '\u2028\u2029', '\u0000\u001f', '}}{{', 'emoji 👍🏽']) {
      const r = renderTemplate(body, ctx({ size: 'L', note, qty: 2, gift: false }), 'json');
      expect(r.missing).toEqual([]);
      expect(JSON.parse(r.text)).toEqual({ size: 'L', note, qty: 2, gift: false });
    }
  });

  it('escapes quotes, backslashes, newlines and controls; leaves unicode as is', () => {
    expect(renderTemplate('{{ session.variables.v }}', ctx({ v: 'a"b\\c\nd\te\u0001 é ☕' }), 'json').text).toBe('a\\"b\\\\c\\nd\\te\\u0001 é ☕');
  });

  it('puts objects and arrays in as escaped JSON text, numbers and booleans as they are', () => {
    const r = renderTemplate('{"o": "{{ session.variables.o }}", "n": {{ session.variables.n }}, "b": {{ session.variables.b }}}', ctx({ o: { k: ['"'] }, n: -1.5e3, b: true }), 'json');
    expect(JSON.parse(r.text)).toEqual({ o: '{"k":["\\""]}', n: -1500, b: true });
  });

  it('reports missing variables and leaves them empty', () => {
    const r = renderTemplate(body, ctx({ size: 'L' }), 'json');
    expect(r.missing).toEqual(['session.variables.note', 'session.variables.qty', 'session.variables.gift']);
  });
});

describe('templateReferences', () => {
  it('lists variable tags and section names, each once, in order', () => {
    expect(
      templateReferences(
        'Hi {{ session.variables.name }}! {{{session.variables.raw}}} {{& session.language}} {{#session.variables.items}}{{name}} {{.}}{{/session.variables.items}}{{^session.variables.vip}}-{{/session.variables.vip}}{{! comment }}{{> partial }}{{ session.variables.name }}',
      ),
    ).toEqual(['session.variables.name', 'session.variables.raw', 'session.language', 'session.variables.items', 'name', 'session.variables.vip']);
  });

  it('returns nothing for plain text', () => {
    expect(templateReferences('Plain text, {single} braces.')).toEqual([]);
  });

  it.each([
    ['{{#session.variables.a}}open', /Unclosed section "session.variables.a"/],
    ['{{#a}}x{{/b}}', /Unclosed section "a"/],
    ['{{/a}}', /Unopened section "a"/],
    ['{{ session.variables.a ', /Unclosed tag/],
  ])('throws map.invalid with Mustache’s message for %j', (template, message) => {
    let error: unknown;
    try {
      templateReferences(template);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ParleyError);
    expect((error as ParleyError).code).toBe('map.invalid');
    expect((error as ParleyError).message).toMatch(message);
    // renderTemplate refuses the same template the same way.
    expect(() => renderTemplate(template, ctx({}))).toThrow(ParleyError);
  });
});
