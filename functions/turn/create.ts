import middy from '@middy/core';
import type { RouteResult, WebSocketEvent } from '../../lib/host/events';
import { logErrors } from '../../lib/host/middleware';
import { handleClientMessage, type TurnDeps } from '../../lib/session/dispatch';
import type { ConnectionSender } from '../../lib/transport/sender';

/**
 * `$default`: every client message. All output goes through @connections; the integration
 * response is empty, so a turn never depends on API Gateway waiting for it.
 */
export function createTurnHandler(deps: TurnDeps, senderFor: (event: WebSocketEvent) => ConnectionSender) {
  return middy<WebSocketEvent, RouteResult>()
    .use(logErrors(deps.log))
    .handler(async (event) => {
      const receivedAtMs = deps.clock.monotonicMs();
      await handleClientMessage(deps, {
        connectionId: event.requestContext.connectionId,
        body: event.body ?? '',
        sender: senderFor(event),
        receivedAtMs,
      });
      return { statusCode: 200 };
    });
}
