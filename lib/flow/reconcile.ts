import type { Checkpoint } from '../checkpoint/schema';
import { hasState, type DialogueMap } from './map';

/** Where a checkpoint's node went in the current map. */
export interface NodeMigration {
  from: string;
  to: string;
  /** `renamed`: the map's `migrations.renames` says so; `missing`: gone, so the recovery state. */
  reason: 'renamed' | 'missing';
}

/**
 * Fits a checkpoint written against an earlier version of the map to the current one, so a live
 * session is never stranded in a state that no longer exists: its node (and the "back" history)
 * follow the map's renames; a node that is simply gone becomes the recovery state; a pending slot
 * question of an intent that is gone is dropped. A checkpoint that fits is returned unchanged.
 */
export function reconcileCheckpoint(map: DialogueMap, checkpoint: Checkpoint): { checkpoint: Checkpoint; migrations: NodeMigration[] } {
  const migrations: NodeMigration[] = [];
  let { currentNode, nodeHistory, pending } = checkpoint;
  if (currentNode !== null && !hasState(map, currentNode)) {
    const renamed = renamedTo(map, currentNode);
    const to = renamed ?? map.migrations.recovery_state ?? map.initial_state;
    migrations.push({ from: currentNode, to, reason: renamed ? 'renamed' : 'missing' });
    currentNode = to;
    // A slot question asked in a state that is gone is not asked any more.
    if (!renamed) pending = null;
  }
  if (nodeHistory.some((node) => !hasState(map, node))) {
    nodeHistory = nodeHistory.flatMap((node) => {
      const now = hasState(map, node) ? node : renamedTo(map, node);
      return now ? [now] : [];
    });
  }
  if (pending && !map.intents[pending.intent]) pending = null;
  if (currentNode === checkpoint.currentNode && nodeHistory === checkpoint.nodeHistory && pending === checkpoint.pending) return { checkpoint, migrations };
  return { checkpoint: { ...checkpoint, currentNode, nodeHistory, pending }, migrations };
}

/** The current name of a renamed state (the map's load checks that every rename names a state). */
function renamedTo(map: DialogueMap, node: string): string | undefined {
  const to = Object.hasOwn(map.migrations.renames, node) ? map.migrations.renames[node] : undefined;
  return to !== undefined && hasState(map, to) ? to : undefined;
}
