import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LocalEnv, readEnv } from '../lib/config/env';
import { ParleyError } from '../lib/errors';
import { loadDialogueMap } from '../lib/flow/map';
import { loadOrTrain } from '../lib/nlu/model-file';
import { llmPortsFactory } from '../lib/llm/configure';
import { consoleLog, startLocalRuntime } from './runtime';

/** `npm start`: the chat runner on this machine, on embedded defaults. */
async function main(): Promise<void> {
  // Lambda runs Node 22; on a laptop with Node 20 the SDK's upgrade notice is noise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const env = readEnv(LocalEnv);
  const mapPath = resolve(env.PARLEY_DIALOGUE_MAP);
  const map = loadDialogueMap(JSON.parse(readFileSync(mapPath, 'utf8')));
  const nlu = await loadOrTrain(map, mapPath);
  if (nlu.trained) process.stdout.write(`Trained the NLU model for ${mapPath} in ${Math.round(nlu.ms)} ms (saved for next time).\n`);
  const runtime = await startLocalRuntime({
    map,
    nluModel: nlu.model,
    llm: llmPortsFactory(env)(env.OPENAI_API_KEY),
    ...(env.PARLEY_ACTIONS_BASE_URL ? { actionsBaseUrl: env.PARLEY_ACTIONS_BASE_URL } : {}),
    host: env.PARLEY_HOST,
    port: env.PARLEY_PORT,
    dynamoPort: env.PARLEY_DYNAMODB_PORT,
    dataDir: resolve(env.PARLEY_DATA_DIR),
    ...(env.PARLEY_DYNAMODB_ENDPOINT ? { dynamoEndpoint: env.PARLEY_DYNAMODB_ENDPOINT } : {}),
    tableName: env.PARLEY_TABLE,
    apiKeys: env.PARLEY_API_KEYS,
    sessionTtlHours: env.PARLEY_SESSION_TTL_HOURS,
    log: consoleLog(env.PARLEY_LOG_LEVEL),
    servePage: true,
  });
  const keyHint = env.PARLEY_API_KEYS.length ? '?apiKey=<one of PARLEY_API_KEYS>' : '';
  process.stdout.write(
    [
      `Parley is running with "${map.name}" (${mapPath}), ${env.OPENAI_API_KEY ? `LLM ${env.OPENAI_MODEL}${env.OPENAI_BASE_URL ? ` at ${env.OPENAI_BASE_URL}` : ''}` : 'no LLM (set OPENAI_API_KEY)'}`,
      ``,
      `  Chat in the browser:   ${runtime.httpUrl}/`,
      `  Chat in the terminal:  npm run chat`,
      `  WebSocket:             ${runtime.wsUrl}/${keyHint}`,
      env.PARLEY_DYNAMODB_ENDPOINT
        ? `  DynamoDB:              ${runtime.dynamo.endpoint}  table "${runtime.tableName}"`
        : `  DynamoDB (dynalite):   ${runtime.dynamo.endpoint}  table "${runtime.tableName}", data in ${resolve(env.PARLEY_DATA_DIR)}`,
      ``,
      `Press Ctrl+C to stop.`,
      ``,
    ].join('\n'),
  );
  const stop = async () => {
    await runtime.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  const code = (err as NodeJS.ErrnoException).code;
  const message =
    err instanceof ParleyError
      ? err.message
      : code === 'EADDRINUSE'
        ? `port ${(err as { port?: number }).port ?? ''} is in use: stop what runs there or set PARLEY_PORT`
        : ((err as Error).stack ?? String(err));
  process.stderr.write(`${message}\n`);
  process.exit(1);
});
