import { createHash } from 'node:crypto';
import type { LlmRequest } from './port';

/*
 * What a recorded LLM exchange is found by on replay. The digest covers everything that shapes the
 * answer (model, messages, tools, sampling options) and nothing that does not (the abort signal).
 * The part digests say which of those changed when a replayed request finds no recording.
 */

/** The request as it is digested: key order is part of the format, so it is built field by field. */
function canonical(request: LlmRequest): object {
  return {
    model: request.model,
    messages: request.messages,
    ...(request.tools?.length ? { tools: request.tools } : {}),
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(request.maxTokens !== undefined ? { maxTokens: request.maxTokens } : {}),
  };
}

const sha256 = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');

/** SHA-256 (hex) of the request. */
export function requestDigest(request: LlmRequest): string {
  return sha256(canonical(request));
}

/** Short digests of each part of a request, recorded beside the full digest. */
export interface RequestParts {
  model: string;
  tools: string;
  options: string;
  /** One per message, in order (the system prompt first). */
  messages: string[];
}

const short = (value: unknown) => sha256(value).slice(0, 12);

export function requestParts(request: LlmRequest): RequestParts {
  return {
    model: short(request.model),
    tools: short(request.tools ?? []),
    options: short([request.temperature ?? null, request.maxTokens ?? null]),
    messages: request.messages.map(short),
  };
}

/** Why `now` is not the recorded request, in words, from the part digests. */
export function partsDiffer(recorded: RequestParts, now: RequestParts): string[] {
  const reasons: string[] = [];
  if (recorded.model !== now.model) reasons.push('the model changed');
  if (recorded.tools !== now.tools) reasons.push('the tools offered changed');
  if (recorded.options !== now.options) reasons.push('temperature or max tokens changed');
  if (recorded.messages[0] !== now.messages[0]) reasons.push('the system prompt changed');
  if (recorded.messages.length !== now.messages.length) reasons.push(`${now.messages.length} messages instead of ${recorded.messages.length}`);
  else {
    const changed = now.messages.map((m, i) => (i > 0 && m !== recorded.messages[i] ? i : -1)).filter((i) => i > 0);
    if (changed.length) reasons.push(`message${changed.length > 1 ? 's' : ''} ${changed.join(', ')} changed`);
  }
  return reasons.length ? reasons : ['the request changed'];
}
