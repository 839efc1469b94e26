import { randomBytes, randomUUID } from 'node:crypto';

/** Port for everything random a turn makes, so tests can make it predictable. */
export interface Ids {
  uuid(): string;
  /** An unguessable secret (resume tokens): 192 bits, base64url. */
  secret(): string;
}

export const cryptoIds: Ids = {
  uuid: () => randomUUID(),
  secret: () => randomBytes(24).toString('base64url'),
};
