import OpenAI from 'openai';
import { silentLog, type Log } from '../observability/log';
import type { SafetyChecker } from './port';

export interface OpenAiModerationOptions {
  apiKey: string;
  baseURL?: string;
  fetch?: typeof fetch;
  /** Default 'omni-moderation-latest'. */
  model?: string;
  /**
   * What a failed check (outage, timeout, 4xx/5xx, unreadable answer) means. Default 'allow'.
   *
   * Why fail OPEN by default: the check sits on the speaking path of every LLM answer (the first
   * sentence is held until it returns). The model's own safety training and the system prompt stay in
   * force, so a moderation outage only removes a second line of defence — whereas failing closed
   * would turn every moderation hiccup into a bot that refuses to talk (an outage of ours caused by
   * an outage of theirs). Every such pass is logged at warn level with the error, so it is visible.
   * Deployments where saying something unchecked is worse than saying nothing (children, regulated
   * domains) set 'block'.
   */
  onError?: 'allow' | 'block';
  /** Per-check timeout; the check delays the first sentence, so it is short. Default 2 000 ms. */
  timeoutMs?: number;
  log?: Log;
}

/** The category reported when a check failed and onError is 'block'. */
export const MODERATION_UNAVAILABLE = 'moderation_unavailable';

/**
 * SafetyChecker on OpenAI's moderation endpoint (`client.moderations.create`). Flagged text is unsafe
 * with its first flagged category (in the order the API lists them). The endpoint is multilingual,
 * so `language` is not sent. No retries: a retry would hold the first sentence even longer.
 */
export function openAiModeration(options: OpenAiModerationOptions): SafetyChecker {
  const log = options.log ?? silentLog;
  const onError = options.onError ?? 'allow';
  const model = options.model ?? 'omni-moderation-latest';
  const client = new OpenAI({
    apiKey: options.apiKey,
    ...(options.baseURL !== undefined ? { baseURL: options.baseURL } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    maxRetries: 0,
    timeout: options.timeoutMs ?? 2_000,
    logLevel: 'off',
  });

  return {
    async check(text, language) {
      try {
        const response = await client.moderations.create({ model, input: text });
        const result = response.results?.[0];
        if (!result) throw new Error('the moderation answer has no result');
        if (!result.flagged) return { safe: true };
        const category = Object.entries(result.categories ?? {}).find(([, on]) => on === true)?.[0];
        return category === undefined ? { safe: false } : { safe: false, category };
      } catch (err) {
        const data = {
          onError,
          language,
          error: err instanceof Error ? err.message : String(err),
          ...(typeof (err as { status?: unknown })?.status === 'number' ? { status: (err as { status: number }).status } : {}),
        };
        if (onError === 'block') {
          log.warn('moderation check failed; blocking the text', data);
          return { safe: false, category: MODERATION_UNAVAILABLE };
        }
        log.warn('moderation check failed; allowing the text unchecked', data);
        return { safe: true };
      }
    },
  };
}
