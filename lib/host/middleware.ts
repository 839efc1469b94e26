import type { MiddlewareObj } from '@middy/core';
import type { Log } from '../observability/log';
import type { RouteResult, WebSocketEvent } from './events';

/**
 * Last line of defence: a handler bug is logged with its connection and answered with a 500
 * (which, on $connect, refuses the connection) instead of an unhandled rejection.
 */
export function logErrors(log: Log): MiddlewareObj<WebSocketEvent, RouteResult> {
  return {
    onError: async (request) => {
      log.error('handler failed', {
        connectionId: request.event.requestContext?.connectionId,
        routeKey: request.event.requestContext?.routeKey,
        error: request.error instanceof Error ? `${request.error.name}: ${request.error.message}` : String(request.error),
      });
      request.response = { statusCode: 500 };
    },
  };
}
