import type { FunctionEnv } from '../config/env';
import type { Log } from '../observability/log';
import type { LlmPorts } from '../runner/llm-turn';
import { openAiModeration } from './moderation';
import { openAiClient } from './openai';
import type { SafetyChecker } from './port';
import { DEFAULT_BLOCKED, localSafetyChecker } from './safety-local';

const allowAll: SafetyChecker = { check: async () => ({ safe: true }) };

/**
 * The LLM ports for a key, or undefined without one: then the runner works as before and
 * off-script input gets the map's fallback. Clients are built once per key and reused.
 */
export function llmPortsFactory(env: FunctionEnv, options: { fetch?: typeof fetch; log?: Log } = {}): (apiKey: string | undefined) => LlmPorts | undefined {
  const built = new Map<string, LlmPorts>();
  return (apiKey) => {
    if (!apiKey) return undefined;
    let ports = built.get(apiKey);
    if (ports) return ports;
    const common = { apiKey, ...(env.OPENAI_BASE_URL ? { baseURL: env.OPENAI_BASE_URL } : {}), ...(options.fetch ? { fetch: options.fetch } : {}) };
    const onOpenAi = !env.OPENAI_BASE_URL || new URL(env.OPENAI_BASE_URL).hostname === 'api.openai.com';
    const mode = env.PARLEY_SAFETY === 'auto' ? (onOpenAi ? 'openai' : 'local') : env.PARLEY_SAFETY;
    const safety =
      mode === 'openai'
        ? openAiModeration(common)
        : mode === 'local'
          ? localSafetyChecker({ blocked: [...DEFAULT_BLOCKED, ...env.PARLEY_SAFETY_BLOCKED] })
          : allowAll;
    ports = {
      client: openAiClient({ ...common, defaultModel: env.OPENAI_MODEL, ...(options.log ? { log: options.log } : {}) }),
      safety,
      budgetMs: env.PARLEY_LLM_BUDGET_MS,
    };
    built.set(apiKey, ports);
    return ports;
  };
}
