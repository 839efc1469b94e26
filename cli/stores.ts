import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoSessionStore } from '../lib/checkpoint/dynamo-store';
import { SDK_CLIENT_DEFAULTS } from '../lib/host/sdk';
import { parseSessionExport } from '../lib/replay/export';
import type { StoredSession } from '../lib/replay/replay';
import { loadStoredSession } from '../lib/replay/sources';
import { LOCAL_CREDENTIALS, LOCAL_REGION, openDataDir } from '../local/dynamodb';
import type { StoreOptions } from './args';

/** A store the CLI reads sessions from, and how to let go of it. */
export interface OpenStore {
  store: DynamoSessionStore;
  /** For the report: where the session came from. */
  describe: string;
  close(): Promise<void>;
}

export async function openStore(options: StoreOptions, env: Record<string, string | undefined>): Promise<OpenStore> {
  const table = options.table ?? env.PARLEY_TABLE ?? 'parley';
  const reader = (client: DynamoDBClient) => new DynamoSessionStore({ client, tableName: table, ttlSeconds: 0 });
  if (options.store === 'dynamodb' || options.endpoint) {
    const region = options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? (options.endpoint ? LOCAL_REGION : undefined);
    const client = new DynamoDBClient({
      ...SDK_CLIENT_DEFAULTS,
      ...(region ? { region } : {}),
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      // A local endpoint takes any signature; AWS uses the default credential chain.
      ...(options.endpoint && !env.AWS_ACCESS_KEY_ID ? { credentials: LOCAL_CREDENTIALS } : {}),
    });
    return { store: reader(client), describe: `DynamoDB table ${table}${options.endpoint ? ` at ${options.endpoint}` : region ? ` in ${region}` : ''}`, close: async () => client.destroy() };
  }
  const dataDir = resolve(options.dataDir ?? env.PARLEY_DATA_DIR ?? '.parley-data');
  const local = await openDataDir(dataDir);
  return { store: reader(local.client), describe: `the local store in ${dataDir}`, close: () => local.close() };
}

/** A path to an existing file is an export; anything else is a session id. */
const isExportFile = (session: string): boolean => existsSync(session) && statSync(session).isFile();

export async function loadSession(session: string, options: StoreOptions, env: Record<string, string | undefined>): Promise<StoredSession> {
  if (isExportFile(session)) return parseSessionExport(readFileSync(session, 'utf8'), session);
  const open = await openStore(options, env);
  try {
    return await loadStoredSession(open.store, session, open.describe);
  } finally {
    await open.close();
  }
}
