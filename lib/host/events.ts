import type { APIGatewayProxyWebsocketEventV2 } from 'aws-lambda';

/** The event API Gateway passes to a WebSocket route integration. */
export type WebSocketEvent = APIGatewayProxyWebsocketEventV2;

/** `$connect` also carries the handshake's query string and headers. */
export type ConnectEvent = WebSocketEvent & {
  queryStringParameters?: Record<string, string | undefined> | null;
  headers?: Record<string, string | undefined> | null;
};

export interface RouteResult {
  statusCode: number;
  body?: string;
}

/** The @connections endpoint of the API and stage that delivered the event (AWS's own URL scheme). */
export const callbackEndpointOf = (event: WebSocketEvent): string =>
  `https://${event.requestContext.domainName}/${event.requestContext.stage}`;

/**
 * The request template (VTL) of the `$default` route in AWS (infra/parley-construct.ts). That route is
 * an AWS integration calling Lambda's Invoke API with `X-Amz-Invocation-Type: Event`: API Gateway
 * renders this template into the invocation's payload, acknowledges the message at once, and the turn
 * function runs on its own, free of the 29 s integration timeout. The payload is the part of a proxy
 * event the turn handler reads, so the handler takes either.
 *
 * Only the body comes from the client. `$util.escapeJavaScript` escapes it with JavaScript string
 * rules, which are JSON's but for a single quote, escaped as `\'` (not valid JSON): the `replaceAll`
 * turns that back into `'`, as API Gateway's mapping template reference prescribes. Every other
 * value is API Gateway's own (ids, names, epoch milliseconds); the client's User-Agent is left out
 * for that reason. The local gateway renders this very template (local/gateway.ts
 * `renderRequestTemplate`); tests/unit/turn-event-template.test.ts checks the JSON it makes for
 * quotes, backslashes, control characters and unicode.
 */
export const TURN_EVENT_TEMPLATE = String.raw`{
  "requestContext": {
    "routeKey": "$context.routeKey",
    "eventType": "$context.eventType",
    "messageId": "$context.messageId",
    "connectionId": "$context.connectionId",
    "connectedAt": $context.connectedAt,
    "domainName": "$context.domainName",
    "stage": "$context.stage",
    "apiId": "$context.apiId",
    "requestId": "$context.requestId",
    "requestTimeEpoch": $context.requestTimeEpoch,
    "identity": { "sourceIp": "$context.identity.sourceIp" }
  },
  "body": "$util.escapeJavaScript($input.body).replaceAll("\\'","'")",
  "isBase64Encoded": false
}`;
