import Mustache from 'mustache';
import type { TemplateContext } from '../actions/port';
import { ParleyError } from '../errors';

/*
 * Logic-less templates (Mustache) for what the map says and sends: `{{ session.variables.size }}`.
 * A map never runs code: values are only looked up, sections only test or iterate data.
 *
 * Every interpolated value goes through the escape mode, whichever tag form it uses ({{x}}, {{{x}}},
 * {{& x}}): triple braces are not a way around URL or JSON escaping.
 */

export type TemplateEscape = 'text' | 'url' | 'json';

export interface Rendered {
  text: string;
  /** Dotted names of variable tags whose value was undefined or null (each once, in order). */
  missing: string[];
}

type Token = [type: string, value: string, start: number, end: number, children?: Token[], ...rest: unknown[]];

/** Parses with Mustache's own cache; a template Mustache cannot parse is a `map.invalid` error. */
function parse(template: string): Token[] {
  try {
    return Mustache.parse(template) as unknown as Token[];
  } catch (err) {
    throw new ParleyError('map.invalid', `invalid template: ${(err as Error).message}`, { cause: err });
  }
}

/** A value as text: strings as they are, numbers and booleans via String, objects and arrays as JSON. */
function stringify(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Lone surrogates make encodeURIComponent throw; they become U+FFFD. */
const wellFormed = (s: string): string =>
  s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');

function format(value: unknown, escape: TemplateEscape): string {
  switch (escape) {
    case 'text':
      return stringify(value);
    case 'url':
      return encodeURIComponent(wellFormed(stringify(value)));
    case 'json':
      // Numbers and booleans are valid inside a string literal and as bare JSON values alike.
      if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') return String(value);
      return JSON.stringify(stringify(value)).slice(1, -1);
  }
}

/** One render: formats every variable tag by the escape mode and records the absent ones. */
class RenderWriter extends Mustache.Writer {
  readonly missing: string[] = [];

  constructor(private readonly escape: TemplateEscape) {
    super();
  }

  private value(token: string[], context: Mustache.Context): string {
    const name = token[1] ?? '';
    const value: unknown = context.lookup(name);
    if (value === undefined || value === null) {
      if (!this.missing.includes(name)) this.missing.push(name);
      return '';
    }
    return format(value, this.escape);
  }

  override escapedValue(token: string[], context: Mustache.Context): string {
    return this.value(token, context);
  }

  override unescapedValue(token: string[], context: Mustache.Context): string {
    return this.value(token, context);
  }
}

/**
 * Renders a template with the session's context. 'text' does no HTML escaping (the output is spoken
 * or displayed text); 'url' URL-encodes every value; 'json' makes every value safe inside a JSON
 * string literal. Throws ParleyError('map.invalid') for a template Mustache cannot parse.
 */
export function renderTemplate(template: string, context: TemplateContext, escape: TemplateEscape = 'text'): Rendered {
  const tokens = parse(template);
  const writer = new RenderWriter(escape);
  // No partials: `{{> x}}` renders as nothing.
  const text = writer.renderTokens(tokens as unknown as string[][], new Mustache.Context(context), undefined, template);
  return { text, missing: writer.missing };
}

/**
 * The dotted names a template reads (variable tags and section names, as written; names inside a
 * section are relative to it), each once, in order. For the linter.
 */
export function templateReferences(template: string): string[] {
  const names: string[] = [];
  const walk = (tokens: readonly Token[]) => {
    for (const token of tokens) {
      const [type, name, , , children] = token;
      if ((type === 'name' || type === '&' || type === '#' || type === '^') && name !== '.' && !names.includes(name)) {
        names.push(name);
      }
      if (children) walk(children);
    }
  };
  walk(parse(template));
  return names;
}
