import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import * as z from 'zod';
import { loadDialogueMap } from '../../lib/flow/map';
import { loadOrTrain } from '../../lib/nlu/model-file';
import type { ServerEvent } from '../../lib/protocol/v1';
import { startRuntime, storeOf, TestClient } from '../integration/harness';

/*
 * Conversation scripts: what a bot author writes to pin a bot's behaviour down. One YAML file per
 * conversation; the README documents the format. Each script runs through the real runner, over
 * the local gateway and dynalite, and every expectation is checked against what the client received
 * and what was committed to the table.
 */

/** Text that must match exactly, or a /regular expression/ with optional flags. */
const Pattern = z.string();

export const Expect = z
  .object({
    /** The node after the turn. */
    state: z.string().optional(),
    /** The flow's status: SUCCESS, MISSING_ENTITY or EXECUTION_ERROR. */
    status: z.enum(['SUCCESS', 'MISSING_ENTITY', 'EXECUTION_ERROR']).optional(),
    /** The whole reply text. */
    reply: Pattern.optional(),
    /** Variables that must have these values (others may exist). */
    variables: z.record(z.string(), z.unknown()).optional(),
    /** The classified intent (null: none). */
    intent: z.string().nullable().optional(),
    /** The FAQ entry that answered. */
    faq: z.string().optional(),
    /** Recorded event types that must occur in the turn (intent, flow, faq, fallback, action, ...). */
    events: z.array(z.string()).optional(),
    /** Fillers sent while the turn waited (prompt keys). */
    fillers: z.array(z.string()).optional(),
    /** Whether the session ended with the turn. */
    ended: z.boolean().optional(),
  })
  .strict();
export type Expect = z.infer<typeof Expect>;

export const Webhook = z
  .object({
    status: z.number().int().min(100).max(599).default(200),
    body: z.unknown().optional(),
    /** Answer this late (longer than the action's timeout_ms makes it time out). */
    delay_ms: z.number().int().nonnegative().default(0),
  })
  .strict();

export const Script = z
  .object({
    name: z.string().min(1),
    /** The map, relative to the script; the repository's dialogue_map.json by default. */
    map: z.string().optional(),
    /** The map must fail to load with an error matching this; no conversation runs. */
    map_error: Pattern.optional(),
    /** Session language (session.start metadata.language). */
    language: z.string().optional(),
    /** How the test's HTTP server answers webhook paths (relative action URLs resolve against it). */
    webhooks: z.record(z.string(), Webhook).optional(),
    /** What the greeting (session.start) must produce. */
    greeting: Expect.optional(),
    steps: z.array(z.object({ user: z.string().min(1), expect: Expect.default({}) }).strict()).default([]),
  })
  .strict();
export type Script = z.infer<typeof Script>;

const REPO_ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../..');

export function readScript(path: string): Script {
  return Script.parse(parseYaml(readFileSync(path, 'utf8')));
}

export function matches(pattern: string, text: string): boolean {
  const regex = /^\/(.*)\/([imsu]*)$/s.exec(pattern);
  return regex ? new RegExp(regex[1]!, regex[2]).test(text) : pattern === text;
}

/** What one turn produced, as the checks see it. */
export interface Observed {
  reply: string;
  state: string | null;
  status: string | null;
  variables: Record<string, unknown>;
  intent: string | null | undefined;
  faq: string | undefined;
  events: string[];
  fillers: string[];
  ended: boolean;
}

/** Every mismatch between an expectation and a turn, as readable lines (empty: the turn passed). */
export function compare(expect: Expect, seen: Observed): string[] {
  const problems: string[] = [];
  const check = (what: string, ok: boolean, expected: unknown, got: unknown) => {
    if (!ok) problems.push(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
  };
  if (expect.state !== undefined) check('state', expect.state === seen.state, expect.state, seen.state);
  if (expect.status !== undefined) check('status', expect.status === seen.status, expect.status, seen.status);
  if (expect.reply !== undefined) check('reply', matches(expect.reply, seen.reply), expect.reply, seen.reply);
  if (expect.intent !== undefined) check('intent', expect.intent === seen.intent, expect.intent, seen.intent);
  if (expect.faq !== undefined) check('faq', expect.faq === seen.faq, expect.faq, seen.faq);
  if (expect.ended !== undefined) check('ended', expect.ended === seen.ended, expect.ended, seen.ended);
  for (const [name, value] of Object.entries(expect.variables ?? {})) {
    check(`variables.${name}`, JSON.stringify(seen.variables[name]) === JSON.stringify(value), value, seen.variables[name]);
  }
  for (const type of expect.events ?? []) check(`event ${type}`, seen.events.includes(type), type, seen.events);
  if (expect.fillers !== undefined) check('fillers', JSON.stringify(expect.fillers) === JSON.stringify(seen.fillers), expect.fillers, seen.fillers);
  return problems;
}

/** Runs a script end to end; returns the failures, one line each (empty: the script passed). */
export async function runScript(scriptPath: string): Promise<string[]> {
  const script = readScript(scriptPath);
  const mapPath = script.map ? resolve(dirname(scriptPath), script.map) : resolve(REPO_ROOT, 'dialogue_map.json');
  let map;
  try {
    map = loadDialogueMap(JSON.parse(readFileSync(mapPath, 'utf8')));
  } catch (err) {
    const message = (err as Error).message;
    if (script.map_error !== undefined) return matches(script.map_error, message) ? [] : [`map error: expected ${script.map_error}, got ${message}`];
    return [`map failed to load: ${message}`];
  }
  if (script.map_error !== undefined) return [`map error: expected ${script.map_error}, but the map loaded`];

  const { model } = await loadOrTrain(map, mapPath);
  const webhooks = script.webhooks ? await webhookServer(script.webhooks) : undefined;
  const runtime = await startRuntime({ map, nluModel: model, ...(webhooks ? { actionsBaseUrl: webhooks.url } : {}) });
  const store = storeOf(runtime);
  const failures: string[] = [];
  const client = await TestClient.connect(runtime.wsUrl);
  try {
    const { started, greeting } = await client.open({ type: 'session.start', ...(script.language ? { metadata: { language: script.language } } : {}) });
    const observe = async (events: ServerEvent[]): Promise<Observed> => {
      const head = await store.loadHead(started.sessionId);
      const recorded = head?.events ?? [];
      const flow = recorded.find((e) => e.type === 'flow');
      const intent = recorded.find((e) => e.type === 'intent');
      const faq = recorded.find((e) => e.type === 'faq');
      const error = events.find((e) => e.type === 'error');
      if (error?.type === 'error') failures.push(`server error ${error.code}: ${error.message}`);
      return {
        reply: events.flatMap((e) => (e.type === 'response.text.done' ? [e.text] : [])).join(' '),
        state: head?.checkpoint.currentNode ?? null,
        status: flow?.type === 'flow' ? flow.status : 'SUCCESS',
        variables: head?.checkpoint.variables ?? {},
        intent: intent?.type === 'intent' ? intent.intent : undefined,
        faq: faq?.type === 'faq' ? faq.id : undefined,
        events: recorded.map((e) => e.type),
        fillers: events.flatMap((e) => (e.type === 'response.filler' ? [e.key] : [])),
        ended: events.some((e) => e.type === 'session.ended'),
      };
    };
    if (script.greeting) {
      for (const p of compare(script.greeting, await observe(greeting))) failures.push(`greeting: ${p}`);
    }
    for (const [i, step] of script.steps.entries()) {
      const seen = await observe(await client.say(step.user));
      for (const p of compare(step.expect, seen)) failures.push(`step ${i + 1} (user: "${step.user}"): ${p}`);
      if (seen.ended) break;
    }
  } finally {
    client.close();
    await runtime.close();
    await webhooks?.close();
  }
  return failures;
}

/** A local HTTP server answering webhook paths as the script says, for the runtime's relative action URLs. */
async function webhookServer(routes: Script['webhooks'] & object): Promise<{ url: string; close(): Promise<void> }> {
  const timers = new Set<NodeJS.Timeout>();
  const server: Server = createServer((req, res) => {
    req.resume();
    const route = routes[new URL(req.url ?? '/', 'http://local').pathname];
    if (!route) return void res.writeHead(404).end();
    const answer = () => {
      const body = route.body === undefined ? '' : JSON.stringify(route.body);
      res.writeHead(route.status, body ? { 'content-type': 'application/json' } : {}).end(body);
    };
    if (route.delay_ms === 0) return answer();
    const timer = setTimeout(answer, route.delay_ms);
    timers.add(timer);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      timers.forEach(clearTimeout);
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}
