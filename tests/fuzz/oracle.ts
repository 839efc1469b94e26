import { LIMITS } from '../../lib/protocol/v1';

/*
 * The protocol's client messages, written out by hand from the README's table (not from the zod
 * schemas), so the fuzz tests check the parser against a second reading of the rules.
 */

type Json = Record<string, unknown>;


const UUID = /^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$/;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const has = (o: Json, k: string) => Object.hasOwn(o, k);
/** Lengths count code points (a lone surrogate is one), as zod does. */
const chars = (s: string) => [...s].length;
const str = (v: unknown, min: number, max: number) => typeof v === 'string' && chars(v) >= min && chars(v) <= max;
const uuid = (v: unknown) => typeof v === 'string' && UUID.test(v);
/** An optional field: absent, or present and valid (JSON null is not absent). */
const optional = (o: Json, k: string, valid: (v: unknown) => boolean) => !has(o, k) || valid(o[k]);
const pick = (o: Json, keys: string[]): Json => Object.fromEntries(keys.filter((k) => has(o, k)).map((k) => [k, o[k]]));

function validMetadata(v: unknown): boolean {
  if (!isObject(v)) return false;
  const keys = Object.keys(v);
  return (
    keys.length <= 32 &&
    keys.every((k) => {
      const value = v[k];
      // __proto__ is refused outright: it cannot be carried as a key of a plain object.
      return k !== '__proto__' && chars(k) <= 64 && ((typeof value === 'string' && chars(value) <= 512) || (typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean');
    })
  );
}

const validAudio = (v: unknown) =>
  isObject(v) &&
  Object.keys(v).every((k) => k === 'format' || k === 'sampleRate') &&
  (v.format === 'pcm' || v.format === 'mp3') &&
  [8000, 16000, 22050, 24000].includes(v.sampleRate as number);

/**
 * The message a valid client message parses to (its known fields; unknown fields are dropped), or
 * null when it must be refused.
 */
export function expectedMessage(json: unknown): Json | null {
  if (!isObject(json) || !has(json, 'type')) return null;
  switch (json.type) {
    case 'hello': {
      const auth = json.auth;
      if (!str(json.version, 1, 16)) return null;
      // An API key or a JWT.
      const validAuth = (a: unknown) => isObject(a) && optional(a, 'apiKey', (k) => str(k, 1, 256)) && optional(a, 'token', (t) => str(t, 1, 8192));
      if (has(json, 'auth') && !validAuth(auth)) return null;
      const out = pick(json, ['type', 'version']);
      if (has(json, 'auth')) out.auth = pick(auth as Json, ['apiKey', 'token']);
      return out;
    }
    case 'session.start': {
      if (!optional(json, 'sessionId', uuid) || !optional(json, 'resumeToken', (t) => str(t, 16, 128)) || !optional(json, 'lastTurnId', uuid)) return null;
      if (has(json, 'sessionId') !== has(json, 'resumeToken')) return null;
      if (!optional(json, 'metadata', validMetadata) || !optional(json, 'audio', validAudio)) return null;
      return pick(json, ['type', 'sessionId', 'resumeToken', 'lastTurnId', 'metadata', 'audio']);
    }
    case 'input.text': {
      if (!uuid(json.turnId) || !optional(json, 'sessionId', uuid)) return null;
      if (!str(json.text, 0, 4000) || (json.text as string).trim().length === 0) return null;
      return pick(json, ['type', 'turnId', 'sessionId', 'text']);
    }
    case 'response.cancel': {
      const played = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
      if (!uuid(json.turnId) || !optional(json, 'playedMs', played)) return null;
      return pick(json, ['type', 'turnId', 'playedMs']);
    }
    case 'session.stop':
      return optional(json, 'reason', (r) => str(r, 0, 200)) ? pick(json, ['type', 'reason']) : null;
    default:
      return null;
  }
}

/** What parseClientMessage must answer for a raw body: the message, or the error code. */
export function expectedParse(raw: string): { ok: true; message: Json } | { ok: false; code: string } {
  if (Buffer.byteLength(raw, 'utf8') > LIMITS.clientMessageBytes) return { ok: false, code: 'protocol.too_large' };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, code: 'protocol.invalid_json' };
  }
  const message = expectedMessage(json);
  return message ? { ok: true, message } : { ok: false, code: 'protocol.invalid_message' };
}
