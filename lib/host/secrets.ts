import { SDK_CLIENT_DEFAULTS } from './sdk';

/** A fetched secret is kept this long per container; a rotated secret is picked up within it. */
const SECRET_CACHE_MS = 15 * 60 * 1000;

/**
 * A Secrets Manager secret (id or ARN, holding a plain string) as a loader: fetched on first use,
 * not at cold start, then cached. The SDK client is imported on that first use too, so a function
 * that never needs the secret (a resume or an HS256 token is what needs it) never pays its import.
 * A failed fetch is not cached: the next use tries again. The value is never logged.
 */
export function secretsManagerSecret(secretId: string, now: () => number = Date.now): () => Promise<string> {
  let cached: { value: Promise<string>; until: number } | undefined;
  return () => {
    if (cached && now() < cached.until) return cached.value;
    const value = fetchSecret(secretId);
    cached = { value, until: now() + SECRET_CACHE_MS };
    value.catch(() => {
      if (cached?.value === value) cached = undefined;
    });
    return value;
  };
}

let client: import('@aws-sdk/client-secrets-manager').SecretsManagerClient | undefined;

async function fetchSecret(secretId: string): Promise<string> {
  const { SecretsManagerClient, GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
  client ??= new SecretsManagerClient({ ...SDK_CLIENT_DEFAULTS });
  const { SecretString } = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
  if (!SecretString) throw new Error(`the secret ${secretId} holds no string`);
  return SecretString;
}
