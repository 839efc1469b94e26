import type { ActionRunner, TemplateContext } from '../actions/port';
import type { RecordedEvent } from '../checkpoint/record';
import type { Checkpoint, LlmMessage } from '../checkpoint/schema';
import { type DialogueMap, localize, type StateLlm } from '../flow/map';
import { renderTemplate } from '../flow/template';
import { type AgentOutcome, runAgent } from '../llm/agent';
import { requestDigest, requestParts } from '../llm/digest';
import type { ChatMessage, LlmClient, LlmRequest, SafetyChecker } from '../llm/port';
import { addLlmUsage } from '../llm/usage';
import type { Usage } from '../protocol/v1';

/** The LLM as the runner uses it: absent when no model is configured (off-script input then gets the fallback). */
export interface LlmPorts {
  client: LlmClient;
  safety: SafetyChecker;
  /** How long a turn may spend on the LLM, tool rounds included. */
  budgetMs: number;
}

/** The LLM settings that apply at a node: its own, else the map's default, else none. */
export function llmSettingsFor(map: DialogueMap, node: string | null): StateLlm | undefined {
  return (node ? map.states[node]?.llm : undefined) ?? map.llm?.default;
}

export interface LlmTurnInput {
  map: DialogueMap;
  ports: LlmPorts;
  actions: ActionRunner;
  settings: StateLlm;
  checkpoint: Checkpoint;
  language: string;
  template: TemplateContext;
  signal: AbortSignal;
  now: () => number;
  at: () => number;
}

/** Streams the LLM's answer to the last user message; returns the agent's outcome. */
export function answerWithLlm(input: LlmTurnInput): AsyncGenerator<string, AgentOutcome, void> {
  const { map, settings, checkpoint, language } = input;
  const system = renderTemplate(localize(settings.system_prompt, language, map.language), input.template).text;
  return runAgent({
    map,
    settings,
    llm: input.ports.client,
    safety: input.ports.safety,
    actions: input.actions,
    language,
    system,
    summary: checkpoint.summary,
    history: toChat(checkpoint.messages),
    template: input.template,
    deadline: input.now() + input.ports.budgetMs,
    signal: input.signal,
    now: input.now,
    at: input.at,
  });
}

/** Adds one turn's LLM usage (per model) to a total. */
export function addUsage(total: Usage, turn: Usage['llm']): Usage {
  return { ...total, llm: addLlmUsage(total.llm, turn) };
}

/**
 * Keeps the stored context bounded: once the messages pass the window, the older ones (all but
 * half a window) fold into the running summary, made by the LLM when one is configured (otherwise
 * they are dropped). The cut never separates a tool
 * result from the call it answers.
 */
export async function foldContext(input: {
  checkpoint: Checkpoint;
  window: number;
  everything?: boolean;
  ports: LlmPorts | undefined;
  language: string;
  now: () => number;
  at: () => number;
}): Promise<{ checkpoint: Checkpoint; event: RecordedEvent | null; usage: Usage['llm']; exchange?: RecordedEvent }> {
  const { checkpoint } = input;
  const messages = checkpoint.messages;
  if (!input.everything && messages.length <= input.window) return { checkpoint, event: null, usage: {} };
  // Fold down to half the window, so a summary is made every window/2 messages, not every turn.
  let cut = input.everything ? messages.length : messages.length - Math.floor(input.window / 2);
  while (cut < messages.length && messages[cut]!.role === 'tool') cut += 1;
  if (cut === 0) return { checkpoint, event: null, usage: {} };
  const folded = messages.slice(0, cut);
  const kept = messages.slice(cut);
  if (!input.ports) {
    return { checkpoint: { ...checkpoint, messages: kept }, event: { type: 'summary', folded: cut, ok: false, atMs: input.at() }, usage: {} };
  }
  const transcript = folded
    .filter((m) => (m.role === 'user' || m.role === 'assistant') && m.content.trim())
    .map((m) => `${m.role}: ${m.content}`)
    .join('\n');
  const request: ChatMessage[] = [
    {
      role: 'system',
      content:
        'Summarize the conversation below for the assistant that continues it, in the language of the conversation, in at most 120 words. Keep facts, names, numbers, decisions and open questions; drop small talk.',
    },
    { role: 'user', content: `${checkpoint.summary ? `Summary so far: ${checkpoint.summary}\n\n` : ''}${transcript}` },
  ];
  let summary = '';
  let usage: Usage['llm'] = {};
  const llmRequest: LlmRequest = { model: input.ports.client.defaultModel, messages: request, maxTokens: 300 };
  const started = input.now();
  let exchange: RecordedEvent | undefined;
  try {
    for await (const event of input.ports.client.stream(llmRequest, input.now() + 8000)) {
      if (event.type === 'text') summary += event.delta;
      else {
        if (event.usage) usage = { [event.model]: event.usage };
        // Recorded like every answer, so a replay folds the same context without the model.
        exchange = {
          type: 'llm_exchange',
          purpose: 'summary',
          model: event.model,
          requestDigest: requestDigest(llmRequest),
          request: { messages: request.length, tools: [], parts: requestParts(llmRequest) },
          response: { text: summary, toolCalls: [], finishReason: event.finishReason },
          usage: event.usage,
          ms: input.now() - started,
          atMs: input.at(),
        };
      }
    }
  } catch {
    summary = '';
  }
  const ok = summary.trim().length > 0;
  return {
    // Without a summary the old messages are still dropped: the bound matters more than the detail.
    checkpoint: { ...checkpoint, messages: kept, summary: ok ? summary.trim() : checkpoint.summary },
    event: { type: 'summary', folded: cut, ok, atMs: input.at() },
    usage,
    ...(exchange ? { exchange } : {}),
  };
}

/** The stored messages as chat-completions messages (tool calls and results included). */
function toChat(messages: readonly LlmMessage[]): ChatMessage[] {
  return messages.map((m) => m as unknown as ChatMessage);
}
