import type { FunctionEnv } from '../config/env';
import type { Log } from '../observability/log';
import type { LlmPorts } from '../runner/llm-turn';
import type { LlmClient, LlmRequest, SafetyChecker } from './port';
import { DEFAULT_BLOCKED, localSafetyChecker } from './safety-local';

const allowAll: SafetyChecker = { check: async () => ({ safe: true }) };

/**
 * The LLM ports for a key, or undefined without one: then the runner works as before and
 * off-script input gets the map's fallback. Clients are built once per key and reused.
 *
 * The `openai` SDK is imported on the first LLM call, not at cold start: it roughly doubles the
 * turn function's import time, and most turns of a scripted bot never reach the LLM.
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
    const safety: SafetyChecker =
      mode === 'openai'
        ? lazySafety(async () => (await import('./moderation')).openAiModeration(common))
        : mode === 'local'
          ? localSafetyChecker({ blocked: [...DEFAULT_BLOCKED, ...env.PARLEY_SAFETY_BLOCKED] })
          : allowAll;
    const client = lazyClient(env.OPENAI_MODEL, async () =>
      (await import('./openai')).openAiClient({ ...common, defaultModel: env.OPENAI_MODEL, ...(options.log ? { log: options.log } : {}) }),
    );
    ports = { client, safety, budgetMs: env.PARLEY_LLM_BUDGET_MS };
    built.set(apiKey, ports);
    return ports;
  };
}

function lazyClient(defaultModel: string, load: () => Promise<LlmClient>): LlmClient {
  let loaded: Promise<LlmClient> | undefined;
  return {
    defaultModel,
    async *stream(request: LlmRequest, deadline: number) {
      const client = await (loaded ??= load());
      yield* client.stream(request, deadline);
    },
  };
}

function lazySafety(load: () => Promise<SafetyChecker>): SafetyChecker {
  let loaded: Promise<SafetyChecker> | undefined;
  return { check: async (text, language) => (await (loaded ??= load())).check(text, language) };
}
