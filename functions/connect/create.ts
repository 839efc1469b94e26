import middy from '@middy/core';
import type { ConnectEvent, RouteResult } from '../../lib/host/events';
import { logErrors } from '../../lib/host/middleware';
import type { Log } from '../../lib/observability/log';
import type { Clock } from '../../lib/runner/ports';
import type { Auth } from '../../lib/session/auth';
import type { ConnectionStore } from '../../lib/session/connections';

export interface ConnectDeps {
  connections: ConnectionStore;
  auth: Auth;
  clock: Clock;
  log: Log;
}

/**
 * `$connect`: credentials in the query string (`?apiKey=` or `?token=`, a JWT) are checked now and
 * wrong ones refuse the handshake with 401, since nothing can be posted to a connection before
 * `$connect` returns. Without any the connection opens unauthenticated and `hello` must carry them.
 * Neither the key nor the token is ever logged.
 */
export function createConnectHandler(deps: ConnectDeps) {
  return middy<ConnectEvent, RouteResult>()
    .use(logErrors(deps.log))
    .handler(async (event) => {
      const connectionId = event.requestContext.connectionId;
      const apiKey = event.queryStringParameters?.apiKey;
      const token = event.queryStringParameters?.token;
      let principal: string | null = null;
      if (apiKey !== undefined || token !== undefined || !deps.auth.required) {
        const auth = await deps.auth.authenticate({ apiKey, token });
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
