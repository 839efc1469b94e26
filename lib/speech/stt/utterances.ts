/**
 * Where the chunks of an uploaded utterance (`input.audio`) wait for its `input.audio.commit`.
 *
 * Every client message is its own invocation, so the pieces cannot wait in memory: each chunk is
 * one item of the sessions table (`UTT#<session>#<turn>` / `CHUNK#<seq>`), and the commit reads
 * them back with one query. Items expire with the table's TTL a few minutes after they were
 * written, and the commit deletes them once read: an utterance is transcribed once, and one never
 * committed costs nothing after its TTL.
 */
import {
  BatchWriteItemCommand,
  PutItemCommand,
  QueryCommand,
  type AttributeValue,
  type DynamoDBClient,
  type QueryCommandOutput,
} from '@aws-sdk/client-dynamodb';

/** Port: the pieces of one turn's utterance, by sequence number. */
export interface UtteranceStore {
  /** Stores chunk `seq` (a resend of the same chunk replaces it). */
  put(sessionId: string, turnId: string, seq: number, audio: Uint8Array): Promise<void>;
  /** Every chunk stored for the turn, by sequence number. */
  chunks(sessionId: string, turnId: string): Promise<Map<number, Uint8Array>>;
  /** Forgets the turn's chunks (after its commit). */
  discard(sessionId: string, turnId: string, seqs: Iterable<number>): Promise<void>;
}

/** Long enough for a slow upload of a long utterance, short enough that nothing lingers. */
const CHUNK_TTL_SECONDS = 10 * 60;

const pk = (sessionId: string, turnId: string) => ({ S: `UTT#${sessionId}#${turnId}` });
const sk = (seq: number) => ({ S: `CHUNK#${String(seq).padStart(3, '0')}` });

export class DynamoUtteranceStore implements UtteranceStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  async put(sessionId: string, turnId: string, seq: number, audio: Uint8Array): Promise<void> {
    await this.client.send(
      new PutItemCommand({
        TableName: this.tableName,
        Item: {
          pk: pk(sessionId, turnId),
          sk: sk(seq),
          seq: { N: String(seq) },
          audio: { B: audio },
          expiresAt: { N: String(Math.floor(this.now() / 1000) + CHUNK_TTL_SECONDS) },
        },
      }),
    );
  }

  async chunks(sessionId: string, turnId: string): Promise<Map<number, Uint8Array>> {
    const found = new Map<number, Uint8Array>();
    const nowSeconds = this.now() / 1000;
    let start: Record<string, AttributeValue> | undefined;
    do {
      // A query page holds 1 MB: an utterance at the byte limit takes two.
      const page: QueryCommandOutput = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': pk(sessionId, turnId) },
          ConsistentRead: true,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of page.Items ?? []) {
        // TTL deletes lazily (dynalite never): an expired chunk is one that is gone.
        if (Number(item.expiresAt?.N ?? Infinity) < nowSeconds) continue;
        const seq = Number(item.seq?.N);
        if (item.audio?.B && Number.isInteger(seq)) found.set(seq, item.audio.B);
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return found;
  }

  async discard(sessionId: string, turnId: string, seqs: Iterable<number>): Promise<void> {
    const keys = [...seqs].map((seq) => ({ DeleteRequest: { Key: { pk: pk(sessionId, turnId), sk: sk(seq) } } }));
    // BatchWriteItem takes 25 requests; what it leaves unprocessed, the TTL removes.
    for (let i = 0; i < keys.length; i += 25) {
      await this.client.send(new BatchWriteItemCommand({ RequestItems: { [this.tableName]: keys.slice(i, i + 25) } }));
    }
  }
}
