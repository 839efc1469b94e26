import type { ActionRunner, TemplateContext } from '../actions/port';
import { actionEvent, type RecordedEvent } from '../checkpoint/record';
import { BUILTIN_TOOLS, type DialogueMap, type StateLlm } from '../flow/map';
import type { Usage } from '../protocol/v1';
import { type ChatMessage, LlmError, type LlmClient, type LlmErrorKind, type LlmStreamEvent, type SafetyChecker, type ToolCall, type ToolSpec } from './port';
import { requestDigest, requestParts } from './digest';
import { SentenceSegmenter } from './segmenter';
import { addLlmUsage } from './usage';

/*
 * Run until quiet (seed 002): LLM, tool calls, tool results, LLM again, until a completion ends
 * without tool calls, bounded by `max_rounds` and the turn deadline. Tool calls run only after their
 * generation finished normally, so a cancelled generation's tool calls (a hallucinated end_call on a
 * live caller) never execute. The first sentence is checked for safety before any of it is sent
 * (seed 004).
 */

export interface AgentContext {
  map: DialogueMap;
  settings: StateLlm;
  llm: LlmClient;
  safety: SafetyChecker;
  actions: ActionRunner;
  language: string;
  /** The rendered system prompt. */
  system: string;
  summary: string | null;
  /** The conversation so far, the user's new message last. */
  history: ChatMessage[];
  template: TemplateContext;
  /** Epoch ms by which the turn must be done. */
  deadline: number;
  signal: AbortSignal;
  now: () => number;
  at: () => number;
}

export interface AgentOutcome {
  /** What the client was sent. */
  text: string;
  /** Messages the turn adds to the context (assistant, tool), in order. */
  messages: ChatMessage[];
  variables: Record<string, unknown>;
  transitionTo: string | null;
  endCall: boolean;
  /** The answer was replaced by the map's safe response. */
  unsafe: boolean;
  cancelled: boolean;
  error: LlmErrorKind | null;
  usage: Usage['llm'];
  events: RecordedEvent[];
}

const MAX_VARIABLE_CHARS = 500;

/** Streams the agent's answer as text deltas; returns what happened. */
export async function* runAgent(ctx: AgentContext): AsyncGenerator<string, AgentOutcome, void> {
  const out: AgentOutcome = {
    text: '',
    messages: [],
    variables: {},
    transitionTo: null,
    endCall: false,
    unsafe: false,
    cancelled: false,
    error: null,
    usage: {},
    events: [],
  };
  const tools = toolSpecs(ctx.map, ctx.settings);
  const model = ctx.settings.model ?? ctx.llm.defaultModel;
  let safetyChecked = false;

  for (let round = 1; round <= ctx.settings.max_rounds; round++) {
    // A cancel may come while a tool runs: no further round, nothing more is said.
    if (ctx.signal.aborted) {
      out.cancelled = true;
      break;
    }
    if (ctx.now() >= ctx.deadline) {
      out.error = 'llm_timeout';
      break;
    }
    const messages: ChatMessage[] = [
      { role: 'system', content: ctx.summary ? `${ctx.system}\n\nEarlier in this conversation: ${ctx.summary}` : ctx.system },
      ...ctx.history,
      ...out.messages,
    ];
    const request = {
      model,
      messages,
      ...(tools.length ? { tools } : {}),
      ...(ctx.settings.temperature !== undefined ? { temperature: ctx.settings.temperature } : {}),
      ...(ctx.settings.max_tokens !== undefined ? { maxTokens: ctx.settings.max_tokens } : {}),
    };
    const started = ctx.now();
    // The generation stops on the turn's signal and when the safety check trips.
    const generation = new AbortController();
    const stop = () => generation.abort();
    ctx.signal.addEventListener('abort', stop, { once: true });
    const segmenter = new SentenceSegmenter(ctx.language);
    const sentBefore = out.text.length;
    let held = '';
    let roundText = '';
    let end: Extract<LlmStreamEvent, { type: 'end' }> | null = null;
    try {
      for await (const event of ctx.llm.stream({ ...request, signal: generation.signal }, ctx.deadline)) {
        if (event.type === 'end') {
          end = event;
          break;
        }
        roundText += event.delta;
        if (safetyChecked) {
          out.text += event.delta;
          yield event.delta;
          continue;
        }
        held += event.delta;
        const [first] = segmenter.push(event.delta);
        if (first === undefined) continue;
        safetyChecked = true;
        if (!(await isSafe(ctx, first, out))) {
          generation.abort();
          break;
        }
        // The cancel may have come while the check ran: then not even the first sentence goes out.
        if (ctx.signal.aborted) break;
        out.text += held;
        yield held;
        held = '';
      }
      // A one-sentence answer ends before a second sentence proves the first complete.
      if (!safetyChecked && held && !out.unsafe && !generation.signal.aborted) {
        safetyChecked = true;
        if (await isSafe(ctx, held, out)) {
          out.text += held;
          yield held;
        }
      }
    } catch (err) {
      out.error = err instanceof LlmError ? err.kind : 'llm_error';
      out.events.push({ type: 'llm_error', kind: out.error, detail: (err instanceof Error ? err.message : String(err)).slice(0, 200), atMs: ctx.at() });
      break;
    } finally {
      ctx.signal.removeEventListener('abort', stop);
    }
    if (ctx.signal.aborted) {
      out.cancelled = true;
      // What was sent before the cancel stays in the context, so the next answer follows on from it.
      const partial = out.text.slice(sentBefore);
      if (partial.trim()) out.messages.push({ role: 'assistant', content: partial });
      break;
    }
    if (out.unsafe || !end) break;

    const usage = end.usage;
    if (usage) out.usage = addLlmUsage(out.usage, { [end.model]: usage });
    // Every exchange is kept whole, so a stored conversation can be replayed without the model.
    out.events.push({
      type: 'llm_exchange',
      model: end.model,
      requestDigest: requestDigest(request),
      request: { messages: messages.length, tools: tools.map((t) => t.name), parts: requestParts(request) },
      response: { text: roundText, toolCalls: end.toolCalls, finishReason: end.finishReason },
      usage: usage ?? null,
      ms: ctx.now() - started,
      atMs: ctx.at(),
    });
    out.messages.push(end.toolCalls.length ? { role: 'assistant', content: roundText, tool_calls: end.toolCalls } : { role: 'assistant', content: roundText });
    if (end.toolCalls.length === 0) break;

    for (const call of end.toolCalls) {
      // Every call gets an answer (the chat format requires it), but none runs once the turn is cancelled.
      const result = ctx.signal.aborted ? { ok: false, content: JSON.stringify({ error: 'cancelled' }) } : await runTool(ctx, call, out);
      out.events.push({ type: 'tool_call', name: call.name, arguments: call.arguments, ok: result.ok, result: result.content.slice(0, 500), atMs: ctx.at() });
      out.messages.push({ role: 'tool', tool_call_id: call.id, content: result.content });
    }
    if (round === ctx.settings.max_rounds) out.events.push({ type: 'llm_rounds_exhausted', rounds: round, atMs: ctx.at() });
  }
  return out;
}

async function isSafe(ctx: AgentContext, sentence: string, out: AgentOutcome): Promise<boolean> {
  const verdict = await ctx.safety.check(sentence, ctx.language);
  if (verdict.safe) return true;
  out.unsafe = true;
  out.events.push({ type: 'safety_trip', category: verdict.category ?? 'unsafe', atMs: ctx.at() });
  return false;
}

/** The tools a state offers, as the model sees them. */
export function toolSpecs(map: DialogueMap, settings: StateLlm): ToolSpec[] {
  return settings.tools.map((name) => {
    switch (name) {
      case 'transition_to':
        return {
          name,
          description: 'Move the conversation to another state of the dialogue.',
          parameters: { type: 'object', properties: { state: { type: 'string', enum: Object.keys(map.states) } }, required: ['state'] },
        };
      case 'set_variable':
        return {
          name,
          description: 'Remember a value for the rest of the conversation.',
          parameters: { type: 'object', properties: { name: { type: 'string' }, value: { type: ['string', 'number', 'boolean'] } }, required: ['name', 'value'] },
        };
      case 'end_call':
        return { name, description: 'End the conversation after your answer.', parameters: { type: 'object', properties: { reason: { type: 'string' } } } };
      default: {
        const tool = map.tools[name]!;
        return { name, description: tool.description, parameters: tool.parameters };
      }
    }
  });
}

/** Runs one tool call; whatever is wrong with it goes back to the model as an error result. */
async function runTool(ctx: AgentContext, call: ToolCall, out: AgentOutcome): Promise<{ ok: boolean; content: string }> {
  const fail = (message: string) => ({ ok: false, content: JSON.stringify({ error: message }) });
  const offered = ctx.settings.tools;
  if (!call.name.trim() || !offered.includes(call.name)) return fail(`unknown tool '${call.name}'; available: ${offered.join(', ')}`);
  if (!call.arguments.trim()) return fail('the arguments are empty: send a JSON object');
  let args: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(call.arguments);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return fail('the arguments must be a JSON object');
    args = parsed as Record<string, unknown>;
  } catch {
    return fail('the arguments are not valid JSON');
  }
  if ((BUILTIN_TOOLS as readonly string[]).includes(call.name)) return builtin(ctx, call.name, args, out);

  const tool = ctx.map.tools[call.name]!;
  const context = { ...ctx.template, session: { ...ctx.template.session, variables: { ...ctx.template.session.variables, ...out.variables } }, args };
  const outcome = await ctx.actions.run(tool.webhook, context);
  out.events.push(actionEvent(tool.webhook, outcome, ctx.at()));
  if (!outcome.ok) return fail(`${outcome.kind}: ${outcome.detail}`);
  // As for any action, the result lands in its variable too, for the flow and later templates.
  out.variables[ctx.map.actions[tool.webhook]!.result_variable] = outcome.result;
  return { ok: true, content: JSON.stringify(outcome.result ?? null) };
}

function builtin(ctx: AgentContext, name: string, args: Record<string, unknown>, out: AgentOutcome): { ok: boolean; content: string } {
  const fail = (message: string) => ({ ok: false, content: JSON.stringify({ error: message }) });
  switch (name) {
    case 'transition_to': {
      const state = args.state;
      if (typeof state !== 'string' || !Object.hasOwn(ctx.map.states, state)) return fail(`unknown state '${String(state)}'`);
      out.transitionTo = state;
      return { ok: true, content: JSON.stringify({ ok: true, state }) };
    }
    case 'set_variable': {
      const { name: variable, value } = args;
      if (typeof variable !== 'string' || !/^[A-Za-z_][\w]*$/.test(variable) || variable === '__proto__') return fail('name must be a variable name');
      if (!['string', 'number', 'boolean'].includes(typeof value)) return fail('value must be a string, number or boolean');
      // Variables live in the checkpoint: a value is a fact to remember, not a document.
      if (typeof value === 'string' && value.length > MAX_VARIABLE_CHARS) return fail(`value must be at most ${MAX_VARIABLE_CHARS} characters`);
      out.variables[variable] = value;
      return { ok: true, content: JSON.stringify({ ok: true }) };
    }
    default:
      out.endCall = true;
      return { ok: true, content: JSON.stringify({ ok: true, note: 'the conversation ends after your answer' }) };
  }
}
