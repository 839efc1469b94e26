import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import type { RouteResult, WebSocketEvent } from '../../lib/host/events';
import { llmKeyFrom, llmKeyMiddlewares } from '../../lib/host/llm-key';

// Lambda always sets the region; middy builds its SDK clients on first use.
process.env.AWS_REGION ??= 'us-east-1';

/** The Lambda's OpenAI key: fetched by middy from Secrets Manager, cached across invocations. */
describe('the OpenAI key in Lambda', () => {
  const secrets = mockClient(SecretsManagerClient);
  afterEach(() => {
    secrets.reset();
  });

  const event = { requestContext: { connectionId: 'c', routeKey: '$default' } } as unknown as WebSocketEvent;
  const context = () => ({ getRemainingTimeInMillis: () => 10_000 }) as unknown as Context;
  const handlerFor = (vars: Record<string, string>) => {
    const env = readEnv(FunctionEnv, vars);
    return middy<WebSocketEvent, RouteResult>()
      .use(llmKeyMiddlewares(env))
      .handler(async (_e, ctx) => ({ statusCode: 200, body: llmKeyFrom(ctx, env) }));
  };

  it('reads a plain secret once and reuses it across invocations', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: 'sk-from-secret' });
    const handler = handlerFor({ OPENAI_API_KEY_SECRET: 'parley/openai' });
    expect((await handler(event, context())).body).toBe('sk-from-secret');
    expect((await handler(event, context())).body).toBe('sk-from-secret');
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    expect(secrets.commandCalls(GetSecretValueCommand)[0]!.args[0].input).toMatchObject({ SecretId: 'parley/openai' });
  });

  it('takes apiKey from a JSON secret', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: '{"apiKey":"sk-json"}' });
    expect((await handlerFor({ OPENAI_API_KEY_SECRET: 'parley/openai-json' })(event, context())).body).toBe('sk-json');
  });

  it('falls back to OPENAI_API_KEY, and to no key at all (no LLM)', async () => {
    expect((await handlerFor({ OPENAI_API_KEY: 'sk-plain' })(event, context())).body).toBe('sk-plain');
    expect((await handlerFor({})(event, context())).body).toBeUndefined();
    expect(secrets.calls()).toHaveLength(0);
  });
});
