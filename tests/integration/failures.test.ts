import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTurnDeps } from '../../lib/host/deps';
import { memoryLog } from '../../lib/observability/log';
import type { ServerEvent } from '../../lib/protocol/v1';
import { handleClientMessage, type TurnDeps } from '../../lib/session/dispatch';
import type { ConnectionSender } from '../../lib/transport/sender';
import { ensureTable, startDynalite, type LocalDynamo } from '../../local/dynamodb';
import { recordFault } from '../support/fault-table';
import { sampleMap, sampleModel } from './harness';

/** A sender that keeps what it is given: these tests look at the dispatcher, not the socket. */
function recordingSender(): ConnectionSender & { events: ServerEvent[] } {
  const events: ServerEvent[] = [];
  return {
    events,
    gone: false,
    failure: undefined,
    send: async (event) => void events.push(event),
    sendBatch: async (batch) => void events.push(...batch),
    close: async () => {},
  };
}

describe('failures inside a turn', () => {
  let dynamo: LocalDynamo;
  const table = 'failures';
  const log = memoryLog();
  let deps: TurnDeps;

  beforeAll(async () => {
    dynamo = await startDynalite({});
    await ensureTable(dynamo.client, table);
    deps = buildTurnDeps({ dynamo: dynamo.client, tableName: table, apiKeys: [], sessionTtlHours: 1, map: sampleMap(), nluModel: await sampleModel(), log });
  });
  afterAll(async () => {
    await dynamo?.close();
  });

  async function openSession(connectionId: string) {
    await deps.connections.create({ connectionId, phase: 'ready', principal: 'public', connectedAt: new Date().toISOString() });
    const sender = recordingSender();
    await handleClientMessage(deps, { connectionId, sender, receivedAtMs: 0, body: JSON.stringify({ type: 'session.start' }) });
    const { sessionId } = (await deps.connections.get(connectionId))!;
    return sessionId!;
  }

  it('a failing commit (DynamoDB down) answers server.internal with the turnId and stores nothing', async () => {
    const sessionId = await openSession('commit-fails=');
    const broken: TurnDeps = {
      ...deps,
      // The real store (its prototype's methods included), with a commit that fails.
      store: Object.assign(Object.create(deps.store) as TurnDeps['store'], { commitTurn: async () => Promise.reject(new Error('ServiceUnavailable')) }),
    };
    const sender = recordingSender();
    const turnId = crypto.randomUUID();
    await handleClientMessage(broken, { connectionId: 'commit-fails=', sender, receivedAtMs: 0, body: JSON.stringify({ type: 'input.text', turnId, text: 'coffee' }) });
    expect(sender.events.at(-1)).toMatchObject({ type: 'error', code: 'server.internal', turnId });
    expect(sender.events.some((e) => e.type === 'turn.completed')).toBe(false);
    expect((await deps.store.listTurns(sessionId)).map((r) => r.seq)).toEqual([0]);
    expect(log.lines.some((l) => l.level === 'error' && l.turnId === turnId && String(l.error).includes('ServiceUnavailable'))).toBe(true);
    const last = sender.events.at(-1);
    recordFault({ area: 'DynamoDB', fault: 'the commit fails (DynamoDB unavailable)', outcome: `\`${last?.type === 'error' ? last.code : last?.type}\` with the turnId; nothing stored; logged as an error` });
  });

  it('a checkpoint written by a newer Parley is refused as server.internal, without leaking internals', async () => {
    const sessionId = await openSession('from-the-future=');
    await dynamo.client.send(
      new PutItemCommand({
        TableName: table,
        Item: {
          pk: { S: `SESS#${sessionId}` },
          sk: { S: 'TURN#0000000001' },
          turnId: { S: crypto.randomUUID() },
          status: { S: 'completed' },
          createdAt: { S: new Date().toISOString() },
          body: {
            S: JSON.stringify({
              input: { kind: 'text', text: 'hi' },
              outputs: [],
              events: [],
              usage: {},
              metrics: { runMs: 0, totalMs: 0 },
              checkpoint: { version: 99 },
            }),
          },
        },
      }),
    );
    const sender = recordingSender();
    const turnId = crypto.randomUUID();
    await handleClientMessage(deps, { connectionId: 'from-the-future=', sender, receivedAtMs: 0, body: JSON.stringify({ type: 'input.text', turnId, text: 'coffee' }) });
    expect(sender.events).toEqual([{ type: 'error', code: 'server.internal', message: expect.any(String), turnId }]);
    expect((await deps.store.listTurns(sessionId).catch(() => 'unreadable'))).toBe('unreadable');
    const logged = log.lines.find((l) => l.level === 'error' && l.turnId === turnId);
    expect(String(logged?.error)).toContain('checkpoint version 99 is newer');
    const answer = sender.events[0];
    recordFault({ area: 'checkpoint', fault: 'a stored checkpoint written by a newer Parley (version 99)', outcome: `\`${answer?.type === 'error' ? answer.code : answer?.type}\`, no internals in the message; the version logged` });
  });
});
