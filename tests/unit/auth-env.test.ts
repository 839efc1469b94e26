import { describe, expect, it } from 'vitest';
import { configError } from '../support/errors';
import { readEnv, FunctionEnv, LocalEnv } from '../../lib/config/env';
import { apiKeyAuth, hashResumeToken, resumeTokenMatches } from '../../lib/session/auth';

describe('apiKeyAuth', () => {
  it('without keys every client is public', () => {
    for (const keys of [undefined, []]) {
      const auth = apiKeyAuth(keys);
      expect(auth.required).toBe(false);
      expect(auth.check(undefined)).toEqual({ ok: true, principal: 'public' });
      expect(auth.check('anything-at-all')).toEqual({ ok: true, principal: 'public' });
    }
  });

  describe('with keys', () => {
    const keyA = 'alpha-secret-key';
    const keyB = 'bravo-secret-key';
    const auth = apiKeyAuth([keyA, keyB]);

    it('is required', () => {
      expect(auth.required).toBe(true);
    });

    it('a missing key is auth.required', () => {
      expect(auth.check(undefined)).toEqual({ ok: false, code: 'auth.required' });
      expect(auth.check('')).toEqual({ ok: false, code: 'auth.required' });
    });

    it('a wrong key is auth.invalid', () => {
      expect(auth.check('wrong-secret-key')).toEqual({ ok: false, code: 'auth.invalid' });
      expect(auth.check(keyA.slice(0, -1))).toEqual({ ok: false, code: 'auth.invalid' });
      expect(auth.check(keyA + 'x')).toEqual({ ok: false, code: 'auth.invalid' });
      expect(auth.check(keyA.toUpperCase())).toEqual({ ok: false, code: 'auth.invalid' });
    });

    it('a right key gives a key: principal that does not reveal the key', () => {
      const result = auth.check(keyA);
      expect(result.ok).toBe(true);
      if (!result.ok) return;
      expect(result.principal).toMatch(/^key:/);
      expect(result.principal).not.toContain(keyA);
      expect(result.principal).not.toContain('alpha');
      expect(result.principal.length).toBeGreaterThan('key:'.length + 7);
    });

    it('the principal is stable for the same key (also across instances) and differs between keys', () => {
      const a1 = auth.check(keyA);
      const a2 = apiKeyAuth([keyB, keyA]).check(keyA);
      const b = auth.check(keyB);
      expect(a1.ok && a2.ok && b.ok).toBe(true);
      if (!a1.ok || !a2.ok || !b.ok) return;
      expect(a1.principal).toBe(a2.principal);
      expect(b.principal).not.toBe(a1.principal);
      expect(b.principal).toMatch(/^key:/);
    });

    it('accepts keys of any length without throwing (constant-time compare on hashes)', () => {
      expect(auth.check('x')).toEqual({ ok: false, code: 'auth.invalid' });
      expect(auth.check('y'.repeat(1000))).toEqual({ ok: false, code: 'auth.invalid' });
    });
  });
});

describe('resume tokens', () => {
  const token = 'kq3J8v0Zr9XWm2Lp5Tn7Yb4Hc6Fd1Ge';

  it('hashResumeToken gives a stable 64-hex hash that is not the token', () => {
    const hash = hashResumeToken(token);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hash).toBe(hashResumeToken(token));
    expect(hash).not.toContain(token);
    expect(hashResumeToken(token + 'x')).not.toBe(hash);
  });

  it('resumeTokenMatches accepts the token against its hash', () => {
    expect(resumeTokenMatches(token, hashResumeToken(token))).toBe(true);
  });

  it('resumeTokenMatches rejects another token, the hash itself, and malformed hashes', () => {
    const hash = hashResumeToken(token);
    expect(resumeTokenMatches(token.slice(1), hash)).toBe(false);
    expect(resumeTokenMatches(hash, hash)).toBe(false);
    expect(resumeTokenMatches(token, '')).toBe(false);
    expect(resumeTokenMatches(token, hash.slice(0, 62))).toBe(false);
    expect(resumeTokenMatches(token, 'zz' + hash.slice(2))).toBe(false);
    expect(resumeTokenMatches(token, token)).toBe(false);
  });
});

describe('readEnv', () => {

  it('treats a variable set to an empty string as unset', () => {
    expect(readEnv(LocalEnv, { PARLEY_PORT: '', PARLEY_SESSION_TTL_HOURS: ' ' })).toMatchObject({
      PARLEY_PORT: 8787,
      PARLEY_SESSION_TTL_HOURS: 24 * 30,
    });
  });

  it('FunctionEnv defaults', () => {
    expect(readEnv(FunctionEnv, {})).toEqual({
      PARLEY_TABLE: 'parley',
      PARLEY_API_KEYS: [],
      PARLEY_SESSION_TTL_HOURS: 24 * 30,
      PARLEY_RATE_PER_SECOND: 5,
      PARLEY_RATE_BURST: 20,
      PARLEY_MAX_TURNS: 500,
      PARLEY_MAX_SESSION_AGE_HOURS: 24,
      PARLEY_LOG_LEVEL: 'INFO',
      PARLEY_LOG_REDACT_TEXT: false,
      OPENAI_MODEL: 'gpt-4o-mini',
      PARLEY_LLM_BUDGET_MS: 20_000,
      PARLEY_SAFETY: 'auto',
      PARLEY_TTS: 'auto',
      PARLEY_SAFETY_BLOCKED: [],
    });
  });

  it('LocalEnv defaults', () => {
    expect(readEnv(LocalEnv, {})).toEqual({
      PARLEY_TABLE: 'parley',
      PARLEY_API_KEYS: [],
      PARLEY_SESSION_TTL_HOURS: 24 * 30,
      PARLEY_RATE_PER_SECOND: 5,
      PARLEY_RATE_BURST: 20,
      PARLEY_MAX_TURNS: 500,
      PARLEY_MAX_SESSION_AGE_HOURS: 24,
      PARLEY_LOG_LEVEL: 'WARN',
      PARLEY_LOG_REDACT_TEXT: false,
      PARLEY_HOST: '127.0.0.1',
      PARLEY_PORT: 8787,
      PARLEY_DYNAMODB_PORT: 0,
      PARLEY_DATA_DIR: '.parley-data',
      PARLEY_DIALOGUE_MAP: 'dialogue_map.json',
      OPENAI_MODEL: 'gpt-4o-mini',
      PARLEY_LLM_BUDGET_MS: 20_000,
      PARLEY_SAFETY: 'auto',
      PARLEY_TTS: 'auto',
      PARLEY_SAFETY_BLOCKED: [],
    });
  });

  it('reads and coerces set values, ignoring unrelated variables', () => {
    const env = readEnv(LocalEnv, {
      PARLEY_TABLE: 'my-table',
      PARLEY_SESSION_TTL_HOURS: '48',
      PARLEY_PORT: '9000',
      PARLEY_LOG_LEVEL: 'DEBUG',
      PATH: '/usr/bin',
    });
    expect(env.PARLEY_TABLE).toBe('my-table');
    expect(env.PARLEY_SESSION_TTL_HOURS).toBe(48);
    expect(env.PARLEY_PORT).toBe(9000);
    expect(env.PARLEY_LOG_LEVEL).toBe('DEBUG');
    expect(env).not.toHaveProperty('PATH');
  });

  it('splits PARLEY_API_KEYS on commas, trimming and dropping empty entries', () => {
    expect(readEnv(FunctionEnv, { PARLEY_API_KEYS: ' first-key-123 ,second-key-456,, ' }).PARLEY_API_KEYS).toEqual([
      'first-key-123',
      'second-key-456',
    ]);
    expect(readEnv(FunctionEnv, { PARLEY_API_KEYS: '' }).PARLEY_API_KEYS).toEqual([]);
    expect(readEnv(FunctionEnv, { PARLEY_API_KEYS: ' , ' }).PARLEY_API_KEYS).toEqual([]);
  });

  it.each([
    [FunctionEnv, 'PARLEY_SESSION_TTL_HOURS', '0'],
    [FunctionEnv, 'PARLEY_SESSION_TTL_HOURS', '-3'],
    [FunctionEnv, 'PARLEY_SESSION_TTL_HOURS', 'forever'],
    [FunctionEnv, 'PARLEY_API_KEYS', 'good-key-1234,abc'],
    [FunctionEnv, 'PARLEY_LOG_LEVEL', 'verbose'],
    [FunctionEnv, 'PARLEY_LOG_REDACT_TEXT', 'maybe'],
    [FunctionEnv, 'PARLEY_TABLE', 'ab'],
    [LocalEnv, 'PARLEY_PORT', 'abc'],
    [LocalEnv, 'PARLEY_PORT', '70000'],
    [LocalEnv, 'PARLEY_PORT', '80.5'],
    [LocalEnv, 'PARLEY_DYNAMODB_PORT', '-1'],
  ] as const)('rejects %#: %s=%s with config.invalid naming the variable', (schema, name, value) => {
    const err = configError(() => readEnv(schema, { [name]: value }));
    expect(err.message).toContain(name);
  });

  it('does not leak an API key into the error message', () => {
    const err = configError(() => readEnv(FunctionEnv, { PARLEY_API_KEYS: 'long-enough-key,Q7#' }));
    expect(err.message).toContain('PARLEY_API_KEYS');
    expect(err.message).not.toContain('Q7#');
    expect(err.message).not.toContain('long-enough-key');
  });

  it('reads process.env by default', () => {
    const saved = process.env.PARLEY_TABLE;
    process.env.PARLEY_TABLE = 'from-process-env';
    try {
      expect(readEnv(FunctionEnv).PARLEY_TABLE).toBe('from-process-env');
    } finally {
      if (saved === undefined) delete process.env.PARLEY_TABLE;
      else process.env.PARLEY_TABLE = saved;
    }
  });
});
