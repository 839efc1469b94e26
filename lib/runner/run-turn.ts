import type { Checkpoint } from '../checkpoint/schema';
import { NODE_HISTORY_LIMIT } from '../checkpoint/schema';
import type { RecordedEvent, TurnInput, TurnStatus } from '../checkpoint/record';
import type { IntentClassifier } from '../flow/classifier';
import { advanceFlow, candidateIntents, enterFlow, type FlowStep } from '../flow/engine';
import type { DialogueMap } from '../flow/map';
import type { ServerEvent, Usage } from '../protocol/v1';
import type { Clock } from './ports';

export interface TurnContext {
  turnId: string;
  input: TurnInput;
  /** The checkpoint after the previous turn (an empty one for a new session). */
  checkpoint: Checkpoint;
  map: DialogueMap;
  classifier: IntentClassifier;
  clock: Clock;
}

export interface TurnOutcome {
  checkpoint: Checkpoint;
  status: TurnStatus;
  events: RecordedEvent[];
  usage: Usage;
  runMs: number;
}

/**
 * One turn, as data: yields the events for the client as they happen and returns the checkpoint
 * after the turn. No I/O of its own, so Lambda, the local runtime, tests, replay and benchmarks all
 * run exactly this; the caller sends what is yielded and commits what is returned.
 */
export async function* runTurn(ctx: TurnContext): AsyncGenerator<ServerEvent, TurnOutcome, void> {
  const started = ctx.clock.monotonicMs();
  const at = () => Math.round((ctx.clock.monotonicMs() - started) * 1000) / 1000;
  const events: RecordedEvent[] = [];
  const usage: Usage = { llm: {}, ttsCharacters: 0, sttSeconds: 0 };
  const finish = (checkpoint: Checkpoint, status: TurnStatus): TurnOutcome => ({
    checkpoint: { ...checkpoint, turnState: 'user' },
    status,
    events,
    usage,
    runMs: at(),
  });
  const { input, turnId } = ctx;
  let checkpoint = ctx.checkpoint;

  if (input.kind === 'stop') {
    events.push({ type: 'session_end', reason: input.reason, atMs: at() });
    return finish({ ...checkpoint, ended: true }, 'stopped');
  }

  yield { type: 'turn.started', turnId };

  let step: FlowStep;
  if (input.kind === 'start') {
    step = enterFlow(ctx.map);
  } else {
    checkpoint = { ...checkpoint, messages: [...checkpoint.messages, { role: 'user', content: input.text }] };
    const classification = ctx.classifier.classify(input.text, candidateIntents(ctx.map, checkpoint.currentNode));
    events.push({ type: 'intent', intent: classification.intent, score: classification.score, atMs: at() });
    step = advanceFlow(ctx.map, { node: checkpoint.currentNode, variables: checkpoint.variables }, classification);
    checkpoint = { ...checkpoint, previousIntentLeader: classification.intent };
  }

  if (step.transition) {
    const { from, to } = step.transition;
    events.push({ type: 'node_transition', from, to, atMs: at() });
    yield { type: 'node.transition', turnId, from, to };
    checkpoint = {
      ...checkpoint,
      currentNode: to,
      nodeHistory: from === null ? checkpoint.nodeHistory : [...checkpoint.nodeHistory, from].slice(-NODE_HISTORY_LIMIT),
    };
  }
  checkpoint = { ...checkpoint, variables: step.variables };

  const text = step.say.filter((s) => s.length > 0).join(' ');
  if (text) {
    // Scripted text is known whole; one delta keeps the stream shape the LLM path will have.
    yield { type: 'response.text.delta', turnId, text };
    yield { type: 'response.text.done', turnId, text };
    checkpoint = { ...checkpoint, messages: [...checkpoint.messages, { role: 'assistant', content: text }] };
  }

  if (step.endCall) {
    events.push({ type: 'session_end', reason: 'end_call', atMs: at() });
    yield { type: 'session.ended', reason: 'end_call' };
    checkpoint = { ...checkpoint, ended: true };
  }
  return finish(checkpoint, 'completed');
}
