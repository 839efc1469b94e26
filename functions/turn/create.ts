import middy, { type MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import type { RouteResult, WebSocketEvent } from '../../lib/host/events';
import { logErrors } from '../../lib/host/middleware';
import { handleClientMessage, type TurnDeps } from '../../lib/session/dispatch';
import type { ConnectionSender } from '../../lib/transport/sender';

/**
 * `$default`: every client message. All output goes through @connections, so a turn never depends on
 * API Gateway waiting for it: in AWS the route invokes this function asynchronously (InvocationType
 * Event), with the event lib/host/events.ts TURN_EVENT_TEMPLATE builds (the fields of a proxy event
 * read here: connectionId, domainName, stage, routeKey, body), and discards the result. Lambda may
 * deliver an event again (its retries, or a duplicate); the turnId makes that harmless.
 */
export function createTurnHandler(
  deps: TurnDeps,
  senderFor: (event: WebSocketEvent) => ConnectionSender,
  extras: {
    /** Middlewares that run first (the Lambda's secret fetching). */
    before?: MiddlewareObj<WebSocketEvent, RouteResult>[];
    /** The LLM for this invocation, from what the middlewares put on the context. */
    llmFor?: (context: Context) => TurnDeps['llm'];
  } = {},
) {
  return middy<WebSocketEvent, RouteResult>()
    .use(logErrors(deps.log))
    .use(extras.before ?? [])
    .handler(async (event, context) => {
      const receivedAtMs = deps.clock.monotonicMs();
      const llm = extras.llmFor ? extras.llmFor(context) : deps.llm;
      await handleClientMessage(llm === deps.llm ? deps : { ...deps, llm }, {
        connectionId: event.requestContext.connectionId,
        body: event.body ?? '',
        sender: senderFor(event),
        receivedAtMs,
      });
      return { statusCode: 200 };
    });
}
