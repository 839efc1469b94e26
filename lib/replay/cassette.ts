import { isDeepStrictEqual } from 'node:util';
import * as z from 'zod';
import type { ActionOutcome, ActionRunner, RenderedRequest, TemplateContext } from '../actions/port';
import { renderActionRequest } from '../actions/webhook';
import { ActionRequest, type RecordedEvent } from '../checkpoint/record';
import type { DialogueMap } from '../flow/map';
import { partsDiffer, requestDigest, requestParts } from '../llm/digest';
import { LlmError, type LlmClient, type LlmRequest, type LlmStreamEvent, type SafetyChecker } from '../llm/port';

/*
 * Recorded mode: the LLM, the safety check and the webhooks answer from one turn's record, so a
 * replay is free, offline and deterministic. A request the recording does not hold is a divergence:
 * it is reported, and answered with a failure rather than with a guess.
 */

export const Divergence = z.object({
  kind: z.enum(['llm', 'webhook']),
  /** The webhook action, or the model. */
  name: z.string(),
  /** What changed, as far as the recording can tell. */
  reasons: z.array(z.string()),
  /** The webhook request as recorded and as the replay rendered it. */
  recorded: ActionRequest.optional(),
  replayed: ActionRequest.optional(),
});
export type Divergence = z.infer<typeof Divergence>;

type Exchange = Extract<RecordedEvent, { type: 'llm_exchange' }>;
type Action = Extract<RecordedEvent, { type: 'action' }>;

/** What the replay answers with when the recording has nothing: the runner's ordinary failure paths take over. */
export const DIVERGED = 'replay divergence: the recording holds no answer to this request';

export interface Cassette {
  llm: LlmClient;
  safety: SafetyChecker;
  actions: ActionRunner;
  /** The divergences met so far, in order. */
  readonly divergences: Divergence[];
}

/** A cassette of one recorded turn; `defaultModel` is the configured model, as in a live run. */
export function cassetteOf(events: readonly RecordedEvent[], map: DialogueMap, defaultModel: string): Cassette {
  const exchanges = events.filter((e): e is Exchange => e.type === 'llm_exchange');
  const actions = events.filter((e): e is Action => e.type === 'action');
  const usedExchanges = new Set<Exchange>();
  const usedActions = new Set<Action>();
  const divergences: Divergence[] = [];
  let tripped = false;
  const trip = events.find((e) => e.type === 'safety_trip');

  const llm: LlmClient = {
    defaultModel,
    async *stream(request: LlmRequest): AsyncIterable<LlmStreamEvent> {
      const digest = requestDigest(request);
      const hit = exchanges.find((e) => !usedExchanges.has(e) && e.requestDigest === digest);
      if (!hit) {
        // The next exchange the recording made is the one this request stands in for, if any.
        const counterpart = exchanges.find((e) => !usedExchanges.has(e));
        const parts = counterpart?.request.parts;
        const reasons = !counterpart ? ['the recording made no such LLM call'] : parts ? partsDiffer(parts, requestParts(request)) : ['the request changed'];
        divergences.push({ kind: 'llm', name: request.model, reasons });
        throw new LlmError('llm_error', DIVERGED);
      }
      usedExchanges.add(hit);
      if (hit.response.text) yield { type: 'text', delta: hit.response.text };
      yield { type: 'end', toolCalls: hit.response.toolCalls, finishReason: hit.response.finishReason, usage: hit.usage, model: hit.model };
    },
  };

  // The recorded verdict: the first sentence tripped the check in the recording, or nothing did.
  const safety: SafetyChecker = {
    async check() {
      if (trip?.type !== 'safety_trip' || tripped) return { safe: true };
      tripped = true;
      return { safe: false, category: trip.category };
    },
  };

  const runner: ActionRunner = {
    async run(name: string, context: TemplateContext): Promise<ActionOutcome> {
      const action = Object.hasOwn(map.actions, name) ? map.actions[name] : undefined;
      let rendered: RenderedRequest | undefined;
      try {
        rendered = action ? renderActionRequest(action, context).request : undefined;
      } catch {
        rendered = undefined;
      }
      const same = (e: Action) => e.name === name && (!e.request || !rendered || isDeepStrictEqual(e.request, rendered));
      const hit = actions.find((e) => !usedActions.has(e) && same(e));
      const seen = rendered ? { request: rendered } : {};
      if (!hit) {
        const counterpart = actions.find((e) => !usedActions.has(e) && e.name === name);
        divergences.push({
          kind: 'webhook',
          name,
          reasons: counterpart ? ['the request changed'] : ['the recording made no such webhook call'],
          ...(counterpart?.request ? { recorded: counterpart.request } : {}),
          ...(rendered ? { replayed: rendered } : {}),
        });
        return { ok: false, kind: 'action_failed', detail: DIVERGED, ms: 0, attempts: 0, ...seen };
      }
      usedActions.add(hit);
      const timing = { ms: hit.ms, attempts: hit.attempts, ...seen };
      if (hit.ok) return { ok: true, result: hit.result ?? null, ...timing };
      return { ok: false, kind: hit.kind === 'action_timeout' ? 'action_timeout' : 'action_failed', detail: hit.detail ?? '', ...timing };
    },
  };

  return { llm, safety, actions: runner, divergences };
}
