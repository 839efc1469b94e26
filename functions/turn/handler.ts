import mapJson from '../../dialogue_map.json';
// Trained at build time (npm run build:nlu, run by `npm install` and before every synth).
import nluModel from '../../build/nlu/dialogue_map.nlu.json';
import { loadDialogueMap } from '../../lib/flow/map';
import { buildTurnDeps } from '../../lib/host/deps';
import { dynamo, env, log, senderFor } from '../../lib/host/lambda';
import type { NluModel } from '../../lib/nlu/train';
import { llmKeyFrom, llmKeyMiddlewares } from '../../lib/host/llm-key';
import { llmPortsFactory } from '../../lib/llm/configure';
import { createTurnHandler } from './create';

// The map is bundled into the function and compiled once per container, never per turn.
const deps = buildTurnDeps({
  dynamo,
  tableName: env.PARLEY_TABLE,
  apiKeys: env.PARLEY_API_KEYS,
  sessionTtlHours: env.PARLEY_SESSION_TTL_HOURS,
  map: loadDialogueMap(mapJson),
  nluModel: nluModel as NluModel,
  ...(env.PARLEY_ACTIONS_BASE_URL ? { actionsBaseUrl: env.PARLEY_ACTIONS_BASE_URL } : {}),
  log,
});

const llmFor = llmPortsFactory(env, { log });

export const handler = createTurnHandler(deps, senderFor, {
  before: llmKeyMiddlewares(env),
  llmFor: (context) => llmFor(llmKeyFrom(context, env)),
});
