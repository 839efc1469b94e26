import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { TurnRecord } from '../../lib/checkpoint/record';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import { llmPortsFactory } from '../../lib/llm/configure';
import type { ServerEvent } from '../../lib/protocol/v1';
import { emptyAudioCache } from '../../lib/speech/audio-cache';
import { voiceFor } from '../../lib/speech/tts/voice';
import { createEspeakSynthesizer, type EspeakSynthesizer } from '../../local/speech/espeak';
import { ByTurn, endOf, within } from '../support/by-turn';
import { recordFault } from '../support/fault-table';
import type { FaultKind, FaultSpec } from '../support/faults';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';
import { startTwoLambdas, type TwoLambdas } from '../support/two-lambdas';
import { sampleMap, sampleModel, TestClient, textOf } from './harness';

/*
 * Seed 002's crash recovery, stage by stage: a turn runs in one Lambda whose port fails at one stage
 * (it throws, or it hangs for good, ignoring every abort, as a frozen socket or a stuck process
 * does), then the next input of the same session runs in another Lambda with healthy adapters. The
 * lease is short (400 ms), so a dead turn's lease expires within the test. Whatever died where, the
 * next turn must run from the last completed checkpoint, commit exactly one record, and never fork
 * the chain; a hung turn that wakes up later must not be able to commit over it.
 */

const LEASE = { leaseMs: 400, renewMs: 200, pollMs: 40, turnMs: 2000, waitMs: 5000 };
const PCM16K = { format: 'pcm', sampleRate: 16000 } as const;
const LLM_ANSWER = 'We roast our beans on Tuesdays. They come from a small farm in Colombia.';

/** What the dead turn says, and so which stages it passes through. */
type Input = 'scripted' | 'faq' | 'order' | 'llm' | 'llm-slow';
const TEXT: Record<Input, string> = {
  scripted: 'menu',
  faq: 'what time do you open?',
  order: 'yes please',
  llm: 'where do your coffee beans come from?',
  'llm-slow': 'where do your coffee beans come from?',
};

interface Case {
  /** The turn's stage, as the fault table names it. */
  stage: string;
  target: string;
  kind: FaultKind;
  spec?: Omit<FaultSpec, 'kind'>;
  input: Input;
  audio?: boolean;
  /**
   * Where the dead turn's record ends up: `none` (it died before its commit), `before` the next
   * turn's (it committed, or died after its commit), or `after` it (it was only delayed, and ran
   * late on the newer checkpoint).
   */
  record: 'none' | 'before' | 'after';
  /** What the failed turn's client must get last: a code of `error`, `turn.completed`, or nothing (null). */
  client: string | null;
  /** A hang the turn itself bounds (the player's stall limit): the turn ends before the next input. */
  survives?: boolean;
}

const throwing: Case[] = [
  { stage: 'classifier', target: 'classifier.classify', kind: 'throw', input: 'scripted', record: 'none', client: 'server.internal' },
  { stage: 'FAQ search', target: 'faq.search', kind: 'throw', input: 'faq', record: 'none', client: 'server.internal' },
  { stage: 'webhook action', target: 'actions.run', kind: 'throw', input: 'order', record: 'none', client: 'server.internal' },
  { stage: 'LLM stream', target: 'llm.stream', kind: 'throw', input: 'llm', record: 'before', client: 'turn.completed' },
  { stage: 'LLM stream', target: 'llm.stream', kind: 'throw', spec: { afterItems: 2 }, input: 'llm', record: 'before', client: 'turn.completed' },
  { stage: 'LLM safety check', target: 'safety.check', kind: 'throw', input: 'llm', record: 'before', client: 'turn.completed' },
  { stage: 'synthesizer', target: 'tts.synthesize', kind: 'throw', input: 'scripted', audio: true, record: 'before', client: 'turn.completed' },
  { stage: 'synthesizer', target: 'tts.synthesize', kind: 'throw', spec: { afterItems: 1 }, input: 'scripted', audio: true, record: 'before', client: 'turn.completed' },
  { stage: 'connection store', target: 'connections.get', kind: 'throw', input: 'scripted', record: 'none', client: 'server.internal' },
  { stage: 'session store: load head', target: 'store.loadHead', kind: 'throw', input: 'scripted', record: 'none', client: 'server.internal' },
  { stage: 'session store: take lease', target: 'store.acquireTurn', kind: 'throw', input: 'scripted', record: 'none', client: 'server.internal' },
  { stage: 'session store: cancel poll', target: 'store.cancelRequested', kind: 'throw', input: 'llm-slow', record: 'before', client: 'turn.completed' },
  { stage: 'session store: lease renewal', target: 'store.renewTurn', kind: 'throw', input: 'llm-slow', record: 'before', client: 'turn.completed' },
  { stage: 'session store: commit', target: 'store.commitTurn', kind: 'throw', input: 'scripted', record: 'none', client: 'server.internal' },
  { stage: 'session store: release lease', target: 'store.endTurn', kind: 'throw', input: 'scripted', record: 'before', client: 'turn.completed' },
  { stage: 'sender: batch', target: 'sender.sendBatch', kind: 'throw', input: 'scripted', record: 'before', client: 'turn.completed' },
  { stage: 'sender: turn.completed', target: 'sender.send', kind: 'throw', input: 'scripted', record: 'before', client: null },
];

const hanging: Case[] = [
  { stage: 'classifier', target: 'classifier.classify', kind: 'hang', input: 'scripted', record: 'none', client: 'server.internal' },
  { stage: 'webhook action', target: 'actions.run', kind: 'hang', input: 'order', record: 'none', client: 'server.internal' },
  { stage: 'LLM stream', target: 'llm.stream', kind: 'hang', input: 'llm', record: 'none', client: 'turn.conflict' },
  { stage: 'LLM stream', target: 'llm.stream', kind: 'hang', spec: { afterItems: 2 }, input: 'llm', record: 'none', client: 'turn.conflict' },
  { stage: 'LLM safety check', target: 'safety.check', kind: 'hang', input: 'llm', record: 'none', client: 'turn.conflict' },
  { stage: 'synthesizer', target: 'tts.synthesize', kind: 'hang', input: 'scripted', audio: true, record: 'before', client: 'turn.completed', survives: true },
  { stage: 'synthesizer', target: 'tts.synthesize', kind: 'hang', spec: { afterItems: 1 }, input: 'scripted', audio: true, record: 'before', client: 'turn.completed', survives: true },
  { stage: 'connection store', target: 'connections.get', kind: 'hang', input: 'scripted', record: 'none', client: 'server.internal' },
  { stage: 'session store: load head', target: 'store.loadHead', kind: 'hang', input: 'scripted', record: 'none', client: 'server.internal' },
  { stage: 'session store: take lease', target: 'store.acquireTurn', kind: 'stall', input: 'scripted', record: 'after', client: 'turn.completed' },
  { stage: 'session store: cancel poll', target: 'store.cancelRequested', kind: 'hang', input: 'llm-slow', record: 'none', client: 'turn.conflict' },
  { stage: 'session store: lease renewal', target: 'store.renewTurn', kind: 'hang', input: 'llm-slow', record: 'none', client: 'turn.conflict' },
  { stage: 'session store: commit', target: 'store.commitTurn', kind: 'stall', input: 'scripted', record: 'none', client: 'turn.conflict' },
  { stage: 'session store: release lease', target: 'store.endTurn', kind: 'hang', input: 'scripted', record: 'before', client: 'turn.completed' },
  { stage: 'sender: batch', target: 'sender.sendBatch', kind: 'hang', input: 'scripted', record: 'before', client: 'turn.completed' },
  // The turn is stored; the send that failed late is logged, not turned into an error (and a retried invocation).
  { stage: 'sender: turn.completed', target: 'sender.send', kind: 'hang', input: 'scripted', record: 'before', client: null },
];

/** The record's status and the recorded events that tell how the turn coped. */
const describeRecord = (r: TurnRecord): string => {
  const notes = r.events.flatMap((e) =>
    e.type === 'llm_error' ? [`llm_error (${e.kind})`] : e.type === 'tts_error' ? [`tts_error (${e.code})`] : e.type === 'cancelled' ? [`cancelled (${e.reason})`] : [],
  );
  return [r.status, ...new Set(notes)].join(', ');
};

describe('crash recovery (seed 002): a turn that dies at any stage is resolved by the next one', () => {
  const map = sampleMap();
  let openai: FakeOpenAI;
  let espeak: EspeakSynthesizer;
  let rig: TwoLambdas;

  beforeAll(async () => {
    openai = await startFakeOpenAI({ fallback: { text: LLM_ANSWER, chunkChars: 8 } });
    espeak = await createEspeakSynthesizer();
    const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'gpt-test', PARLEY_SAFETY: 'local', PARLEY_LLM_BUDGET_MS: '3000' });
    rig = await startTwoLambdas({
      map,
      nluModel: await sampleModel(),
      leaseTiming: LEASE,
      llm: () => llmPortsFactory(env)('test-key'),
      speech: { synthesizer: espeak, cache: emptyAudioCache, voiceFor: (language) => voiceFor(map, language, 'espeak'), timing: { stallMs: 300 } },
    });
  });
  afterEach(async () => {
    rig.faults.reset();
    await rig.faultyIdle().catch(() => undefined);
    openai.reset();
  });
  afterAll(async () => {
    await rig?.close();
    await openai?.close();
    await espeak?.close();
  });

  /** Resolves once the turn's record is in the table; rejects after `timeoutMs` (a backstop: the caller's `within` gives up first). */
  const committed = (sessionId: string, turnId: string, timeoutMs = 15_000): Promise<void> =>
    vi.waitFor(
      async () => {
        if (!(await rig.store.listTurns(sessionId)).some((r) => r.turnId === turnId)) throw new Error(`turn ${turnId} not committed`);
      },
      { timeout: timeoutMs, interval: 20 },
    );

  const label = (c: Case) => `${c.target} ${c.kind === 'throw' ? 'throws' : c.kind === 'hang' ? 'hangs' : 'hangs, then completes late'}${c.spec?.afterItems ? ` after ${c.spec.afterItems} item${c.spec.afterItems > 1 ? 's' : ''}` : ''}`;

  it.each([...throwing, ...hanging].map((c) => [label(c), c] as const))('%s', async (_, c) => {
    const client = await TestClient.connect(rig.wsUrl);
    const { started } = await client.open({ type: 'session.start', ...(c.audio ? { audio: PCM16K } : {}) });
    const sessionId = started.sessionId;
    const inbox = new ByTurn(client);
    const send = (turnId: string, text: string) => client.send({ type: 'input.text', turnId, text, sessionId });
    if (c.input === 'order') {
      const confirm = crypto.randomUUID();
      send(confirm, 'a large latte with oat milk');
      expect(endOf(await inbox.finished(confirm, 5000))).toBe('turn.completed');
    }
    if (c.input === 'llm-slow') openai.script({ text: LLM_ANSWER, chunkChars: 6, tokensPerSecond: 18 });
    const before = await rig.store.listTurns(sessionId);
    const last = before.at(-1)!;

    // The turn that fails: in the faulty Lambda.
    const dead = crypto.randomUUID();
    const calls = (target: string) => rig.faults.calls(target);
    const [acquiresBefore, releasesBefore] = [calls('store.acquireTurn'), calls('store.endTurn')];
    const { fired } = rig.faults.arm(c.target, { kind: c.kind, ...c.spec });
    rig.routeToFaulty(dead);
    send(dead, TEXT[c.input]);
    await within(fired, 10_000, `the fault on ${c.target} should fire`);
    let deadEvents: ServerEvent[] | null = null;
    if (c.kind === 'throw' || c.survives) {
      await within(rig.faultyIdle(), 10_000, 'the failed turn should end');
      deadEvents = await inbox.finished(dead, 5000);
    } else if (c.record === 'before') {
      // It dies after its commit: the next input comes once the record is there.
      await within(committed(sessionId, dead), 10_000, 'the turn should commit before it hangs');
    }

    // The next input, in another Lambda with healthy adapters.
    const next = crypto.randomUUID();
    send(next, 'repeat');
    const nextEvents = await inbox.finished(next, 10_000);
    expect(endOf(nextEvents), JSON.stringify(nextEvents)).toBe('turn.completed');
    // Whether the stuck turn held the session's lease while the next one ran (a faulted call did not happen).
    const held = calls('store.acquireTurn') - acquiresBefore - (c.target === 'store.acquireTurn' ? 1 : 0) > 0;
    const released = calls('store.endTurn') - releasesBefore - (c.target === 'store.endTurn' ? 1 : 0) > 0;

    if (c.kind !== 'throw' && !c.survives) {
      // The hung call wakes up: a hang fails late, a stall completes late.
      rig.faults.release();
      deadEvents = await inbox.finished(dead, 10_000);
    }
    // Never a crash of the handler: every failure was answered.
    await within(rig.faultyIdle(), 10_000, 'the failed turn should end once released');
    expect(endOf(deadEvents), JSON.stringify(deadEvents ?? inbox.seen(dead))).toBe(c.client);

    // DynamoDB: no fork, no gap, no turn twice; the records before are untouched.
    const records = await rig.store.listTurns(sessionId);
    expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i));
    expect(new Set(records.map((r) => r.turnId)).size).toBe(records.length);
    expect(records.slice(0, before.length)).toEqual(before);
    const added = records.slice(before.length);
    const mine = added.find((r) => r.turnId === dead);
    const theirs = added.find((r) => r.turnId === next)!;
    expect(theirs, 'the next turn committed').toBeDefined();
    const order = added.map((r) => (r.turnId === dead ? 'dead' : 'next'));
    expect(order).toEqual(c.record === 'none' ? ['next'] : c.record === 'before' ? ['dead', 'next'] : ['next', 'dead']);
    // The next turn ran from the last completed checkpoint: the one before it in the chain.
    const base = c.record === 'before' ? mine! : last;
    expect(theirs.seq).toBe(base.seq + 1);
    expect(theirs.checkpoint.messages.slice(0, base.checkpoint.messages.length)).toEqual(base.checkpoint.messages);
    expect(theirs.checkpoint.messages[base.checkpoint.messages.length]).toEqual({ role: 'user', content: 'repeat' });
    // Nothing of the failed input is in it, unless the failed turn committed first.
    expect(theirs.checkpoint.messages.slice(base.checkpoint.messages.length).some((m) => m.content === TEXT[c.input])).toBe(false);
    // A late run goes on from the newer checkpoint, never from the one it read before it stalled.
    if (c.record === 'after') expect(mine!.checkpoint.messages.slice(0, theirs.checkpoint.messages.length)).toEqual(theirs.checkpoint.messages);
    if (mine && c.audio) expect(textOf(deadEvents!)).not.toBe('');

    const stuck = !held
      ? 'the turn is stuck before it takes the lease; the next input runs at once'
      : released
        ? 'the turn is stuck after it released the lease; the next input runs at once'
        : 'the turn is stuck holding the lease; the next input takes it once it expires';
    const outcome = [
      c.kind === 'throw' || c.survives ? `the turn's client gets ${endOf(deadEvents) ? `\`${endOf(deadEvents)}\`` : 'nothing'}` : stuck,
      mine ? `its record: ${describeRecord(mine)}${c.record === 'after' ? ', after the next turn, on its checkpoint' : ''}` : 'no record',
      `the next turn commits one record on ${base === mine ? "the failed turn's" : 'the last completed'} checkpoint, no fork`,
      ...(c.kind === 'throw' || c.survives ? [] : [`released late, the turn's client gets ${endOf(deadEvents) ? `\`${endOf(deadEvents)}\`` : 'nothing (the turn was stored; the failed send is logged)'}${!mine && endOf(deadEvents) === 'turn.conflict' ? ' (its late commit is refused)' : ''}`]),
    ];
    recordFault({ area: `turn: ${c.stage}`, fault: `${label(c)} (${c.input} turn${c.audio ? ', audio' : ''})`, outcome: outcome.join('; ') });
    client.close();
  });
});
