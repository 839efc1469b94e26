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
