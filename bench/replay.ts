import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoSessionStore } from '../lib/checkpoint/dynamo-store';
import { buildFaqIndex } from '../lib/faq/minisearch-index';
import { loadDialogueMap } from '../lib/flow/map';
import { loadNluClassifier } from '../lib/nlu/load';
import { loadOrTrain } from '../lib/nlu/model-file';
import { replaySession, type ReplaySetup } from '../lib/replay/replay';
import { startLocalRuntime } from '../local/runtime';
import { TestClient } from '../tests/integration/harness';
import { progress, summarize } from './stats';
import { SCRIPT } from './turns';

/**
 * How fast a recorded replay runs, which bounds how many stored conversations a CI job can check
 * against a changed map: a session of `turns` scripted turns recorded through the local runtime,
 * then replayed in recorded mode `repeats` times in process (no I/O: the cassette answers).
 */
export async function benchReplay(repoRoot: string, options: { turns?: number; repeats?: number } = {}) {
  const turns = options.turns ?? 40;
  const repeats = options.repeats ?? 20;
  const mapPath = join(repoRoot, 'dialogue_map.json');
  const map = loadDialogueMap(JSON.parse(readFileSync(mapPath, 'utf8')));
  const { model } = await loadOrTrain(map, mapPath);
  const runtime = await startLocalRuntime({ map, nluModel: model, port: 0, dynamoPort: 0 });
  let records;
  let sessionId: string;
  try {
    const client = await TestClient.connect(runtime.wsUrl);
    sessionId = (await client.open()).started.sessionId;
    for (let i = 0; i < turns; i++) await client.say(SCRIPT[i % SCRIPT.length]!.text);
    client.close();
    const store = new DynamoSessionStore({ client: runtime.dynamo.client, tableName: runtime.tableName, ttlSeconds: 3600 });
    records = await store.listTurns(sessionId);
  } finally {
    await runtime.close();
  }
  const setup: ReplaySetup = {
    map,
    classifier: loadNluClassifier(map, model),
    faq: buildFaqIndex(map),
    mode: 'recorded',
    llm: undefined,
    actions: { run: () => Promise.reject(new Error('a recorded replay runs no webhook')) },
    defaultModel: 'gpt-4o-mini',
    similarity: 1,
  };
  const perTurn: number[] = [];
  let same = 0;
  for (let r = 0; r < repeats; r++) {
    const started = performance.now();
    const { report } = await replaySession({ sessionId, records, source: 'bench' }, setup);
    perTurn.push((performance.now() - started) / records.length);
    same = report.summary.same;
    if (r % 5 === 0) progress(`replay ${r + 1}/${repeats}`);
  }
  return {
    records: records.length,
    sameTurns: same,
    perTurnMs: summarize(perTurn.slice(1)),
    what: `recorded-mode replay of a ${records.length}-record session of the sample bot, in process, per turn (the first run, which warms the classifier, left out)`,
  };
}
