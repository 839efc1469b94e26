import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FunctionEnv } from '../config/env';
import { ParleyError } from '../errors';
import { jwtVerifier, type JwtOptions } from './jwt';

export type { JwtOptions } from './jwt';

export type AuthResult = { ok: true; principal: string } | { ok: false; code: 'auth.required' | 'auth.invalid' };

/** What a client authenticates with: `?apiKey=` / `?token=` at `$connect`, or `hello.auth`. */
export interface Credentials {
  apiKey?: string | undefined;
  token?: string | undefined;
}

/** The verdict on a client's credentials, with the message the client is told when it fails. */
export type AuthOutcome = { ok: true; principal: string } | { ok: false; code: 'auth.required' | 'auth.invalid'; message: string };

/** A secret as configured: the value itself, or a loader (Secrets Manager in Lambda) that caches it. */
export type SecretSource = string | (() => Promise<string>);

export interface AuthOptions {
  /** Plaintext API keys (PARLEY_API_KEYS, a development convenience): hashed when loaded. */
  apiKeys?: readonly string[] | undefined;
  /** SHA-256 (hex) of the API keys (PARLEY_API_KEY_HASHES): what a deployment configures. */
  apiKeyHashes?: readonly string[] | undefined;
  /** JWTs (HS256 with a shared secret, RS256 with a JWKS); unset: no tokens. */
  jwt?: JwtOptions | undefined;
  /**
   * The secret resume tokens are an HMAC with (PARLEY_RESUME_SECRET). Unset: a random secret for
   * this process only, so tokens stop working when it restarts (fine for tests, not for a deployment).
   */
  resumeSecret?: SecretSource | undefined;
}

/** Who may connect, and the resume tokens of the sessions they open. */
export interface Auth {
  /** Whether a client must present credentials; when false everyone is the principal `public`. */
  readonly required: boolean;
  authenticate(credentials: Credentials | undefined): Promise<AuthOutcome>;
  /** The session's resume token: HMAC-SHA256(secret, "parley.resume.v1:" + sessionId), base64url. */
  resumeToken(sessionId: string): Promise<string>;
  /** Whether `token` is the resume token this server issues for `sessionId` (constant time). */
  resumeTokenIssued(sessionId: string, token: string): Promise<boolean>;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();
const SHA256_HEX = /^[0-9a-f]{64}$/i;

/** The low-level API-key check (synchronous). With no keys configured every client is `public`. */
export interface ApiKeyAuth {
  readonly required: boolean;
  check(key: string | undefined): AuthResult;
}

/** Checks API keys against their SHA-256 hashes; plaintext `keys` are hashed here and not kept. */
export function apiKeyAuth(keys: readonly string[] | undefined, keyHashes: readonly string[] = []): ApiKeyAuth {
  for (const h of keyHashes) {
    // Never echo the value: a hash is not secret, but a key pasted here by mistake would be.
    if (!SHA256_HEX.test(h)) throw new ParleyError('config.invalid', 'an API key hash is not 64 hex digits (sha256 of the key)');
  }
  const hashes = [...(keys ?? []).map(sha256), ...keyHashes.map((h) => Buffer.from(h, 'hex'))];
  return {
    required: hashes.length > 0,
    check(key) {
      if (hashes.length === 0) return { ok: true, principal: 'public' };
      if (!key) return { ok: false, code: 'auth.required' };
      const candidate = sha256(key);
      // Compare hashes in constant time so response timing does not reveal a key's prefix.
      const match = hashes.some((h) => timingSafeEqual(h, candidate));
      // The principal names the key without revealing it, so sessions can be bound to it.
      return match ? { ok: true, principal: `key:${candidate.toString('hex').slice(0, 16)}` } : { ok: false, code: 'auth.invalid' };
    },
  };
}

/** The hash to configure in PARLEY_API_KEY_HASHES for a key. */
export const hashApiKey = (key: string): string => sha256(key).toString('hex');

/** Client authentication (API keys and/or JWTs) and resume tokens, as configured. */
export function createAuth(options: AuthOptions = {}): Auth {
  const keys = apiKeyAuth(options.apiKeys, options.apiKeyHashes);
  const jwt = options.jwt ? jwtVerifier(options.jwt) : undefined;
  const required = keys.required || jwt !== undefined;
  const secret = secretGetter(options.resumeSecret ?? randomBytes(32).toString('base64url'));
  const ways = [keys.required ? 'an API key (?apiKey= or hello.auth.apiKey)' : '', jwt ? 'a token (?token= or hello.auth.token)' : ''].filter(Boolean);
  const requiredMessage = `${ways.join(' or ')} is required`;
  const invalid = (message: string): AuthOutcome => ({ ok: false, code: 'auth.invalid', message });
  return {
    required,
    async authenticate(credentials) {
      if (!required) return { ok: true, principal: 'public' };
      if (credentials?.token) {
        if (!jwt) return invalid('the token is not valid');
        const verdict = await jwt.verify(credentials.token);
        return verdict.ok ? verdict : invalid(verdict.message);
      }
      if (credentials?.apiKey) {
        // With no keys configured the check lets anyone in as `public`: here only JWTs are.
        if (!keys.required) return invalid('the API key is not valid');
        const verdict = keys.check(credentials.apiKey);
        return verdict.ok ? verdict : invalid('the API key is not valid');
      }
      return { ok: false, code: 'auth.required', message: requiredMessage };
    },
    async resumeToken(sessionId) {
      return resumeTokenFor(await secret(), sessionId);
    },
    async resumeTokenIssued(sessionId, token) {
      return resumeTokenValid(await secret(), sessionId, token);
    },
  };
}

type AuthEnv = Pick<
  FunctionEnv,
  | 'PARLEY_API_KEYS'
  | 'PARLEY_API_KEY_HASHES'
  | 'PARLEY_JWT_SECRET'
  | 'PARLEY_JWT_SECRET_ID'
  | 'PARLEY_JWT_JWKS_URL'
  | 'PARLEY_JWT_ISSUER'
  | 'PARLEY_JWT_AUDIENCE'
  | 'PARLEY_RESUME_SECRET'
  | 'PARLEY_RESUME_SECRET_ID'
>;

/**
 * The environment's authentication settings. `load` turns a Secrets Manager secret id into a
 * loader (lib/host/secrets.ts). A secret given both ways, or JWT claims with no way to verify a
 * JWT, is a configuration error naming the variables, never their values.
 */
export function authOptionsFromEnv(env: AuthEnv, load: (secretId: string) => () => Promise<string>): AuthOptions {
  const either = (plain: string | undefined, id: string | undefined, name: string): SecretSource | undefined => {
    if (plain && id) throw new ParleyError('config.invalid', `set ${name} or ${name}_ID, not both`);
    return plain ?? (id ? load(id) : undefined);
  };
  const jwtSecret = either(env.PARLEY_JWT_SECRET, env.PARLEY_JWT_SECRET_ID, 'PARLEY_JWT_SECRET');
  if (!jwtSecret && !env.PARLEY_JWT_JWKS_URL && (env.PARLEY_JWT_ISSUER || env.PARLEY_JWT_AUDIENCE)) {
    throw new ParleyError('config.invalid', 'PARLEY_JWT_ISSUER and PARLEY_JWT_AUDIENCE need PARLEY_JWT_SECRET or PARLEY_JWT_JWKS_URL');
  }
  const jwt: JwtOptions | undefined =
    jwtSecret || env.PARLEY_JWT_JWKS_URL
      ? {
          ...(jwtSecret ? { secret: jwtSecret } : {}),
          ...(env.PARLEY_JWT_JWKS_URL ? { jwksUrl: env.PARLEY_JWT_JWKS_URL } : {}),
          ...(env.PARLEY_JWT_ISSUER ? { issuer: env.PARLEY_JWT_ISSUER } : {}),
          ...(env.PARLEY_JWT_AUDIENCE ? { audience: env.PARLEY_JWT_AUDIENCE } : {}),
        }
      : undefined;
  const resumeSecret = either(env.PARLEY_RESUME_SECRET, env.PARLEY_RESUME_SECRET_ID, 'PARLEY_RESUME_SECRET');
  return {
    apiKeys: env.PARLEY_API_KEYS,
    ...(env.PARLEY_API_KEY_HASHES?.length ? { apiKeyHashes: env.PARLEY_API_KEY_HASHES } : {}),
    ...(jwt ? { jwt } : {}),
    ...(resumeSecret ? { resumeSecret } : {}),
  };
}

/** One line on what authenticates clients, for the start-up banner; names no key and no secret. */
export function describeAuth(options: AuthOptions): string {
  const keyCount = (options.apiKeys?.length ?? 0) + (options.apiKeyHashes?.length ?? 0);
  const jwt = options.jwt;
  const parts = [
    keyCount ? `${keyCount} API key${keyCount === 1 ? '' : 's'}` : '',
    jwt?.secret ? 'JWT HS256' : '',
    jwt?.jwksUrl ? `JWT RS256 (JWKS ${jwt.jwksUrl})` : '',
  ].filter(Boolean);
  if (!parts.length) return 'open: no API key or JWT configured, so every client is let in (PARLEY_API_KEYS, PARLEY_JWT_SECRET)';
  const claims = [jwt && (jwt.secret || jwt.jwksUrl) && jwt.issuer ? `issuer ${jwt.issuer}` : '', jwt && (jwt.secret || jwt.jwksUrl) && jwt.audience ? `audience ${jwt.audience}` : '']
    .filter(Boolean)
    .join(', ');
  return `${parts.join(', ')}${claims ? ` (${claims})` : ''}`;
}

// ---------------------------------------------------------------------------------------------------
// Resume tokens

/** Domain separation: the secret could sign other things one day; a resume token is only this. */
const RESUME_CONTEXT = 'parley.resume.v1:';

/**
 * What a session's META holds in `resumeTokenHash` when its token is the HMAC of its id: there is
 * no hash to store. Not 64 hex digits, so no token matches it as a stored hash.
 */
export const RESUME_TOKEN_HMAC = 'hmac-sha256:v1';

export const resumeTokenFor = (secret: string, sessionId: string): string =>
  createHmac('sha256', secret).update(RESUME_CONTEXT + sessionId).digest('base64url');

/** Constant time in the token's content (both sides hashed to the same length first). */
export function resumeTokenValid(secret: string, sessionId: string, token: string): boolean {
  return timingSafeEqual(sha256(resumeTokenFor(secret, sessionId)), sha256(token));
}

/** Sessions created before resume tokens were HMACs stored SHA-256 of a random token; they still resume. */
export function resumeTokenMatches(token: string, storedHash: string): boolean {
  if (!SHA256_HEX.test(storedHash)) return false;
  const a = sha256(token);
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export const hashResumeToken = (token: string): string => sha256(token).toString('hex');

/** A secret source as a getter; a loader is called on each use and caches on its own. */
export function secretGetter(source: SecretSource): () => Promise<string> {
  return typeof source === 'string' ? async () => source : source;
}
