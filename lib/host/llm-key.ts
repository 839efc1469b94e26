import type { MiddlewareObj } from '@middy/core';
import secretsManager from '@middy/secrets-manager';
import type { Context } from 'aws-lambda';
import type { FunctionEnv } from '../config/env';
import type { RouteResult, WebSocketEvent } from './events';

/** Where the middlewares put the key on the Lambda context; nothing logs the context. */
const CONTEXT_KEY = 'openAiApiKey';

/** The key is fetched once and cached across invocations; a rotated key is picked up within this time. */
const KEY_CACHE_MS = 15 * 60 * 1000;

/**
 * In Lambda the OpenAI key comes from Secrets Manager (OPENAI_API_KEY_SECRET) through middy's
 * middleware; a plain OPENAI_API_KEY variable works too, for development. Only Secrets Manager:
 * every AWS SDK client a bundle imports costs ~40 ms of cold start (the bundle imports external
 * packages eagerly, so a second, optional one would cost every cold start), and one way to hold a
 * secret is enough.
 */
export function llmKeyMiddlewares(env: FunctionEnv): MiddlewareObj<WebSocketEvent, RouteResult>[] {
  if (env.OPENAI_API_KEY_SECRET) {
    const secret = env.OPENAI_API_KEY_SECRET;
    // middy caches per cacheKey for the whole process: the key names the secret, so another secret never reads a stale value.
    return [
      secretsManager({ fetchData: { [CONTEXT_KEY]: secret }, setToContext: true, cacheExpiry: KEY_CACHE_MS, cacheKey: `parley-openai:${secret}` }) as MiddlewareObj<
        WebSocketEvent,
        RouteResult
      >,
    ];
  }
  return [];
}

/** The key for this invocation: what a middleware fetched, else the plain variable. */
export function llmKeyFrom(context: Context, env: FunctionEnv): string | undefined {
  const fetched = (context as unknown as Record<string, unknown>)[CONTEXT_KEY];
  // A JSON secret ({"apiKey": "..."}) is parsed by the middleware; a plain one is the key itself.
  if (typeof fetched === 'string' && fetched) return fetched;
  if (fetched && typeof fetched === 'object' && typeof (fetched as { apiKey?: unknown }).apiKey === 'string') return (fetched as { apiKey: string }).apiKey;
  return env.OPENAI_API_KEY;
}

