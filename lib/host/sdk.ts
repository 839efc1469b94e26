/**
 * Settings every AWS SDK client of Parley shares. `cacheMiddleware` resolves a command's middleware
 * stack once per client instead of on every call: measured 30% less time per DynamoDB call
 * (bench/profile.ts), and a turn makes five calls.
 *
 * Retries: the SDK's standard mode, pinned so that no AWS_RETRY_MODE or config file can switch a
 * client to adaptive mode (which may hold requests back client-side). It retries throttling
 * (DynamoDB's ProvisionedThroughputExceededException), 5xx and transient network errors, each after
 * an exponential backoff with full jitter (a random wait up to base x 2^retry: 50 ms, 1 s for
 * throttling), within a per-client retry quota; a failed condition is an answer, never retried.
 * Attempts stay the SDK's per-service default (DynamoDB 4, the others 3).
 * tests/integration/external-faults.test.ts throttles DynamoDB through a proxy and counts them.
 */
export const SDK_CLIENT_DEFAULTS = { cacheMiddleware: true, retryMode: 'standard' } as const;
