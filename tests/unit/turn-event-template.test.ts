import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TURN_EVENT_TEMPLATE } from '../../lib/host/events';
import { LIMITS } from '../../lib/protocol/v1';
import { escapeJavaScript, renderRequestTemplate } from '../../local/gateway';

/*
 * The $default route's request template (lib/host/events.ts), which API Gateway renders into the
 * payload of the turn function's asynchronous invocation. Lambda takes the payload only if it is JSON,
 * and the turn must see the message exactly as the client sent it. `escapeJavaScript` is
 * `$util.escapeJavaScript` as Apache Commons Lang writes it; `renderRequestTemplate` is the local
 * gateway's VTL renderer, which refuses any construct it does not implement.
 */

const context = {
  routeKey: '$default',
  eventType: 'MESSAGE',
  messageId: 'a1b2c3d4e5f6g7h8',
  connectionId: 'Ab3dEf6hIj9=',
  connectedAt: 1_760_000_000_000,
  domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
  stage: 'prod',
  apiId: 'abc123',
  requestId: 'Q1w2E3r4T5y6=',
  requestTimeEpoch: 1_760_000_012_345,
  identity: { sourceIp: '192.0.2.1', userAgent: 'evil "agent" \\ \'' },
};

const render = (body: string, template = TURN_EVENT_TEMPLATE) => renderRequestTemplate(template, { context, input: { body } });
const eventFor = (body: string) => JSON.parse(render(body)) as { body: string; isBase64Encoded: boolean; requestContext: Record<string, unknown> };

describe('$util.escapeJavaScript (Apache Commons Lang)', () => {
  it('escapes as StringEscapeUtils.escapeJavaScript does', () => {
    // The example of Commons Lang's own documentation.
    expect(escapeJavaScript('He didn\'t say, "Stop!"')).toBe('He didn\\\'t say, \\"Stop!\\"');
    expect(escapeJavaScript('a/b\\c')).toBe('a\\/b\\\\c');
    expect(escapeJavaScript('\b\t\n\f\r')).toBe('\\b\\t\\n\\f\\r');
    expect(escapeJavaScript('\u0000\u000b\u001f')).toBe('\\u0000\\u000B\\u001F');
    expect(escapeJavaScript('\u007f')).toBe('\u007f');
    expect(escapeJavaScript('é ı € \u2028')).toBe('\\u00E9 \\u0131 \\u20AC \\u2028');
    expect(escapeJavaScript('😀')).toBe('\\uD83D\\uDE00');
    expect(escapeJavaScript('plain text 123 {}[]:,$#')).toBe('plain text 123 {}[]:,$#');
  });
});

describe('the $default request template', () => {
  it('is a proxy-shaped event of API Gateway\'s own values, numbers as numbers, no User-Agent', () => {
    const event = eventFor('{"type":"hello","version":"1"}');
    const { identity, ...rest } = context;
    expect(event.requestContext).toEqual({ ...rest, identity: { sourceIp: identity.sourceIp } });
    expect(event.isBase64Encoded).toBe(false);
    expect(event.body).toBe('{"type":"hello","version":"1"}');
  });

  const tricky: Record<string, string> = {
    'single quotes': "it's O'Brien's",
    'a backslash before a quote': "\\'",
    'backslashes': 'C:\\temp\\new\\\\x',
    'double quotes': 'say "hi" and ""',
    'a JSON message with escapes': JSON.stringify({ type: 'input.text', turnId: 'x', text: 'line 1\nline "2"\t\\ \'3\' \u0000' }),
    'newlines and tabs': 'a\nb\r\nc\td',
    'every control character': Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join(''),
    'Russian and Turkish': 'Привет! Iğdır’da ılık süt — İstanbul',
    'emoji (surrogate pairs)': '☕️😀👩‍👩‍👧 𝄞',
    'line and paragraph separators': 'a\u2028b\u2029c',
    'what looks like VTL': '$context.stage #set($x = 1) ${input.body} $!util #end ##',
    'HTML': '</script><script>alert(1)</script>',
    'not JSON at all': '{"type": "input.text", ',
    'nothing': '',
  };

  for (const [name, body] of Object.entries(tricky)) {
    it(`renders JSON whose body is the message: ${name}`, () => {
      expect(eventFor(body).body).toBe(body);
    });
  }

  it('renders JSON whose body is the message, for any text (property)', () => {
    const nasty = fc.constantFrom("'", '"', '\\', '/', '\n', '\r', '\t', '\u0000', '\u001f', '\u007f', '\u2028', 'é', 'ı', '😀', '$', '#', "\\'", '\\"', '{', '}');
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ unit: nasty, maxLength: 60 })), (body) => {
        expect(eventFor(body).body).toBe(body);
      }),
      { numRuns: 2000 },
    );
  });

  it('needs its replaceAll: escapeJavaScript alone is not JSON for a single quote', () => {
    const withoutFix = TURN_EVENT_TEMPLATE.replace('.replaceAll("\\\\\'","\'")', '');
    expect(withoutFix).not.toBe(TURN_EVENT_TEMPLATE);
    expect(() => JSON.parse(render("it's", withoutFix))).toThrow();
    expect(JSON.parse(render('its', withoutFix)).body).toBe('its');
  });

  it('fits the largest message API Gateway accepts, escaped at its worst, into an asynchronous invocation (1 MB)', () => {
    // A control character costs six bytes escaped (\u0001): the most any UTF-8 byte can cost.
    const payload = render('\u0001'.repeat(LIMITS.messageBytes));
    expect(Buffer.byteLength(payload)).toBeGreaterThan(6 * LIMITS.messageBytes);
    expect(Buffer.byteLength(payload)).toBeLessThan(1024 * 1024);
  });
});

describe('the local gateway\'s template renderer', () => {
  const input = { context, input: { body: 'x' } };

  it('renders references, quiet references and braced ones; a $ without a name is text', () => {
    expect(renderRequestTemplate('$context.stage/${context.apiId}/$!context.stage $ 5$', input)).toBe('prod/abc123/prod $ 5$');
    expect(renderRequestTemplate(String.raw`"$util.escapeJavaScript($context.identity.userAgent).replaceAll("\\'","'")"`, input)).toBe(
      '"evil \\"agent\\" \\\\ \'"',
    );
  });

  it('refuses what it does not implement instead of guessing', () => {
    expect(() => renderRequestTemplate('#set($a = 1)', input)).toThrow(/directives/);
    expect(() => renderRequestTemplate('## a comment', input)).toThrow(/directives/);
    expect(() => renderRequestTemplate('$context.nope', input)).toThrow(/unknown reference/);
    expect(() => renderRequestTemplate('$stageVariables.x', input)).toThrow(/unknown reference/);
    expect(() => renderRequestTemplate("$input.json('$')", input)).toThrow(/unsupported method/);
    expect(() => renderRequestTemplate('$util.base64Encode($input.body)', input)).toThrow(/unsupported method/);
    expect(() => renderRequestTemplate('$util.escapeJavaScript("$input.body")', input)).toThrow(/interpolated/);
    expect(() => renderRequestTemplate("$input.body.replaceAll('x','$1')", input)).toThrow(/replacement/);
  });
});
