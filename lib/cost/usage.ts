import type { Usage } from '../protocol/v1';

/** The metered fields of Usage (lib/protocol/v1.ts): what the cost ledger needs beyond tokens, characters and seconds. */
export type MeteredUsage = Pick<
  Usage,
  'ttsCharactersByEngine' | 'sttSecondsByProvider' | 'lambdaRequests' | 'lambdaMs' | 'lambdaGbSeconds' | 'dynamoReadUnits' | 'dynamoWriteUnits' | 'dynamoRecordWriteUnits' | 'apiGatewayMessages'
>;

const COUNTERS = ['lambdaRequests', 'lambdaMs', 'lambdaGbSeconds', 'dynamoReadUnits', 'dynamoWriteUnits', 'dynamoRecordWriteUnits', 'apiGatewayMessages'] as const;

/**
 * `total` with a turn's metered fields added (the session's usage in the checkpoint). A field stays
 * absent until some turn measured it, so a session that began before metering does not claim zeros.
 */
export function addMetered(total: Usage, turn: MeteredUsage): Usage {
  const sum: Usage = { ...total };
  for (const key of COUNTERS) {
    const more = turn[key];
    // Rounded: GB-seconds summed over hundreds of turns would otherwise grow a float tail.
    if (more !== undefined) sum[key] = Math.round(((total[key] ?? 0) + more) * 1e9) / 1e9;
  }
  if (turn.ttsCharactersByEngine) sum.ttsCharactersByEngine = addCounts(total.ttsCharactersByEngine, turn.ttsCharactersByEngine);
  if (turn.sttSecondsByProvider) sum.sttSecondsByProvider = addCounts(total.sttSecondsByProvider, turn.sttSecondsByProvider);
  return sum;
}

function addCounts(total: Record<string, number> | undefined, more: Record<string, number>): Record<string, number> {
  const sum = { ...total };
  for (const [key, n] of Object.entries(more)) sum[key] = Math.round(((sum[key] ?? 0) + n) * 1e9) / 1e9;
  return sum;
}

/** The engine key a voice's characters are priced by: Polly's engine, or the provider (`espeak`). */
export function ttsEngineOf(voice: { provider: string; engine?: string | undefined }): string {
  // Polly's own default when a request names no engine is `standard`.
  return voice.provider === 'polly' ? (voice.engine ?? 'standard') : voice.provider;
}
