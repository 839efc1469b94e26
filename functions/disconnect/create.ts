import middy from '@middy/core';
import type { RouteResult, WebSocketEvent } from '../../lib/host/events';
import { logErrors } from '../../lib/host/middleware';
import type { Log } from '../../lib/observability/log';
import type { ConnectionStore } from '../../lib/session/connections';

export interface DisconnectDeps {
  connections: ConnectionStore;
  log: Log;
}

/** `$disconnect`: forget the connection. The session stays and can be resumed from another one. */
export function createDisconnectHandler(deps: DisconnectDeps) {
  return middy<WebSocketEvent, RouteResult>()
    .use(logErrors(deps.log))
    .handler(async (event) => {
      await deps.connections.delete(event.requestContext.connectionId);
      return { statusCode: 200 };
    });
}
