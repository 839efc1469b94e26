import mapJson from '../../dialogue_map.json';
import { loadDialogueMap } from '../../lib/flow/map';
import { buildTurnDeps } from '../../lib/host/deps';
import { dynamo, env, log, senderFor } from '../../lib/host/lambda';
import { createTurnHandler } from './create';

// The map is bundled into the function and compiled once per container, never per turn.
const deps = buildTurnDeps({
  dynamo,
  tableName: env.PARLEY_TABLE,
  apiKeys: env.PARLEY_API_KEYS,
  sessionTtlHours: env.PARLEY_SESSION_TTL_HOURS,
  map: loadDialogueMap(mapJson),
  log,
});

export const handler = createTurnHandler(deps, senderFor);
