import type { Usage } from '../protocol/v1';

/** Adds LLM token counts per model (input, output, cached) to a total, without changing either. */
export function addLlmUsage(total: Usage['llm'], more: Usage['llm']): Usage['llm'] {
  const sum = { ...total };
  for (const [model, u] of Object.entries(more)) {
    const seen = sum[model] ?? { inputTokens: 0, outputTokens: 0, cachedTokens: 0 };
    sum[model] = {
      inputTokens: seen.inputTokens + u.inputTokens,
      outputTokens: seen.outputTokens + u.outputTokens,
      cachedTokens: seen.cachedTokens + u.cachedTokens,
    };
  }
  return sum;
}
