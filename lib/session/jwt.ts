import { ParleyError } from '../errors';
import type { SecretSource } from './auth';

export interface JwtOptions {
  /** HS256: the shared secret (PARLEY_JWT_SECRET, at least 32 characters). */
  secret?: SecretSource | undefined;
  /** RS256: the issuer's JSON Web Key Set (PARLEY_JWT_JWKS_URL), fetched once and cached per container. */
  jwksUrl?: string | undefined;
  /** When set, `iss` must be exactly this. */
  issuer?: string | undefined;
  /** When set, `aud` must name this. */
  audience?: string | undefined;
}

export type JwtVerdict = { ok: true; principal: string } | { ok: false; message: string };

export interface JwtVerifier {
  verify(token: string): Promise<JwtVerdict>;
}

/** Clocks drift: a token is still good this long after its `exp` (and before its `nbf`). */
const CLOCK_TOLERANCE_S = 30;

/**
 * Errors that are the token's fault. Anything else (the JWKS cannot be fetched or parsed, the
 * secret cannot be read) is the server's, and is thrown: the client gets `server.internal` or a
 * 500 at `$connect`, not a claim that its token is bad.
 */
const TOKEN_FAULTS = new Set([
  'ERR_JWT_EXPIRED',
  'ERR_JWT_CLAIM_VALIDATION_FAILED',
  'ERR_JWT_INVALID',
  'ERR_JWS_INVALID',
  'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'ERR_JOSE_ALG_NOT_ALLOWED',
  'ERR_JOSE_NOT_SUPPORTED',
  'ERR_JWKS_NO_MATCHING_KEY',
  'ERR_JWKS_MULTIPLE_MATCHING_KEYS',
  'ERR_JWK_INVALID',
]);

/** https, or http to this machine (a local identity provider, tests). */
export function jwksUrlAllowed(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' || (u.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname));
  } catch {
    return false;
  }
}

/**
 * JWT verification with jose. Each algorithm is pinned to its key: HS256 only with the shared
 * secret, RS256 only with the JWKS. So `alg: none`, another algorithm, or an HS256 token signed
 * with the RSA public key as its "secret" (algorithm confusion) are all refused. `sub` and `exp`
 * are required; `iss` and `aud` are checked when configured. The principal is `jwt:<iss>|<sub>`.
 */
export function jwtVerifier(options: JwtOptions): JwtVerifier | undefined {
  const { secret, jwksUrl, issuer, audience } = options;
  if (!secret && !jwksUrl) return undefined;
  if (jwksUrl && !jwksUrlAllowed(jwksUrl)) {
    throw new ParleyError('config.invalid', 'PARLEY_JWT_JWKS_URL must be an https URL (http only to localhost)');
  }
  const getSecret = typeof secret === 'string' ? async () => secret : secret;
  // jose is loaded on the first token, not at cold start: deployments without JWTs never load it.
  let jose: Promise<typeof import('./jwt-jose')> | undefined;
  let jwks: ReturnType<(typeof import('./jwt-jose'))['createRemoteJWKSet']> | undefined;
  const claims = {
    ...(issuer ? { issuer } : {}),
    ...(audience ? { audience } : {}),
    clockTolerance: CLOCK_TOLERANCE_S,
    requiredClaims: ['sub', 'exp'],
  };
  return {
    async verify(token) {
      const lib = await (jose ??= import('./jwt-jose'));
      let alg: unknown;
      try {
        alg = lib.decodeProtectedHeader(token).alg;
      } catch {
        return { ok: false, message: 'the token is not valid' };
      }
      try {
        let payload: import('./jwt-jose').JWTPayload;
        if (alg === 'HS256' && getSecret) {
          ({ payload } = await lib.jwtVerify(token, new TextEncoder().encode(await getSecret()), { ...claims, algorithms: ['HS256'] }));
        } else if (alg === 'RS256' && jwksUrl) {
          // Cached per container: jose refetches the set when a token names a key it has not seen (at most every 30 s).
          jwks ??= lib.createRemoteJWKSet(new URL(jwksUrl));
          ({ payload } = await lib.jwtVerify(token, jwks, { ...claims, algorithms: ['RS256'] }));
        } else {
          return { ok: false, message: 'the token is not valid' };
        }
        if (typeof payload.sub !== 'string' || !payload.sub) return { ok: false, message: 'the token is not valid' };
        return { ok: true, principal: `jwt:${escapeIssuer(payload.iss ?? '')}|${payload.sub}` };
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code === 'ERR_JWT_EXPIRED') return { ok: false, message: 'the token has expired' };
        if (typeof code === 'string' && TOKEN_FAULTS.has(code)) return { ok: false, message: 'the token is not valid' };
        throw new Error(`JWT verification could not run: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    },
  };
}

/** `|` separates issuer and subject in a principal, so an issuer cannot contain a bare one. */
const escapeIssuer = (iss: string) => iss.replace(/%/g, '%25').replace(/\|/g, '%7C');
