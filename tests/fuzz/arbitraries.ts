import fc from 'fast-check';

/*
 * Hostile client input for the fuzz tests: raw strings, JSON values and valid protocol messages with
 * a field swapped for something wrong. Shared by the parser and the turn handler properties.
 */

/** One UTF-16 code unit, any of them: NUL, controls, lone surrogate halves (invalid UTF-16), BOM. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

/** Keys an attacker tries on objects a server might merge or index by key. */
export const POISON_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'] as const;

export const nastyString: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: codeUnit }),
  fc.constantFrom('', ' ', '\t\n', '\u0000', 'a\u0000b', '\uD800', '\uDC00', 'x\uDBFF', '\uDFFFy', '\uFEFF', '\u202E', ...POISON_KEYS, '1', 'null', '{}'),
  // Huge: around the limits of the fields (4000, 512, 256 ...) and of the message (16 KB).
  fc.tuple(fc.constantFrom('x', 'é', '😀', '\uD800', ' ', '\u0000'), fc.integer({ min: 100, max: 20_000 })).map(([c, n]) => c.repeat(n)),
);

/** An object whose keys may be __proto__ and friends, as own data properties (as JSON.parse makes them). */
function ownObject(entries: Array<[string, unknown]>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}

const key = fc.oneof({ weight: 3, arbitrary: fc.string({ maxLength: 12 }) }, { weight: 2, arbitrary: fc.constantFrom(...POISON_KEYS) }, { weight: 1, arbitrary: nastyString });

/** Any JSON value, with hostile strings and keys, a few levels deep. */
export const hostileValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    nastyString,
    fc.integer(),
    fc.double(),
    fc.constantFrom(0, -1, 1.5, -0, 2 ** 53, 1e308, Number.MAX_SAFE_INTEGER + 2, true, false, null),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.array(fc.tuple(key, tie('value')), { maxLength: 5 }).map(ownObject),
  ),
})).value;

/** Nesting far deeper than any schema: arrays or objects, `depth` levels. */
export function deeplyNested(depth: number, kind: 'array' | 'object', inside = '1'): string {
  return kind === 'array' ? '['.repeat(depth) + inside + ']'.repeat(depth) : '{"a":'.repeat(depth) + inside + '}'.repeat(depth);
}

// ---------------------------------------------------------------------------------------------------
// Valid messages, each type

const uuid = fc.uuid();
const text = fc.string({ minLength: 1, maxLength: 200 }).filter((t) => t.trim().length > 0);
const audio = fc.record({ format: fc.constantFrom('pcm', 'mp3'), sampleRate: fc.constantFrom(8000, 16000, 22050, 24000) });

export const validMessage: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record(
    { type: fc.constant('hello'), version: fc.constant('1'), auth: fc.record({ apiKey: fc.string({ minLength: 1, maxLength: 64 }), token: fc.string({ minLength: 1, maxLength: 200 }) }, { requiredKeys: [] }) },
    { requiredKeys: ['type', 'version'] },
  ),
  fc.record(
    {
      type: fc.constant('session.start'),
      // A `__proto__` metadata key is refused on purpose (zod would drop it unchecked): not a valid message.
      metadata: fc.dictionary(fc.string({ maxLength: 16 }).filter((k) => k !== '__proto__'), fc.oneof(fc.string({ maxLength: 32 }), fc.integer(), fc.boolean()), { maxKeys: 5 }),
      audio,
    },
    { requiredKeys: ['type'] },
  ),
  fc.record({ type: fc.constant('session.start'), sessionId: uuid, resumeToken: fc.string({ minLength: 16, maxLength: 64 }), lastTurnId: uuid }, { requiredKeys: ['type', 'sessionId', 'resumeToken'] }),
  fc.record({ type: fc.constant('input.text'), turnId: uuid, text, sessionId: uuid }, { requiredKeys: ['type', 'turnId', 'text'] }),
  fc.record({ type: fc.constant('response.cancel'), turnId: uuid, playedMs: fc.nat() }, { requiredKeys: ['type', 'turnId'] }),
  fc.record({ type: fc.constant('session.stop'), reason: fc.string({ maxLength: 50 }) }, { requiredKeys: ['type'] }),
);

/** Where a mutation lands: a top-level field (existing or new) or one inside metadata / auth / audio. */
const FIELDS = ['type', 'version', 'auth', 'sessionId', 'resumeToken', 'lastTurnId', 'metadata', 'audio', 'turnId', 'text', 'playedMs', 'reason', ...POISON_KEYS] as const;
const NESTED = ['auth', 'metadata', 'audio'] as const;

export type Mutation =
  | { kind: 'set'; field: string; value: unknown }
  | { kind: 'nested'; field: (typeof NESTED)[number]; key: string; value: unknown }
  | { kind: 'delete'; field: string };

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), field: fc.oneof(fc.constantFrom(...FIELDS), fc.string({ maxLength: 8 })), value: hostileValue }),
  fc.record({ kind: fc.constant('nested' as const), field: fc.constantFrom(...NESTED), key: fc.oneof(key, fc.constantFrom('apiKey', 'token', 'format', 'sampleRate', 'language')), value: hostileValue }),
  fc.record({ kind: fc.constant('delete' as const), field: fc.constantFrom(...FIELDS) }),
);

/** Applies mutations to a copy of a message; every key lands as an own data property, as JSON.parse would make it. */
export function mutate(message: Record<string, unknown>, mutations: Mutation[]): Record<string, unknown> {
  let out = ownObject(Object.entries(message));
  for (const m of mutations) {
    if (m.kind === 'delete') {
      delete out[m.field];
    } else if (m.kind === 'set') {
      out = ownObject([...Object.entries(out).filter(([k]) => k !== m.field), [m.field, m.value]]);
    } else {
      const inner = out[m.field];
      const base = inner && typeof inner === 'object' && !Array.isArray(inner) ? Object.entries(inner) : [];
      out = ownObject([...Object.entries(out).filter(([k]) => k !== m.field), [m.field, ownObject([...base.filter(([k]) => k !== m.key), [m.key, m.value]])]]);
    }
  }
  return out;
}

export const mutatedMessage: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(validMessage, fc.array(mutation, { minLength: 1, maxLength: 3 }))
  .map(([message, mutations]) => mutate(message, mutations));

/** Damage done to the serialized text: cut short, a byte swapped, NUL or a lone surrogate put in. */
export const rawDamage: fc.Arbitrary<(raw: string) => string> = fc.oneof(
  fc.nat().map((n) => (raw: string) => raw.slice(0, n % Math.max(raw.length, 1))),
  fc.tuple(fc.nat(), codeUnit).map(([n, c]) => (raw: string) => raw.slice(0, n % (raw.length + 1)) + c + raw.slice((n % (raw.length + 1)) + 1)),
  fc.tuple(fc.nat(), fc.constantFrom('\u0000', '\uD800', '\\u0000', '\\uD800', '"', '\\', '}', ',', '{"__proto__":{"polluted":1}}')).map(
    ([n, s]) => (raw: string) => raw.slice(0, n % (raw.length + 1)) + s + raw.slice(n % (raw.length + 1)),
  ),
);

/** Any raw body a client might send, from noise to nearly valid. */
export const rawBody: fc.Arbitrary<string> = fc.oneof(
  nastyString,
  hostileValue.map((v) => JSON.stringify(v) ?? 'undefined'),
  mutatedMessage.map((m) => JSON.stringify(m)),
  fc.tuple(validMessage, rawDamage).map(([m, damage]) => damage(JSON.stringify(m))),
  fc.tuple(fc.oneof(nastyString, fc.constantFrom('input.video', 'HELLO', 'hello ', 'session.Start', 'event.part', 'error', 'turn.completed')), hostileValue).map(([type, rest]) =>
    JSON.stringify(rest && typeof rest === 'object' && !Array.isArray(rest) ? { ...rest, type } : { type, value: rest }),
  ),
);
