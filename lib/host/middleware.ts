import type { MiddlewareObj } from '@middy/core';
import type { Log } from '../observability/log';
import type { Tracing } from '../observability/tracing';
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

/**
 * Tracing in Lambda: the first invocation waits for the SDK the cold start began to load (or its
 * first turn would go untraced), and every invocation exports its spans before it returns, because
 * Lambda freezes the process once it has (a span left in the queue would wait for the next
 * invocation, or be lost with the container). The flush is bounded by the export timeout.
 */
export function flushTraces(tracing: Promise<Tracing | undefined>): MiddlewareObj<WebSocketEvent, RouteResult> {
  const flush = async () => {
    await (await tracing)?.flush();
  };
  return {
    before: async () => {
      await tracing;
    },
    after: flush,
    onError: flush,
  };
}
