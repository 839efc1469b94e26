import { Logger } from '@aws-lambda-powertools/logger';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { FunctionEnv, readEnv } from '../config/env';
import { powertoolsLog, type Log } from '../observability/log';
import { emfMetricsSink, type TurnMetricsSink } from '../observability/metrics';
import { systemClock } from '../runner/ports';
import { apiKeyAuth } from '../session/auth';
import { DynamoConnectionStore } from '../session/connections';
import { cryptoIds } from '../session/ids';
import { ApiGatewaySender, managementClients } from '../transport/sender';
import { callbackEndpointOf, type WebSocketEvent } from './events';
import { SDK_CLIENT_DEFAULTS } from './sdk';

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

export const auth = apiKeyAuth(env.PARLEY_API_KEYS);

const clientFor = managementClients((endpoint) => new ApiGatewayManagementApiClient({ endpoint, ...SDK_CLIENT_DEFAULTS }));

export const senderFor = (event: WebSocketEvent) =>
  new ApiGatewaySender(clientFor(callbackEndpointOf(event)), event.requestContext.connectionId, cryptoIds.uuid);

export { systemClock as clock };
