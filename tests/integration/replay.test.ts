import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, type Io } from '../../cli/parley';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import { llmPortsFactory } from '../../lib/llm/configure';
import { ReplayReport } from '../../lib/replay/report';
import { SessionExport } from '../../lib/replay/export';
import { demoKitchen } from '../../local/demo-kitchen';
import type { LocalRuntime } from '../../local/runtime';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';
import { startRuntime, TestClient, textOf } from './harness';

/*
 * QA replay end to end: a conversation recorded through the local gateway (LLM turns through the
 * OpenAI-compatible test server, webhooks through the runtime's demo kitchen), exported and replayed
 * with the real `parley` command against changed copies of the map, in recorded mode: offline, so
 * the test server is shut before any replay runs.
 */

const SAMPLE = JSON.parse(readFileSync(new URL('../../dialogue_map.json', import.meta.url), 'utf8')) as Record<string, any>;
const ENV = { OPENAI_MODEL: 'gpt-test', PARLEY_SAFETY: 'local', NO_COLOR: '1' };

/** Runs `parley …` in-process, capturing its output. */
async function parley(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return parleyWith(ENV, ...argv);
}

async function parleyWith(env: Record<string, string>, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: Io = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env, tty: false, width: 160 };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

describe('parley replay', () => {
  let openai: FakeOpenAI;
  let runtime: LocalRuntime;
  let dir: string;
  let exported: string;
  let sessionId: string;
  const said: string[] = [];

  /** A copy of the sample map with `change` applied, written where `--map` can read it. */
  const mapFile = (name: string, change: (map: Record<string, any>) => void): string => {
    const map = structuredClone(SAMPLE);
    delete map.$schema;
    change(map);
    const path = join(dir, `${name}.json`);
    writeFileSync(path, JSON.stringify(map));
    return path;
  };
  const replay = async (map: string, ...more: string[]) => {
    const result = await parley('replay', exported, '--map', map, '--format', 'json', '--quiet', ...more);
    return { ...result, report: result.stdout ? ReplayReport.parse(JSON.parse(result.stdout)) : undefined };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'parley-replay-'));
    openai = await startFakeOpenAI();
    const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'gpt-test', PARLEY_SAFETY: 'local' });
    runtime = await startRuntime({ llm: llmPortsFactory(env)('test-key') });

    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    sessionId = started.sessionId;
    openai.script({ text: 'Our beans come from a small farm in Colombia.', usage: { prompt_tokens: 300, completion_tokens: 11 } });
    said.push(textOf(await client.say('where do your coffee beans come from?')));
    openai.script({ toolCalls: [{ name: 'pickup_wait', arguments: '{}' }], usage: { prompt_tokens: 320, completion_tokens: 9 } }, { text: 'About 6 minutes right now.', usage: { prompt_tokens: 350, completion_tokens: 7 } });
    said.push(textOf(await client.say('how long does it take to get my order?')));
    said.push(textOf(await client.say('a small latte please')));
    said.push(textOf(await client.say('yes')));
    client.close();

    exported = join(dir, 'session.json');
    const out = await parley('export', sessionId, '--endpoint', runtime.dynamo.endpoint, '--table', runtime.tableName, '--out', exported);
    expect(out.code).toBe(0);
    // From here on nothing may reach a model or a webhook: a recorded replay is offline.
    await runtime.close();
    await openai.close();
  }, 60_000);

  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('records the conversation it replays: LLM answers, a webhook tool, an order', () => {
    expect(said).toEqual([
      'Our beans come from a small farm in Colombia.',
      'About 6 minutes right now.',
      "So that's 1 × small latte. Shall I place the order?",
      expect.stringMatching(/^Your order number is [\w-]+, it will be ready in \d+ minutes\. Can I get you anything else\?$/),
    ]);
    const file = SessionExport.parse(JSON.parse(readFileSync(exported, 'utf8')));
    expect(file.turns.map((t) => t.input.kind)).toEqual(['start', 'text', 'text', 'text', 'text']);
    // The cassette: each webhook's request as the map rendered it (relative URL, no headers) and its result.
    const actions = file.turns.flatMap((t) => t.events.filter((e) => e.type === 'action'));
    expect(actions).toEqual([
      expect.objectContaining({ name: 'pickup_wait', ok: true, request: { method: 'GET', url: '/demo/wait-time' }, result: { minutes: 6 } }),
      expect.objectContaining({
        name: 'place_order',
        ok: true,
        request: { method: 'POST', url: '/demo/orders', body: expect.stringContaining('"quantity": "1"') },
        result: { id: expect.stringMatching(/^P-\d+$/), ready_in_minutes: expect.any(Number) },
      }),
    ]);
    const exchanges = file.turns.flatMap((t) => t.events.filter((e) => e.type === 'llm_exchange'));
    expect(exchanges.map((e) => e.type === 'llm_exchange' && [e.request.messages, e.request.parts?.messages.length, e.response.toolCalls.map((c) => c.name)])).toEqual([
      [3, 3, []],
      [5, 5, ['pickup_wait']],
      [7, 7, []],
    ]);
    expect(file.transcript.map((r) => [r.speaker, r.text])).toEqual([
      ['bot', expect.stringContaining('welcome to Parley Café')],
      ['user', 'where do your coffee beans come from?'],
      ['bot', said[0]],
      ['user', 'how long does it take to get my order?'],
      ['bot', said[1]],
      ['user', 'a small latte please'],
      ['bot', said[2]],
      ['user', 'yes'],
      ['bot', said[3]],
    ]);
    // Start and end times are from the session's start, in order, never negative.
    const starts = file.transcript.map((r) => r.startMs);
    expect(starts).toEqual([...starts].sort((a, b) => a - b));
    expect(file.transcript.every((r) => r.startMs >= 0 && r.endMs >= r.startMs && r.interrupted === false)).toBe(true);
  });

  it('reports no difference for the unchanged bot, and exits 0', async () => {
    const { code, report, stderr } = await replay(mapFile('unchanged', () => {}));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(report!.summary).toMatchObject({ turns: 5, same: 5, changed: 0, diverged: 0, skipped: 0, migrations: 0 });
    expect(report!.turns.every((t) => t.differences.length === 0 && t.divergences.length === 0)).toBe(true);
    // The replayed LLM turns cost what the recorded ones did: the same tokens, from the cassette.
    const llmCost = (side: 'original' | 'replay') => report!.turns[2]!.cost[side]!.lines.filter((l) => l.item === 'llm').map((l) => [l.detail, l.quantity]);
    expect(llmCost('replay')).toEqual(llmCost('original'));
    expect(llmCost('replay')).toEqual([
      ['gpt-test input', 670],
      ['gpt-test output', 16],
    ]);
    expect(report!.turns.map((t) => t.trace.traceId)).toEqual(Array(5).fill(report!.trace.traceId));
  });

  it('a renamed state: the stored node follows the rename, the node path changes, and LLM requests (whose tools name the states) diverge', async () => {
    const renamed = mapFile('renamed', (map) => {
      map.states.confirm_order = map.states.confirm;
      delete map.states.confirm;
      for (const state of Object.values<any>(map.states)) {
        for (const [intent, target] of Object.entries<any>(state.transitions ?? {})) {
          if (target === 'confirm') state.transitions[intent] = 'confirm_order';
          else if (target?.to === 'confirm') target.to = 'confirm_order';
        }
      }
      map.migrations = { renames: { confirm: 'confirm_order' } };
    });
    const { code, report } = await replay(renamed);
    expect(code).toBe(1);
    expect(report!.turns.map((t) => t.status)).toEqual(['same', 'diverged', 'diverged', 'changed', 'changed']);
    expect(report!.turns[1]!.divergences).toEqual([{ kind: 'llm', name: 'gpt-test', reasons: ['the tools offered changed'] }]);
    expect(report!.turns[3]!.differences).toEqual([
      { field: 'path', before: ['welcome', 'confirm'], after: ['welcome', 'confirm_order'] },
      { field: 'playlist', before: ['tts:confirm', 'cache:confirm_question'], after: ['tts:confirm_order', 'cache:confirm_question'] },
    ]);
    expect(report!.turns[4]!.migrations).toEqual([{ from: 'confirm', to: 'confirm_order', reason: 'renamed' }]);
    expect(report!.turns[4]!.differences).toEqual([{ field: 'path', before: ['confirm', 'place_order'], after: ['confirm_order', 'place_order'] }]);
    expect(report!.summary.migrations).toBe(1);
  });

  it('a removed state without a rename: the session recovers in the declared recovery state', async () => {
    const removed = mapFile('removed', (map) => {
      delete map.states.confirm;
      for (const state of Object.values<any>(map.states)) {
        for (const [intent, target] of Object.entries<any>(state.transitions ?? {})) {
          if (target === 'confirm' || target?.to === 'confirm') state.transitions[intent] = 'place_order';
        }
      }
      map.migrations = { recovery_state: 'welcome' };
    });
    const { report } = await replay(removed);
    expect(report!.turns[4]!.migrations).toEqual([{ from: 'confirm', to: 'welcome', reason: 'missing' }]);
    expect(report!.turns[4]!.replay!.path[0]).toBe('welcome');
  });

  it('a changed reply: that turn reports exactly the new text', async () => {
    const { code, report } = await replay(
      mapFile('reply', (map) => {
        map.prompts['cache:confirm_question'] = 'Shall I send it to the kitchen?';
      }),
    );
    expect(code).toBe(1);
    expect(report!.turns.map((t) => t.status)).toEqual(['same', 'same', 'same', 'changed', 'same']);
    const [difference] = report!.turns[3]!.differences;
    expect(report!.turns[3]!.differences).toHaveLength(1);
    expect(difference).toMatchObject({
      field: 'reply',
      before: "So that's 1 × small latte. Shall I place the order?",
      after: "So that's 1 × small latte. Shall I send it to the kitchen?",
    });
    expect(difference!.similarity).toBeGreaterThan(0.5);
    expect(difference!.similarity).toBeLessThan(1);
  });

  it("a tool's changed arguments: the webhook request diverges from the recording and the turn takes the failure path", async () => {
    const { code, report } = await replay(
      mapFile('arguments', (map) => {
        map.actions.place_order.body = map.actions.place_order.body.replace('"quantity"', '"count"');
      }),
    );
    expect(code).toBe(1);
    expect(report!.turns.map((t) => t.status)).toEqual(['same', 'same', 'same', 'same', 'diverged']);
    const turn = report!.turns[4]!;
    const recordedBody = { drink: 'latte', size: 'small', quantity: '1', milk: '', session: sessionId };
    const { quantity, ...rest } = recordedBody;
    const replayedBody = { drink: 'latte', size: 'small', count: quantity, milk: '', session: sessionId };
    expect(turn.divergences).toEqual([
      {
        kind: 'webhook',
        name: 'place_order',
        reasons: ['the request changed'],
        recorded: { method: 'POST', url: '/demo/orders', body: JSON.stringify(recordedBody).replace(/,"/g, ', "').replace(/":/g, '": ') },
        replayed: { method: 'POST', url: '/demo/orders', body: JSON.stringify({ ...rest, count: quantity }, ['drink', 'size', 'count', 'milk', 'session']).replace(/,"/g, ', "').replace(/":/g, '": ') },
      },
    ]);
    const fields = turn.differences.map((d) => [d.field, d.key]);
    expect(fields).toEqual([
      ['path', undefined],
      ['variables', 'order'],
      ['tools', 'webhook place_order'],
      ['playlist', undefined],
      ['reply', undefined],
    ]);
    // The failed action sends the flow to place_order's on_error state instead.
    expect(turn.differences[0]).toEqual({ field: 'path', before: ['confirm', 'place_order'], after: ['confirm', 'order_failed'] });
    expect(turn.differences[2]).toEqual({
      field: 'tools',
      key: 'webhook place_order',
      before: { ok: true, method: 'POST', url: '/demo/orders', body: recordedBody },
      after: { ok: false, method: 'POST', url: '/demo/orders', body: replayedBody },
    });
    expect(turn.differences[4]).toMatchObject({ before: said[3], after: "Sorry, something went wrong while I was doing that. I'm sorry, the kitchen isn't taking orders right now. Would you like me to try again?" });
  });

  it('what-if: continues from a stored turn with new inputs, leaves the original alone, and saves the branch', async () => {
    const branch = join(dir, 'branch.json');
    const { code, report } = await replay(mapFile('whatif', () => {}), '--from', '3', '--input', 'no', '--input', 'a large cappuccino please', '--save', branch);
    expect(code).toBe(0);
    expect(report!.from).toBe(3);
    expect(report!.turns.map((t) => [t.seq, t.status, t.input.text])).toEqual([
      [4, 'new', 'no'],
      [5, 'new', 'a large cappuccino please'],
    ]);
    expect(report!.turns[0]!.replay!.path).toEqual(['confirm', 'change_order']);
    expect(report!.turns[1]!.replay!.reply).toBe("So that's 1 × large cappuccino. Shall I place the order?");
    // The saved branch is a session file: the recorded turns up to 3, then the what-if turns; it replays clean.
    const saved = SessionExport.parse(JSON.parse(readFileSync(branch, 'utf8')));
    expect(saved.turns.map((t) => t.seq)).toEqual([0, 1, 2, 3, 4, 5]);
    const again = await parley('replay', branch, '--map', mapFile('whatif-again', () => {}), '--format', 'json', '--quiet');
    expect(ReplayReport.parse(JSON.parse(again.stdout)).summary).toMatchObject({ turns: 6, same: 6 });
    // The original file is untouched.
    expect(SessionExport.parse(JSON.parse(readFileSync(exported, 'utf8'))).turns).toHaveLength(5);
  });

  it('renders the report as a terminal table and as a self-contained HTML page', async () => {
    const changed = mapFile('render', (map) => {
      map.prompts['cache:confirm_question'] = 'Shall I send it to the kitchen?';
    });
    const table = await parley('replay', exported, '--map', changed, '--quiet');
    expect(table.code).toBe(1);
    expect(table.stdout).toContain('CHANGED');
    expect(table.stdout).toMatch(/│ 3 +│ "a small latte please" │ CHANGED +│ reply \(similarity 0\.\d\d\): "So that's 1 × small latte\. Shall I place the order\?" → /);
    expect(table.stdout).toMatch(/DIFFERENCES: 5 turns, 4 same, 1 changed, 0 diverged/);
    const html = join(dir, 'report.html');
    await parley('replay', exported, '--map', changed, '--quiet', '--html', html);
    const page = readFileSync(html, 'utf8');
    expect(page).toMatch(/^<!doctype html>/);
    expect(page).not.toMatch(/<script|<link|src=/); // self-contained
    // Word by word: "place" → "send it to", "order" → "kitchen".
    expect(page).toContain("Shall I <del>place</del> the <del>order</del>?");
    expect(page).toContain("Shall I <ins>send it to</ins> the <ins>kitchen</ins>?");
    expect(page).toContain(`id="turn-3"`);
  });

  it('live mode calls the configured model and webhooks: similar LLM wording passes, other wording and a new order id are reported', async () => {
    const model = await startFakeOpenAI();
    const kitchen = demoKitchen();
    const server = createServer((req, res) => void kitchen(req, res).then((served) => served || res.writeHead(404).end()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      model.script(
        { text: 'Our beans come from a small farm in Colombia!' },
        { toolCalls: [{ name: 'pickup_wait', arguments: '{}' }] },
        { text: 'Pickup takes around six minutes at the moment.' },
      );
      const env = {
        ...ENV,
        OPENAI_API_KEY: 'test-key',
        OPENAI_BASE_URL: model.baseURL,
        PARLEY_ACTIONS_BASE_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      };
      const { code, stdout } = await parleyWith(env, 'replay', exported, '--map', mapFile('live', () => {}), '--mode', 'live', '--format', 'json', '--quiet');
      const report = ReplayReport.parse(JSON.parse(stdout));
      expect(code).toBe(1);
      expect(report.mode).toBe('live');
      // The model was really asked: three completions (an answer, a tool call, the answer after the tool).
      expect(model.requestsTo('/v1/chat/completions')).toHaveLength(3);
      expect(report.turns.map((t) => t.status)).toEqual(['same', 'same', 'changed', 'same', 'changed']);
      const reply = report.turns[2]!.differences.find((d) => d.field === 'reply')!;
      expect(reply.after).toBe('Pickup takes around six minutes at the moment.');
      expect(reply.similarity).toBeLessThan(0.7);
      // The kitchen placed a new order: a new id in the variables and in the scripted reply.
      expect(report.turns[4]!.differences.map((d) => [d.field, d.key])).toEqual([
        ['variables', 'order'],
        ['reply', undefined],
      ]);
    } finally {
      server.close();
      await model.close();
    }
  });

  it('refuses a corrupted or a future-version export with a clear error and exit code 1', async () => {
    const file = JSON.parse(readFileSync(exported, 'utf8'));
    const cases: Array<[string, string, RegExp]> = [
      ['truncated', readFileSync(exported, 'utf8').slice(0, 500), /truncated\.json is not JSON \(.+\); is the file complete\? \(export\.invalid\)/],
      ['future', JSON.stringify({ ...file, version: 2 }), /future\.json is a version 2 export; this Parley reads version 1: update Parley \(export\.version_unsupported\)/],
      ['foreign', JSON.stringify({ hello: 'world' }), /foreign\.json is not a Parley session export/],
      ['broken-turn', JSON.stringify({ ...file, turns: [{ ...file.turns[0], input: { kind: 'shout' } }] }), /broken-turn\.json: turns\.0\.input\.kind: .+ \(export\.invalid\)/],
      ['future-checkpoint', JSON.stringify({ ...file, turns: [{ ...file.turns[0], checkpoint: { ...file.turns[0].checkpoint, version: 99 } }] }), /future-checkpoint\.json: turn 0: checkpoint version 99 is newer than this build understands .+ \(checkpoint\.version_unsupported\)/],
    ];
    for (const [name, text, message] of cases) {
      const path = join(dir, `${name}.json`);
      writeFileSync(path, text);
      const { code, stdout, stderr } = await parley('replay', path, '--map', mapFile('corrupt', () => {}), '--quiet');
      expect({ name, code, stdout }).toEqual({ name, code: 1, stdout: '' });
      expect(stderr).toMatch(message);
    }
  });
});
