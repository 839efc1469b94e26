import * as z from 'zod';
import { CostLedger } from '../cost/schema';
import { Divergence } from './cassette';
import { Difference } from './diff';
import { Observation } from './observe';

/*
 * The replay report: the one value every output format (terminal table, JSON, HTML) renders. Its
 * JSON form is the report itself, so CI can read it with any JSON tool.
 */

export const ReplayMode = z.enum(['recorded', 'live']);
export type ReplayMode = z.infer<typeof ReplayMode>;


export const NodeMigrationReport = z.object({ from: z.string(), to: z.string(), reason: z.enum(['renamed', 'missing']) });

export const TurnStatusInReport = z.enum(['same', 'changed', 'diverged', 'skipped', 'new']);

export const ReplayTurn = z.object({
  /** The recorded turn's seq; for a what-if turn, the seq it would have had. */
  seq: z.number(),
  turnId: z.string(),
  input: z.object({ kind: z.string(), text: z.string().optional() }),
  /**
   * same: nothing differs; changed: the bot behaves differently; diverged: the replay asked the LLM
   * or a webhook something the recording does not hold; skipped: nothing to rerun (a barge-in's
   * cut, an input a newer one overtook); new: a what-if turn with nothing recorded to compare.
   */
  status: TurnStatusInReport,
  notes: z.array(z.string()),
  original: Observation.optional(),
  replay: Observation.optional(),
  differences: z.array(Difference),
  divergences: z.array(Divergence),
  /** Where the checkpoint's node was not in the map and went (renames, recovery). */
  migrations: z.array(NodeMigrationReport),
  cost: z.object({ original: z.optional(CostLedger), replay: z.optional(CostLedger) }),
  trace: z.object({ traceId: z.string(), url: z.string().optional() }),
});
export type ReplayTurn = z.infer<typeof ReplayTurn>;

export const REPORT_FORMAT = 'parley.replay-report';
export const REPORT_VERSION = 1;

export const ReplayReport = z.object({
  format: z.literal(REPORT_FORMAT),
  version: z.literal(REPORT_VERSION),
  sessionId: z.string(),
  /** Where the session came from: a file, the local store, a DynamoDB table. */
  source: z.string(),
  mode: ReplayMode,
  map: z.object({ name: z.string(), digest: z.string() }),
  createdAt: z.string(),
  /** What-if: the replay continued from the checkpoint after this turn with new inputs. */
  from: z.number().optional(),
  /** LLM text at least this alike counted as the same. */
  similarity: z.number(),
  trace: z.object({ traceId: z.string(), url: z.string().optional() }),
  turns: z.array(ReplayTurn),
  summary: z.object({
    turns: z.number(),
    same: z.number(),
    changed: z.number(),
    diverged: z.number(),
    skipped: z.number(),
    new: z.number(),
    migrations: z.number(),
    cost: z.object({ original: z.number().optional(), replay: z.number().optional(), currency: z.string() }),
  }),
});
export type ReplayReport = z.infer<typeof ReplayReport>;

/** Whether the report should fail a CI job: any turn that changed or diverged. */
export const reportFails = (report: ReplayReport): boolean => report.summary.changed > 0 || report.summary.diverged > 0;
