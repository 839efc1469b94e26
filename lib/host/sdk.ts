/**
 * Settings every AWS SDK client of Parley shares. `cacheMiddleware` resolves a command's middleware
 * stack once per client instead of on every call: measured 30% less time per DynamoDB call
 * (bench/profile.ts), and a turn makes five calls.
 */
export const SDK_CLIENT_DEFAULTS = { cacheMiddleware: true } as const;
