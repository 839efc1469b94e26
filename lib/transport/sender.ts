import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GoneException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import type { ServerEvent } from '../protocol/v1';
import { frameEvent, packEvents } from './framing';

/**
 * Port: delivers events to one client connection, in order. A client that is gone is not an
 * error: sending stops, the turn goes on and commits, and the client can resume later.
 */
export interface ConnectionSender {
  send(event: ServerEvent): Promise<void>;
  /** Sends events in order, packed into as few messages as the frame limit allows. */
  sendBatch(events: readonly ServerEvent[]): Promise<void>;
  /** Closes the connection from the server side. */
  close(): Promise<void>;
  /** True once the client cannot be reached: 410 Gone, or a post that failed after the SDK's retries. */
  readonly gone: boolean;
  /** Why sending stopped, when it was not a plain 410 Gone; for the log. */
  readonly failure: unknown;
}

const encoder = new TextEncoder();

/** Posts through the API Gateway management API (@connections), in AWS and locally alike. */
export class ApiGatewaySender implements ConnectionSender {
  private isGone = false;
  private lastFailure: unknown = undefined;

  constructor(
    private readonly client: ApiGatewayManagementApiClient,
    private readonly connectionId: string,
    private readonly newId: () => string,
  ) {}

  get gone(): boolean {
    return this.isGone;
  }

  get failure(): unknown {
    return this.lastFailure;
  }

  send(event: ServerEvent): Promise<void> {
    return this.post(frameEvent(event, this.newId));
  }

  sendBatch(events: readonly ServerEvent[]): Promise<void> {
    return this.post(packEvents(events, this.newId));
  }

  private async post(payloads: string[]): Promise<void> {
    for (const payload of payloads) {
      if (this.isGone) return;
      try {
        await this.client.send(
          new PostToConnectionCommand({ ConnectionId: this.connectionId, Data: encoder.encode(payload) }),
        );
      } catch (err) {
        // Either way the turn must still commit: the client resumes and gets the stored outcome.
        if (!(err instanceof GoneException)) this.lastFailure = err;
        this.isGone = true;
      }
    }
  }

  async close(): Promise<void> {
    if (this.isGone) return;
    try {
      await this.client.send(new DeleteConnectionCommand({ ConnectionId: this.connectionId }));
    } catch (err) {
      if (!(err instanceof GoneException)) throw err;
    }
    this.isGone = true;
  }
}

/**
 * One management client per endpoint (the stage URL), built on first use and kept for the life of
 * the process: SDK clients are immutable and expensive to create.
 */
export function managementClients(
  build: (endpoint: string) => ApiGatewayManagementApiClient,
): (endpoint: string) => ApiGatewayManagementApiClient {
  const clients = new Map<string, ApiGatewayManagementApiClient>();
  return (endpoint) => {
    let client = clients.get(endpoint);
    if (!client) clients.set(endpoint, (client = build(endpoint)));
    return client;
  };
}
