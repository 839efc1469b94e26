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
  /**
   * The messages API Gateway bills for what this sender was given so far (each posted payload per
   * started 32 KB), counted when a send is handed over, before it is posted; absent when the sender
   * does not meter (test doubles).
   */
  readonly billedMessages?: number;
}

const encoder = new TextEncoder();

/** API Gateway meters a WebSocket message in 32 KB increments. */
export const BILLED_MESSAGE_BYTES = 32 * 1024;

/** How many messages API Gateway bills for one message of `bytes`. */
export const billedMessagesOf = (bytes: number): number => Math.max(1, Math.ceil(bytes / BILLED_MESSAGE_BYTES));

/**
 * Posts through the API Gateway management API (@connections), in AWS and locally alike. Sends are
 * framed the moment they are handed over and posted one after another in that order, so a caller
 * that does not wait for one send before handing over the next keeps its order.
 */
export class ApiGatewaySender implements ConnectionSender {
  private isGone = false;
  private lastFailure: unknown = undefined;
  private billed = 0;
  private posting: Promise<void> = Promise.resolve();

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

  get billedMessages(): number {
    return this.billed;
  }

  send(event: ServerEvent): Promise<void> {
    return this.post(frameEvent(event, this.newId));
  }

  sendBatch(events: readonly ServerEvent[]): Promise<void> {
    return this.post(packEvents(events, this.newId));
  }

  private post(payloads: string[]): Promise<void> {
    const data = payloads.map((payload) => encoder.encode(payload));
    if (!this.isGone) for (const d of data) this.billed += billedMessagesOf(d.byteLength);
    const posted = this.posting.then(() => this.postNow(data));
    this.posting = posted;
    return posted;
  }

  private async postNow(data: Uint8Array[]): Promise<void> {
    for (const Data of data) {
      if (this.isGone) return;
      try {
        await this.client.send(new PostToConnectionCommand({ ConnectionId: this.connectionId, Data }));
      } catch (err) {
        // Either way the turn must still commit: the client resumes and gets the stored outcome.
        if (!(err instanceof GoneException)) this.lastFailure = err;
        this.isGone = true;
      }
    }
  }

  async close(): Promise<void> {
    await this.posting;
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
 * A sender for a producer that must not wait for the network (the turn's outbox): each send is
 * handed to `sender` at once (ApiGatewaySender frames and counts it then, and posts in order) and
 * resolves at once; `posted()` resolves when everything handed over was posted or failed. So a turn
 * knows every message it sent, to the last burst, before it writes its record, while that burst is
 * still on its way.
 */
export function handOver(sender: ConnectionSender): ConnectionSender & { posted(): Promise<void> } {
  const pending = new Set<Promise<void>>();
  const track = (send: () => Promise<void>): Promise<void> => {
    let sent: Promise<void>;
    try {
      sent = send();
    } catch (err) {
      sent = Promise.reject(err);
    }
    // Failures are the sender's business (it marks itself gone), as they were the outbox's.
    const settled = sent.catch(() => undefined).finally(() => pending.delete(settled));
    pending.add(settled);
    return Promise.resolve();
  };
  return {
    send: (event) => track(() => sender.send(event)),
    sendBatch: (events) => track(() => sender.sendBatch(events)),
    close: () => sender.close(),
    get gone() {
      return sender.gone;
    },
    get failure() {
      return sender.failure;
    },
    get billedMessages() {
      return sender.billedMessages;
    },
    posted: async () => {
      while (pending.size) await Promise.all(pending);
    },
  };
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
