import { randomBytes } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { FunctionEnv, readEnv } from '../config/env';
import { powertoolsLog, type Log } from '../observability/log';
import { emfMetricsSink, type TurnMetricsSink } from '../observability/metrics';
import { systemClock } from '../runner/ports';
import { authOptionsFromEnv, createAuth, type AuthOptions } from '../session/auth';
import { DynamoConnectionStore } from '../session/connections';
import { cryptoIds } from '../session/ids';
import { ApiGatewaySender, managementClients } from '../transport/sender';
import { callbackEndpointOf, type WebSocketEvent } from './events';
import { SDK_CLIENT_DEFAULTS } from './sdk';
import { secretsManagerSecret } from './secrets';

/*
 * Cold-start wiring for the Lambda functions. Only immutable things live here (config, SDK clients,
 * the compiled map): nothing that belongs to a conversation.
 */

export const env = readEnv(FunctionEnv);

export const log: Log = powertoolsLog(
  new Logger({ serviceName: 'parley', logLevel: env.PARLEY_LOG_LEVEL }),
  { redactText: env.PARLEY_LOG_REDACT_TEXT },
);

/** Per-turn t1–t6 and timings as CloudWatch EMF: namespace Parley, dimension service (and inputKind). */
export const metrics: TurnMetricsSink = emfMetricsSink({ log });

export const dynamo = new DynamoDBClient({ ...SDK_CLIENT_DEFAULTS });

export const connections = new DynamoConnectionStore(dynamo, env.PARLEY_TABLE);

/**
 * API keys, JWTs and the resume secret. Secrets named by a Secrets Manager id (PARLEY_JWT_SECRET_ID,
 * PARLEY_RESUME_SECRET_ID, set by the stack) are fetched on first use and cached for 15 minutes.
 */
export const authOptions: AuthOptions = withResumeSecret(authOptionsFromEnv(env, (secretId) => secretsManagerSecret(secretId)));

export const auth = createAuth(authOptions);

/** Without a configured secret (the stack always sets one) tokens work in this container only: said once, when first used. */
function withResumeSecret(options: AuthOptions): AuthOptions {
  if (options.resumeSecret) return options;
  let secret: string | undefined;
  return {
    ...options,
    resumeSecret: async () => {
      if (secret === undefined) {
        secret = randomBytes(32).toString('base64url');
        log.warn('no PARLEY_RESUME_SECRET or PARLEY_RESUME_SECRET_ID: resume tokens are signed with a secret of this container only');
      }
      return secret;
    },
  };
}

const clientFor = managementClients((endpoint) => new ApiGatewayManagementApiClient({ endpoint, ...SDK_CLIENT_DEFAULTS }));

export const senderFor = (event: WebSocketEvent) =>
  new ApiGatewaySender(clientFor(callbackEndpointOf(event)), event.requestContext.connectionId, cryptoIds.uuid);

export { systemClock as clock };
