import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import * as z from 'zod';
import { SpeechInput } from '../protocol/v1';
import { AudioFormat } from '../speech/format';

/**
 * Where a connection stands in the protocol. Every message arrives in its own invocation, so the
 * ordering rules (nothing before hello, no input before session.start) are enforced from here.
 */
export const ConnectionPhase = z.enum(['open', 'ready', 'active']);
export type ConnectionPhase = z.infer<typeof ConnectionPhase>;

export const ConnectionRecord = z.object({
  connectionId: z.string(),
  phase: ConnectionPhase,
  /** Who is on the line; null until an API key was shown (query string at connect, or hello). */
  principal: z.string().nullable(),
  sessionId: z.string().optional(),
  /** The audio the session on this connection gets (negotiated at session.start); absent: text only. */
  audio: z.optional(AudioFormat),
  /** How the session's speech becomes text (negotiated at session.start); absent: typed input only. */
  speechInput: z.optional(SpeechInput),
  connectedAt: z.string(),
});
export type ConnectionRecord = z.infer<typeof ConnectionRecord>;

export interface ConnectionStore {
  create(record: ConnectionRecord): Promise<void>;
  get(connectionId: string): Promise<ConnectionRecord | undefined>;
  /** Replaces the record if the connection still exists; returns false when it is gone. */
  update(record: ConnectionRecord): Promise<boolean>;
  delete(connectionId: string): Promise<void>;
}

const key = (connectionId: string) => ({ pk: { S: `CONN#${connectionId}` }, sk: { S: 'CONN' } });

// API Gateway ends every connection after 2 hours; the record outlives it a little for debugging.
const CONNECTION_TTL_SECONDS = 3 * 3600;

export class DynamoConnectionStore implements ConnectionStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  async create(record: ConnectionRecord): Promise<void> {
    await this.client.send(new PutItemCommand({ TableName: this.tableName, Item: this.toItem(record) }));
  }

  async get(connectionId: string): Promise<ConnectionRecord | undefined> {
    const { Item } = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: key(connectionId), ConsistentRead: true }),
    );
    if (!Item?.data?.S) return undefined;
    // TTL deletes lazily (dynalite never): an expired record is a connection that is gone.
    const expiresAt = Item.expiresAt?.N;
    if (expiresAt !== undefined && Number(expiresAt) * 1000 < this.now()) return undefined;
    return ConnectionRecord.parse(JSON.parse(Item.data.S));
  }

  async update(record: ConnectionRecord): Promise<boolean> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: this.toItem(record),
          // A $disconnect that already ran must not be undone by a late message.
          ConditionExpression: 'attribute_exists(pk)',
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  async delete(connectionId: string): Promise<void> {
    await this.client.send(new DeleteItemCommand({ TableName: this.tableName, Key: key(connectionId) }));
  }

  private toItem(record: ConnectionRecord): Record<string, AttributeValue> {
    return {
      ...key(record.connectionId),
      data: { S: JSON.stringify(record) },
      expiresAt: { N: String(Math.floor(this.now() / 1000) + CONNECTION_TTL_SECONDS) },
    };
  }
}
