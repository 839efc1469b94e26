import middy from '@middy/core';
import type { ConnectEvent, RouteResult } from '../../lib/host/events';
import { logErrors } from '../../lib/host/middleware';
import type { Log } from '../../lib/observability/log';
import type { Clock } from '../../lib/runner/ports';
import type { ApiKeyAuth } from '../../lib/session/auth';
import type { ConnectionStore } from '../../lib/session/connections';

export interface ConnectDeps {
  connections: ConnectionStore;
  auth: ApiKeyAuth;
  clock: Clock;
  log: Log;
}

/**
 * `$connect`: a key in the query string (`?apiKey=`) is checked now and a wrong one refuses the
 * handshake with 401, since nothing can be posted to a connection before `$connect` returns. Without
 * a key the connection opens unauthenticated and `hello` must carry one.
 */
export function createConnectHandler(deps: ConnectDeps) {
  return middy<ConnectEvent, RouteResult>()
    .use(logErrors(deps.log))
    .handler(async (event) => {
      const connectionId = event.requestContext.connectionId;
      const key = event.queryStringParameters?.apiKey;
      let principal: string | null = null;
      if (key !== undefined || !deps.auth.required) {
        const auth = deps.auth.check(key);
        if (!auth.ok) {
          deps.log.info('connection refused', { connectionId, code: auth.code });
          return { statusCode: 401, body: auth.code };
        }
        principal = auth.principal;
      }
      await deps.connections.create({
        connectionId,
        phase: 'open',
        principal,
        connectedAt: new Date(deps.clock.nowMs()).toISOString(),
      });
      return { statusCode: 200 };
    });
}
