import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { configError } from '../support/errors';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { FunctionEnv, LocalEnv, readEnv } from '../../lib/config/env';
import { secretsManagerSecret } from '../../lib/host/secrets';
import { apiKeyAuth, authOptionsFromEnv, createAuth, describeAuth, hashApiKey, resumeTokenFor, resumeTokenValid } from '../../lib/session/auth';

const KEY = 'a-long-api-key-0123456789';


describe('API keys stored hashed', () => {
  it('a key matches its sha256 hash, with the same principal as the plaintext key', () => {
    const fromHash = apiKeyAuth([], [hashApiKey(KEY)]).check(KEY);
    const fromKey = apiKeyAuth([KEY]).check(KEY);
    expect(fromHash).toEqual({ ok: true, principal: `key:${hashApiKey(KEY).slice(0, 16)}` });
    expect(fromHash).toEqual(fromKey);
    expect(apiKeyAuth([], [hashApiKey(KEY).toUpperCase()]).check(KEY)).toEqual(fromKey);
  });

  it('refuses another key, the hash itself, and nothing', () => {
    const auth = apiKeyAuth([], [hashApiKey(KEY)]);
    expect(auth.required).toBe(true);
    expect(auth.check(`${KEY}x`)).toEqual({ ok: false, code: 'auth.invalid' });
    expect(auth.check(hashApiKey(KEY))).toEqual({ ok: false, code: 'auth.invalid' });
    expect(auth.check(undefined)).toEqual({ ok: false, code: 'auth.required' });
  });

  it('a malformed hash is a configuration error that does not echo it', () => {
    const err = configError(() => apiKeyAuth([], ['my-secret-key-pasted-by-mistake']));
    expect(err.message).not.toContain('my-secret-key');
  });
});

describe('createAuth', () => {
  it('open (nothing configured): everyone is public, whatever they send', async () => {
    const auth = createAuth();
    expect(auth.required).toBe(false);
    await expect(auth.authenticate(undefined)).resolves.toEqual({ ok: true, principal: 'public' });
    await expect(auth.authenticate({ apiKey: 'x', token: 'y' })).resolves.toEqual({ ok: true, principal: 'public' });
  });

  it('says what is required, and a token where only keys are configured is invalid', async () => {
    const auth = createAuth({ apiKeyHashes: [hashApiKey(KEY)] });
    await expect(auth.authenticate({})).resolves.toEqual({ ok: false, code: 'auth.required', message: 'an API key (?apiKey= or hello.auth.apiKey) is required' });
    await expect(auth.authenticate({ apiKey: KEY })).resolves.toMatchObject({ ok: true });
    await expect(auth.authenticate({ apiKey: 'wrong-key-000000' })).resolves.toEqual({ ok: false, code: 'auth.invalid', message: 'the API key is not valid' });
    await expect(auth.authenticate({ token: 'a.b.c' })).resolves.toMatchObject({ ok: false, code: 'auth.invalid' });
    const both = createAuth({ apiKeys: [KEY], jwt: { secret: 's'.repeat(32) } });
    await expect(both.authenticate(undefined)).resolves.toMatchObject({ code: 'auth.required', message: expect.stringMatching(/API key .* or a token/) });
  });

  it('resume tokens: deterministic per (secret, id), different for another id or secret, checked in constant time', async () => {
    const auth = createAuth({ resumeSecret: 'x'.repeat(40) });
    const id = '6f1c1d0e-1111-4222-8333-944444444444';
    const token = await auth.resumeToken(id);
    expect(token).toBe(resumeTokenFor('x'.repeat(40), id));
    expect(await auth.resumeToken(id)).toBe(token);
    expect(await auth.resumeToken('6f1c1d0e-1111-4222-8333-944444444445')).not.toBe(token);
    expect(await auth.resumeTokenIssued(id, token)).toBe(true);
    expect(await auth.resumeTokenIssued(id, token.slice(0, -1))).toBe(false);
    expect(await auth.resumeTokenIssued(id, '')).toBe(false);
    expect(resumeTokenValid('y'.repeat(40), id, token)).toBe(false);
    // Without a secret: a random one per instance, so two instances never agree.
    expect(await createAuth().resumeToken(id)).not.toBe(await createAuth().resumeToken(id));
  });
});

describe('describeAuth (the start-up banner line)', () => {
  it('says open when nothing is configured', () => {
    expect(describeAuth({})).toMatch(/^open: no API key or JWT configured/);
    expect(describeAuth({ apiKeys: [] })).toMatch(/^open/);
  });

  it('names what is configured, never a key, hash or secret', () => {
    const line = describeAuth({
      apiKeys: [KEY],
      apiKeyHashes: [hashApiKey('another-key-123456')],
      jwt: { secret: 'jwt-secret-value-0123456789-abcdefgh', jwksUrl: 'https://id.example.com/jwks.json', issuer: 'https://id.example.com/', audience: 'parley' },
      resumeSecret: 'resume-secret-value-0123456789-abcdef',
    });
    expect(line).toBe('2 API keys, JWT HS256, JWT RS256 (JWKS https://id.example.com/jwks.json) (issuer https://id.example.com/, audience parley)');
    for (const secret of [KEY, hashApiKey('another-key-123456'), 'jwt-secret-value', 'resume-secret-value']) expect(line).not.toContain(secret);
  });
});

describe('authentication settings in the environment', () => {
  it('reads PARLEY_API_KEY_HASHES (trimmed, lower-cased) and leaves it unset when absent', () => {
    const h = hashApiKey(KEY);
    expect(readEnv(FunctionEnv, { PARLEY_API_KEY_HASHES: ` ${h.toUpperCase()} ,,${h} ` }).PARLEY_API_KEY_HASHES).toEqual([h, h]);
    expect(readEnv(FunctionEnv, {}).PARLEY_API_KEY_HASHES).toBeUndefined();
  });

  it.each([
    ['PARLEY_API_KEY_HASHES', 'deadbeef'],
    ['PARLEY_JWT_SECRET', 'too-short-secret'],
    ['PARLEY_RESUME_SECRET', 'too-short-secret'],
    ['PARLEY_JWT_JWKS_URL', 'http://id.example.com/jwks.json'],
    ['PARLEY_JWT_JWKS_URL', 'not a url'],
  ])('rejects %s=%s naming the variable, never the value', (name, value) => {
    const err = configError(() => readEnv(FunctionEnv, { [name]: value }));
    expect(err.message).toContain(name);
    expect(err.message).not.toContain(value);
  });

  it('allows a JWKS over http only on this machine', () => {
    expect(readEnv(LocalEnv, { PARLEY_JWT_JWKS_URL: 'http://127.0.0.1:9000/jwks.json' }).PARLEY_JWT_JWKS_URL).toBe('http://127.0.0.1:9000/jwks.json');
    expect(readEnv(LocalEnv, { PARLEY_JWT_JWKS_URL: 'http://localhost:9000/jwks.json' }).PARLEY_JWT_JWKS_URL).toBe('http://localhost:9000/jwks.json');
  });

  it('authOptionsFromEnv: plain values as they are, Secrets Manager ids as loaders called only when used', async () => {
    const loaded: string[] = [];
    const load = (id: string) => async () => {
      loaded.push(id);
      return `value-of-${id}`;
    };
    const env = readEnv(FunctionEnv, {
      PARLEY_API_KEYS: KEY,
      PARLEY_JWT_SECRET_ID: 'jwt-secret-arn',
      PARLEY_JWT_ISSUER: 'https://id.example.com/',
      PARLEY_RESUME_SECRET_ID: 'resume-secret-arn',
    });
    const options = authOptionsFromEnv(env, load);
    expect(loaded).toEqual([]);
    expect(options).toMatchObject({ apiKeys: [KEY], jwt: { issuer: 'https://id.example.com/' } });
    const auth = createAuth(options);
    expect(await auth.resumeToken('s')).toBe(resumeTokenFor('value-of-resume-secret-arn', 's'));
    expect(loaded).toEqual(['resume-secret-arn']);

    const plain = authOptionsFromEnv(readEnv(FunctionEnv, { PARLEY_RESUME_SECRET: 'r'.repeat(32) }), load);
    expect(plain.resumeSecret).toBe('r'.repeat(32));
    expect(plain.jwt).toBeUndefined();
  });

  it('authOptionsFromEnv: a secret set both ways, or JWT claims with no key to verify them, is an error', () => {
    const load = () => async () => 'x';
    const both = configError(() => authOptionsFromEnv(readEnv(FunctionEnv, { PARLEY_RESUME_SECRET: 'r'.repeat(32), PARLEY_RESUME_SECRET_ID: 'arn' }), load));
    expect(both.message).toContain('PARLEY_RESUME_SECRET');
    expect(both.message).not.toContain('r'.repeat(32));
    configError(() => authOptionsFromEnv(readEnv(FunctionEnv, { PARLEY_JWT_SECRET: 'j'.repeat(32), PARLEY_JWT_SECRET_ID: 'arn' }), load));
    const claims = configError(() => authOptionsFromEnv(readEnv(FunctionEnv, { PARLEY_JWT_AUDIENCE: 'parley' }), load));
    expect(claims.message).toContain('PARLEY_JWT_AUDIENCE');
  });
});

describe('secretsManagerSecret', () => {
  const sm = mockClient(SecretsManagerClient);
  afterEach(() => sm.reset());

  it('fetches on first use, caches for 15 minutes, fetches again after', async () => {
    let now = 1_000_000;
    sm.on(GetSecretValueCommand, { SecretId: 'arn:resume' }).resolvesOnce({ SecretString: 'first' }).resolves({ SecretString: 'second' });
    const secret = secretsManagerSecret('arn:resume', () => now);
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(0);
    expect(await secret()).toBe('first');
    now += 14 * 60_000;
    expect(await secret()).toBe('first');
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    now += 2 * 60_000;
    expect(await secret()).toBe('second');
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  });

  it('does not cache a failure, and refuses a secret with no string', async () => {
    sm.on(GetSecretValueCommand).rejectsOnce(new Error('throttled')).resolvesOnce({}).resolves({ SecretString: 'ok' });
    const secret = secretsManagerSecret('arn:x');
    await expect(secret()).rejects.toThrow('throttled');
    await expect(secret()).rejects.toThrow(/holds no string/);
    await expect(secret()).resolves.toBe('ok');
  });
});
