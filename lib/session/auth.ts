import { createHash, timingSafeEqual } from 'node:crypto';

export type AuthResult = { ok: true; principal: string } | { ok: false; code: 'auth.required' | 'auth.invalid' };

/** API-key check. With no keys configured every client is the principal `public`. */
export interface ApiKeyAuth {
  readonly required: boolean;
  check(key: string | undefined): AuthResult;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export function apiKeyAuth(keys: readonly string[] | undefined): ApiKeyAuth {
  const hashes = (keys ?? []).map(sha256);
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

/** Resume tokens are stored hashed; this compares a presented token with the stored hash. */
export function resumeTokenMatches(token: string, storedHash: string): boolean {
  const a = sha256(token);
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export const hashResumeToken = (token: string): string => sha256(token).toString('hex');
