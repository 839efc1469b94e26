import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { ParleyError } from '../lib/errors';
import { SDK_CLIENT_DEFAULTS } from '../lib/host/sdk';

/** Dummy credentials: dynalite and the local gateway accept any signature. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };
export const LOCAL_REGION = 'us-east-1';

export interface LocalDynamo {
  endpoint: string;
  client: DynamoDBClient;
  close(): Promise<void>;
}

/**
 * dynalite: a real DynamoDB API server on LevelDB. Data persists under `dataDir` when given,
 * in memory otherwise (tests).
 */
export async function startDynalite(options: { host?: string; port?: number; dataDir?: string }): Promise<LocalDynamo> {
  const releaseLock = options.dataDir ? lockDataDir(options.dataDir) : () => {};
  const server = dynalite({ ...(options.dataDir ? { path: options.dataDir } : {}), createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const endpoint = `http://${host}:${(server.address() as AddressInfo).port}`;
  // Another process (`parley replay`) reaches the data through this server while it runs.
  const endpointFile = options.dataDir ? join(options.dataDir, ENDPOINT_FILE) : undefined;
  if (endpointFile) writeFileSync(endpointFile, endpoint);
  const client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS, ...SDK_CLIENT_DEFAULTS });
  return {
    endpoint,
    client,
    async close() {
      client.destroy();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (endpointFile) rmSync(endpointFile, { force: true });
      releaseLock();
    },
  };
}

const ENDPOINT_FILE = 'parley.endpoint';

/**
 * The local store in `dataDir` for a tool that reads it (`parley replay`): through the running
 * `npm start` when it holds the folder (LevelDB allows one process), else opened here.
 */
export async function openDataDir(dataDir: string): Promise<LocalDynamo> {
  let holder: number | undefined;
  let endpoint: string | undefined;
  try {
    holder = Number(readFileSync(join(dataDir, 'parley.pid'), 'utf8'));
    endpoint = readFileSync(join(dataDir, ENDPOINT_FILE), 'utf8').trim();
  } catch {
    // No pid or no endpoint: nobody serves the folder.
  }
  if (holder && holder !== process.pid && isAlive(holder) && endpoint) return connectDynamo(endpoint);
  if (!existsSync(dataDir)) throw new ParleyError('config.invalid', `no local data in ${dataDir}: run \`npm start\` and hold a conversation first, or set PARLEY_DATA_DIR`);
  return startDynalite({ dataDir });
}

/**
 * LevelDB allows one process per folder, and dynalite reports a second one only with an uncaught
 * "Database is closed" later. A pid file turns that into a clear message up front.
 */
function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const pidFile = join(dataDir, 'parley.pid');
  let holder: number | undefined;
  try {
    holder = Number(readFileSync(pidFile, 'utf8'));
  } catch {
    holder = undefined;
  }
  if (holder && holder !== process.pid && isAlive(holder)) {
    throw new ParleyError('config.invalid', `the data folder ${dataDir} is in use by another Parley (pid ${holder}); stop it or set PARLEY_DATA_DIR`);
  }
  writeFileSync(pidFile, String(process.pid));
  return () => rmSync(pidFile, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A DynamoDB API server this process does not own: DynamoDB Local, dynalite elsewhere, or AWS. */
export function connectDynamo(endpoint: string): LocalDynamo {
  const client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS, ...SDK_CLIENT_DEFAULTS });
  return { endpoint, client, close: async () => client.destroy() };
}

/** Creates the table as the CDK stack defines it (pk/sk strings, on demand), if it is missing. */
export async function ensureTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (Table?.TableStatus !== 'ACTIVE') await untilActive(client, tableName);
    return;
  } catch (err) {
    if (!(err instanceof ResourceNotFoundException)) throw err;
  }
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
  // A new table is CREATING for a moment (longer on disk), and item calls on it fail as not found.
  await untilActive(client, tableName);
}

async function untilActive(client: DynamoDBClient, tableName: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (Table?.TableStatus === 'ACTIVE') return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`table ${tableName} did not become active`);
}
