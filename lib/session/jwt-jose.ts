/**
 * The three things JWT verification uses from jose, named so that a bundle keeps only them: jwt.ts
 * imports this module on the first token, so a function without JWTs never evaluates jose.
 */
export { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
export type { JWTPayload } from 'jose';
