import { describe, expect, it } from 'vitest';
import { HELP, parseCli, type CliArgs, type Parsed } from '../../cli/args';

const run = (...argv: string[]): CliArgs => {
  const parsed = parseCli(argv);
  if (parsed.kind !== 'run') throw new Error(`expected a command, got ${JSON.stringify(parsed)}`);
  return parsed.args;
};

const error = (...argv: string[]): Extract<Parsed, { kind: 'error' }> => {
  const parsed = parseCli(argv);
  if (parsed.kind !== 'error') throw new Error(`expected a usage error, got ${JSON.stringify(parsed)}`);
  return parsed;
};

describe('parseCli: help', () => {
  it('shows the main help without arguments, or with --help / -h alone', () => {
    expect(parseCli([])).toEqual({ kind: 'help', text: HELP.main });
    expect(parseCli(['--help'])).toEqual({ kind: 'help', text: HELP.main });
    expect(parseCli(['-h'])).toEqual({ kind: 'help', text: HELP.main });
  });

  it("shows a command's own help", () => {
    expect(parseCli(['replay', '--help'])).toEqual({ kind: 'help', text: HELP.replay });
    expect(parseCli(['export', '-h'])).toEqual({ kind: 'help', text: HELP.export });
    expect(parseCli(['sessions', '--help'])).toEqual({ kind: 'help', text: HELP.sessions });
    // Help wins over anything else on the line, even a usage mistake the checks would catch.
    expect(parseCli(['replay', 'sess-1', '--mode', 'fast', '--help'])).toEqual({ kind: 'help', text: HELP.replay });
  });
});

describe('parseCli: replay', () => {
  it('fills in the defaults: recorded mode, similarity 0.7, table format, local store', () => {
    expect(run('replay', 'sess-1')).toEqual({
      command: 'replay',
      session: 'sess-1',
      store: 'local',
      mode: 'recorded',
      similarity: 0.7,
      input: [],
      format: 'table',
      quiet: false,
    });
  });

  it('reads every option, a number as a number', () => {
    expect(
      run(
        'replay', 'export.json',
        '--store', 'dynamodb', '--table', 'parley-qa', '--region', 'eu-west-1', '--endpoint', 'http://localhost:8000',
        '--map', 'maps/v2.json', '--mode', 'live', '--similarity', '0.85',
        '--format', 'html', '--out', 'report.html', '--json', 'report.json', '-q',
      ),
    ).toEqual({
      command: 'replay',
      session: 'export.json',
      store: 'dynamodb',
      table: 'parley-qa',
      region: 'eu-west-1',
      endpoint: 'http://localhost:8000',
      map: 'maps/v2.json',
      mode: 'live',
      similarity: 0.85,
      input: [],
      format: 'html',
      out: 'report.html',
      json: 'report.json',
      quiet: true,
    });
  });

  it('collects repeated --input in order for a what-if from a turn', () => {
    const args = run('replay', 'sess-1', '--from', '3', '--input', 'a small tea', '--input', 'yes', '--save', 'branch.json');
    expect(args).toMatchObject({ from: 3, input: ['a small tea', 'yes'], save: 'branch.json' });
  });

  it('accepts a what-if from turn 0', () => {
    expect(run('replay', 'sess-1', '--from', '0', '--input', 'hi')).toMatchObject({ from: 0, input: ['hi'] });
  });

  it('refuses --input without --from, and --from without --input', () => {
    expect(error('replay', 'sess-1', '--input', 'yes')).toEqual({ kind: 'error', message: '--input needs --from <n>: the turn to continue from', help: HELP.replay });
    expect(error('replay', 'sess-1', '--from', '2')).toEqual({ kind: 'error', message: '--from needs at least one --input', help: HELP.replay });
  });

  it.each([
    [['--mode', 'fast'], /^--mode: /],
    [['--similarity', '2'], /^--similarity: /],
    [['--similarity=-0.1'], /^--similarity: /],
    [['--similarity', 'high'], /^--similarity: /],
    [['--format', 'xml'], /^--format: /],
    [['--store', 's3'], /^--store: /],
    [['--from', 'x', '--input', 'a'], /^--from: /],
    [['--from', '1.5', '--input', 'a'], /^--from: /],
    [['--from=-1', '--input', 'a'], /^--from: /],
    [['--endpoint', 'localhost-8000'], /^--endpoint: /],
    [['--table', 'ab'], /^--table: /],
    [['--data-dir', ''], /^--data-dir: /],
  ])('refuses %j with a message naming the flag', (flags, message) => {
    const e = error('replay', 'sess-1', ...flags);
    expect(e.message).toMatch(message);
    expect(e.help).toBe(HELP.replay);
  });

  // BUG (cli/args.ts): z.coerce.number() reads an empty string as 0, so `--similarity ""` (say, an
  // unset shell variable) silently means "every LLM reply counts as the same" instead of an error;
  // `--from ""` likewise means turn 0.
  it('refuses an empty --similarity value rather than reading it as 0', () => {
    expect(error('replay', 'sess-1', '--similarity', '').message).toMatch(/^--similarity: /);
  });

  it('refuses an unknown flag, naming it', () => {
    const e = error('replay', 'sess-1', '--bogus');
    expect(e.message).toContain("'--bogus'");
    expect(e.help).toBe(HELP.replay);
  });

  it('refuses a flag without its value, naming it', () => {
    expect(error('replay', 'sess-1', '--format').message).toContain('--format');
    // A value that looks like a flag is ambiguous: `--from=-1` says it is meant.
    expect(error('replay', 'sess-1', '--from', '-1', '--input', 'a').message).toContain("'--from'");
  });

  it('refuses two sessions', () => {
    expect(error('replay', 'a', 'b')).toEqual({ kind: 'error', message: 'one session at a time; also given: b', help: HELP.replay });
  });

  it('refuses a replay without a session', () => {
    expect(error('replay')).toEqual({ kind: 'error', message: 'name a session id or an export file', help: HELP.replay });
  });
});

describe('parseCli: commands', () => {
  it('refuses an unknown command with the main help', () => {
    expect(error('replya', 'sess-1')).toEqual({ kind: 'error', message: "unknown command 'replya'", help: HELP.main });
    // 'main' names a help text, not a command.
    expect(error('main')).toEqual({ kind: 'error', message: "unknown command 'main'", help: HELP.main });
  });

  it('refuses an unknown flag before any command with the main help', () => {
    const e = error('--bogus');
    expect(e.message).toContain("'--bogus'");
    expect(e.help).toBe(HELP.main);
  });

  it('reads export <id> --transcript', () => {
    expect(run('export', 'sess-1', '--transcript')).toEqual({ command: 'export', session: 'sess-1', store: 'local', transcript: true });
    expect(run('export', 'sess-1', '--out', 'x.json')).toEqual({ command: 'export', session: 'sess-1', store: 'local', transcript: false, out: 'x.json' });
  });

  it('refuses an export without a session id', () => {
    expect(error('export', '--transcript')).toEqual({ kind: 'error', message: 'name a session id', help: HELP.export });
  });

  it('reads sessions --limit 5, and 20 by default', () => {
    expect(run('sessions', '--limit', '5')).toEqual({ command: 'sessions', store: 'local', limit: 5 });
    expect(run('sessions')).toEqual({ command: 'sessions', store: 'local', limit: 20 });
  });

  it('refuses a limit that is not a positive whole number', () => {
    for (const limit of ['0', '-3', '2.5', 'all']) {
      const e = error('sessions', `--limit=${limit}`);
      expect(e.message).toMatch(/^--limit: /);
      expect(e.help).toBe(HELP.sessions);
    }
  });
});

describe('parseCli: flags of another command', () => {
  it('refuses them instead of ignoring them', () => {
    const sessions = parseCli(['sessions', '--format', 'json']);
    expect(sessions).toMatchObject({ kind: 'error', message: 'sessions does not take --format' });
    const exported = parseCli(['export', 'sess-1', '--mode', 'live', '--html', 'r.html']);
    expect(exported).toMatchObject({ kind: 'error', message: 'export does not take --mode, --html' });
  });

  it('accepts the store flags on every command', () => {
    for (const command of [['replay', 's'], ['export', 's'], ['sessions']]) {
      expect(parseCli([...command, '--store', 'dynamodb', '--table', 'parley-prod', '--region', 'eu-west-1']).kind).toBe('run');
    }
  });
});
