import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { webhookRunner } from '../lib/actions/webhook';
import { FunctionEnv, readEnv } from '../lib/config/env';
import { costOf } from '../lib/cost/ledger';
import { loadPrices } from '../lib/cost/prices';
import { ttsEngineOf } from '../lib/cost/usage';
import { ParleyError } from '../lib/errors';
import { buildFaqIndex } from '../lib/faq/minisearch-index';
import { loadDialogueMap } from '../lib/flow/map';
import { llmPortsFactory } from '../lib/llm/configure';
import { loadNluClassifier } from '../lib/nlu/load';
import { loadOrTrain } from '../lib/nlu/model-file';
import { traceLink } from '../lib/observability/tracing';
import type { ReplaySetup } from '../lib/replay/replay';
import type { ReplayArgs } from './args';

/**
 * What a replay runs against: the dialogue map (its NLU model trained if the stored one is stale),
 * the FAQ, and the configuration the runtime reads (model, budget, webhooks' base URL, prices, the
 * trace viewer) from the same environment variables.
 */
export async function replaySetup(args: ReplayArgs, env: Record<string, string | undefined>, progress: (line: string) => void): Promise<ReplaySetup> {
  const config = readEnv(FunctionEnv, env);
  const mapPath = resolve(args.map ?? env.PARLEY_DIALOGUE_MAP ?? 'dialogue_map.json');
  let text: string;
  try {
    text = readFileSync(mapPath, 'utf8');
  } catch (err) {
    throw new ParleyError('config.invalid', `cannot read the dialogue map ${mapPath}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ParleyError('map.invalid', `${mapPath} is not JSON: ${(err as Error).message}`);
  }
  const map = loadDialogueMap(json);
  const nlu = await loadOrTrain(map, mapPath);
  if (nlu.trained) progress(`trained the NLU model for ${mapPath} in ${Math.round(nlu.ms)} ms`);
  const prices = loadPrices(env.PARLEY_PRICES);
  const live = args.mode === 'live';
  const llm = llmPortsFactory(config)(config.OPENAI_API_KEY);
  if (live && !llm) progress('live mode without OPENAI_API_KEY: off-script input gets the map\'s fallback, as in the runtime');
  return {
    map,
    classifier: loadNluClassifier(map, nlu.model),
    faq: buildFaqIndex(map),
    mode: args.mode,
    llm,
    actions: webhookRunner(map, { baseUrl: config.PARLEY_ACTIONS_BASE_URL }),
    defaultModel: config.OPENAI_MODEL,
    similarity: args.similarity,
    price: (usage, record) => costOf(usage, prices, record?.speech ? { ttsEngine: ttsEngineOf(record.speech.voice) } : {}),
    traceUrl: (sessionId) => traceLink(sessionId, config.PARLEY_TRACE_URL),
  };
}
