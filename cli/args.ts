import { parseArgs } from 'node:util';
import * as z from 'zod';

/*
 * The command line of `parley`: parsed with node's own parseArgs, checked with zod, so a mistake is
 * one clear line and the help text is the only documentation a terminal user needs.
 */

export const HELP = {
  main: `parley: tools for stored Parley conversations

Usage:
  parley replay <session-id | export.json> [options]   rerun a conversation against the current bot
  parley export <session-id> [options]                  write a session as a file (transcript + turns)
  parley sessions [options]                             list stored sessions

Run \`parley <command> --help\` for a command's options.
`,
  replay: `parley replay <session-id | export.json> [options]

Reruns every turn's user input from the checkpoint stored before it against the current dialogue
map and configuration, and reports per turn what differs: node path, intent, variables, tool calls
and webhook requests, END_CALL, playlist, reply text. Progress goes to stderr, the report to stdout
(or --out). Exit code 0: no differences; 1: differences, divergences, or an error.

Where the session comes from (a file path, else a session id in a store):
  --store local|dynamodb    the local store of \`npm start\` (default) or a DynamoDB table
  --data-dir <dir>          local store folder (default: PARLEY_DATA_DIR or .parley-data)
  --table <name>            DynamoDB table (default: PARLEY_TABLE or parley)
  --region <region>         AWS region (default: AWS_REGION)
  --endpoint <url>          a DynamoDB endpoint (DynamoDB Local, dynalite)

What it runs against:
  --map <path>              the dialogue map (default: PARLEY_DIALOGUE_MAP or dialogue_map.json)
  --mode recorded|live      recorded (default): the LLM and webhooks answer from the turn records,
                            free, offline and deterministic; a request the recording lacks is a
                            divergence. live: the configured model and webhooks are called for real.
  --similarity <0..1>       live mode: LLM replies at least this alike count as the same (default 0.7)

What-if (the original session is never touched):
  --from <n>                continue from the checkpoint stored after turn n ...
  --input <text>            ... with this user input (repeat for several turns)
  --save <file>             write the replayed turns as a session export (\`parley replay <file>\` reads it)

Output:
  --format table|json|html  the report on stdout (default: table)
  --out <file>              write the report there instead of stdout
  --json <file>             also write the JSON report there
  --html <file>             also write the HTML report there
  --quiet                   no progress on stderr
`,
  export: `parley export <session-id> [options]

Writes a stored session as JSON: its transcript (speaker, text, start/end ms, interrupted) and its
turn records, the file \`parley replay\` reads. With --transcript, only the transcript.

  --store local|dynamodb, --data-dir <dir>, --table <name>, --region <region>, --endpoint <url>
                            where the session is (as for replay)
  --transcript              only the transcript rows
  --out <file>              write there instead of stdout
`,
  sessions: `parley sessions [options]

Lists the stored sessions, newest first: id, when it started, and its turns.

  --store local|dynamodb, --data-dir <dir>, --table <name>, --region <region>, --endpoint <url>
  --limit <n>               at most this many (default 20)
`,
} as const;

const options = {
  help: { type: 'boolean', short: 'h' },
  store: { type: 'string' },
  'data-dir': { type: 'string' },
  table: { type: 'string' },
  region: { type: 'string' },
  endpoint: { type: 'string' },
  map: { type: 'string' },
  mode: { type: 'string' },
  similarity: { type: 'string' },
  from: { type: 'string' },
  input: { type: 'string', multiple: true },
  save: { type: 'string' },
  format: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'string' },
  html: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  transcript: { type: 'boolean' },
  limit: { type: 'string' },
} as const;

const STORE_FLAGS = ['store', 'data-dir', 'table', 'region', 'endpoint'] as const;
/** The flags each command reads. */
const FLAGS = {
  replay: [...STORE_FLAGS, 'map', 'mode', 'similarity', 'from', 'input', 'save', 'format', 'out', 'json', 'html', 'quiet'],
  export: [...STORE_FLAGS, 'transcript', 'out'],
  sessions: [...STORE_FLAGS, 'limit'],
} as const satisfies Record<string, readonly (keyof typeof options)[]>;

const StoreOptions = z.object({
  store: z.enum(['local', 'dynamodb']).default('local'),
  dataDir: z.string().min(1).optional(),
  table: z.string().min(3).optional(),
  region: z.string().min(1).optional(),
  endpoint: z.url().optional(),
});
export type StoreOptions = z.infer<typeof StoreOptions>;

const ReplayArgs = StoreOptions.extend({
  command: z.literal('replay'),
  session: z.string().min(1, 'name a session id or an export file'),
  map: z.string().min(1).optional(),
  mode: z.enum(['recorded', 'live']).default('recorded'),
  similarity: z.coerce.number().min(0).max(1).default(0.7),
  from: z.coerce.number().int().nonnegative().optional(),
  input: z.array(z.string()).default([]),
  save: z.string().min(1).optional(),
  format: z.enum(['table', 'json', 'html']).default('table'),
  out: z.string().min(1).optional(),
  json: z.string().min(1).optional(),
  html: z.string().min(1).optional(),
  quiet: z.boolean().default(false),
});
const ExportArgs = StoreOptions.extend({
  command: z.literal('export'),
  session: z.string().min(1, 'name a session id'),
  transcript: z.boolean().default(false),
  out: z.string().min(1).optional(),
});
const SessionsArgs = StoreOptions.extend({ command: z.literal('sessions'), limit: z.coerce.number().int().positive().default(20) });

export const CliArgs = z.discriminatedUnion('command', [ReplayArgs, ExportArgs, SessionsArgs]);
export type CliArgs = z.infer<typeof CliArgs>;
export type ReplayArgs = z.infer<typeof ReplayArgs>;
export type ExportArgs = z.infer<typeof ExportArgs>;
export type SessionsArgs = z.infer<typeof SessionsArgs>;

/** What to do: the parsed command, its help text, or a usage error (with the help to show). */
export type Parsed = { kind: 'run'; args: CliArgs } | { kind: 'help'; text: string } | { kind: 'error'; message: string; help: string };

export function parseCli(argv: readonly string[]): Parsed {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (err) {
    const command = argv.find((a) => !a.startsWith('-'));
    return { kind: 'error', message: (err as Error).message, help: helpFor(command) };
  }
  const [command, ...rest] = parsed.positionals;
  const v = parsed.values;
  if (!command || (v.help && !command)) return { kind: 'help', text: HELP.main };
  if (!(command in HELP) || command === 'main') return { kind: 'error', message: `unknown command '${command}'`, help: HELP.main };
  if (v.help) return { kind: 'help', text: helpFor(command) };
  // An empty value (an unset shell variable) would read as 0 or as "use the default": say so instead.
  const empty = Object.entries(v).find(([, value]) => value === '' || (Array.isArray(value) && value.includes('')));
  if (empty && empty[0] !== 'input') return { kind: 'error', message: `--${empty[0]}: needs a value`, help: helpFor(command) };
  // A flag of another command would be silently ignored: `sessions --format json` still prints lines.
  const allowed: readonly string[] = FLAGS[command as keyof typeof FLAGS];
  const foreign = Object.keys(v).filter((flag) => flag !== 'help' && !allowed.includes(flag));
  if (foreign.length) return { kind: 'error', message: `${command} does not take ${foreign.map((f) => `--${f}`).join(', ')}`, help: helpFor(command) };
  if (rest.length > 1) return { kind: 'error', message: `one session at a time; also given: ${rest.slice(1).join(' ')}`, help: helpFor(command) };
  const candidate = {
    command,
    session: rest[0] ?? '',
    store: v.store,
    dataDir: v['data-dir'],
    table: v.table,
    region: v.region,
    endpoint: v.endpoint,
    map: v.map,
    mode: v.mode,
    similarity: v.similarity,
    from: v.from,
    input: v.input,
    save: v.save,
    format: v.format,
    out: v.out,
    json: v.json,
    html: v.html,
    quiet: v.quiet,
    transcript: v.transcript,
    limit: v.limit,
  };
  const checked = CliArgs.safeParse(Object.fromEntries(Object.entries(candidate).filter(([, value]) => value !== undefined)));
  if (!checked.success) {
    const issue = checked.error.issues[0];
    const flag = issue?.path[0] === 'session' ? '' : `--${String(issue?.path[0] ?? '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: `;
    return { kind: 'error', message: `${flag}${issue?.message ?? 'invalid arguments'}`, help: helpFor(command) };
  }
  const args = checked.data;
  if (args.command === 'replay' && (args.input.length > 0) !== (args.from !== undefined)) {
    return { kind: 'error', message: args.from === undefined ? '--input needs --from <n>: the turn to continue from' : '--from needs at least one --input', help: HELP.replay };
  }
  return { kind: 'run', args };
}

const helpFor = (command: string | undefined): string => (command && command in HELP && command !== 'main' ? HELP[command as keyof typeof HELP] : HELP.main);
