import { LogLevelThreshold, type Logger } from '@aws-lambda-powertools/logger';

export type LogData = Record<string, unknown>;

/**
 * Port for structured logs. `with` binds keys (connectionId, sessionId, traceId) for the rest of an
 * invocation, so every line of a session's turn carries its trace id.
 */
export interface Log {
  debug(message: string, data?: LogData): void;
  info(message: string, data?: LogData): void;
  warn(message: string, data?: LogData): void;
  error(message: string, data?: LogData): void;
  with(keys: LogData): Log;
}

/**
 * Adapter on Powertools for AWS Lambda's Logger: JSON lines CloudWatch can query. Every line goes
 * through `redactingLog` first: no secret, API key or audio reaches the logs.
 */
export function powertoolsLog(logger: Logger, options: RedactOptions = {}): Log {
  // Lines below the logger's level are dropped before they are cleaned: redaction walks the data, and
  // a turn's info lines cost nothing when only warnings are written.
  const rank = (level: string) => (LogLevelThreshold as Record<string, number>)[level.toUpperCase()] ?? 0;
  return redactingLog(rawPowertoolsLog(logger), { ...options, enabled: (level) => rank(level) >= rank(logger.getLevelName()) });
}

function rawPowertoolsLog(logger: Logger): Log {
  return {
    debug: (message, data) => (data ? logger.debug(message, data) : logger.debug(message)),
    info: (message, data) => (data ? logger.info(message, data) : logger.info(message)),
    warn: (message, data) => (data ? logger.warn(message, data) : logger.warn(message)),
    error: (message, data) => (data ? logger.error(message, data) : logger.error(message)),
    with: (keys) => rawPowertoolsLog(logger.createChild({ persistentKeys: keys })),
  };
}

// ---------------------------------------------------------------------------------------------------
// Redaction

export interface RedactOptions {
  /**
   * Also replace what users and the bot said (`text`, `content`, `transcript`, `said`, `messages`
   * ...) by its length: PARLEY_LOG_REDACT_TEXT.
   */
  redactText?: boolean;
}

export const REDACTED = '[redacted]';

/**
 * Words that make a key secret wherever it sits (`apiKey`, `x-api-key`, `resumeToken`,
 * `resumeTokenHash`, `Authorization`, `jwtSecret`, `audio` ...). The plural `tokens` is a count (LLM
 * usage), not a credential, and stays.
 */
const SECRET_WORDS = new Set(['token', 'secret', 'secrets', 'password', 'passwd', 'passphrase', 'authorization', 'auth', 'credential', 'credentials', 'cookie', 'signature', 'jwt', 'bearer', 'apikey']);
const SECRET_JOINED = /apikey|accesskey|privatekey|secretkey|clientsecret|sessiontoken/;

/** Keys whose string content is what a user or the bot said. */
const TEXT_KEYS = new Set(['text', 'content', 'transcript', 'said', 'messages', 'utterance', 'prompt', 'reply', 'answer', 'heard', 'question', 'input']);

const wordsOf = (key: string): string[] =>
  key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);

export function isSecretKey(key: string): boolean {
  const words = wordsOf(key);
  return words.some((w) => SECRET_WORDS.has(w)) || SECRET_JOINED.test(words.join(''));
}

/** `audio`, `audioBase64`, `pcm`, `mp3`: the sound itself. A number under such a key (`audioMs`, `timeToFirstAudioMs`) is a measure and stays. */
const isAudioKey = (key: string): boolean => wordsOf(key).some((w) => w === 'audio' || w === 'pcm' || w === 'mp3');
const isMeasure = (v: unknown) => typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined;

const isTextKey = (key: string): boolean => TEXT_KEYS.has(key.toLowerCase());

/** A run of base64 (or base64url) longer than 256 characters: audio or some other binary, never a log's business. */
const BASE64_RUN = /[A-Za-z0-9+/_-]{257,}={0,2}/g;
/** Secret-shaped values, whatever key they sit under: OpenAI keys, bearer tokens, JWTs, credentials in a query string. */
const SECRET_VALUES: Array<[RegExp, string]> = [
  [/\bsk-[A-Za-z0-9_-]{16,}/g, REDACTED],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, REDACTED],
  [/([?&](?:api[_-]?key|token|access_token|resumeToken|key|secret|signature)=)[^&#\s"']+/gi, `$1${REDACTED}`],
  // A SigV4-presigned URL (a Transcribe streaming grant): its session token and signature are credentials.
  [/([?&]X-Amz-(?:Security-Token|Signature|Credential)=)[^&#\s"']+/gi, `$1${REDACTED}`],
];

const binary = (bytes: number) => `[binary ${bytes} bytes]`;
const base64Bytes = (run: string) => Math.floor((run.replace(/=+$/, '').length * 3) / 4);

/** A string with secret-shaped values and long base64 runs replaced; any other text stays. */
export function redactString(s: string): string {
  let out = s.replace(BASE64_RUN, (run) => binary(base64Bytes(run)));
  for (const [pattern, replacement] of SECRET_VALUES) out = out.replace(pattern, replacement);
  return out;
}

const textLength = (value: unknown, seen = new WeakSet<object>()): number => {
  if (typeof value === 'string') return value.length;
  if (typeof value !== 'object' || value === null || seen.has(value)) return 0;
  seen.add(value);
  return Object.values(value).reduce<number>((n, v) => n + textLength(v, seen), 0);
};

const MAX_DEPTH = 32;

/**
 * A copy of log data fit for the logs: secret keys become `[redacted]` at any depth, binary
 * (buffers, long base64) becomes `[binary N bytes]`, secret-shaped strings are masked and, with
 * `redactText`, what was said becomes `[text N chars]`. Never throws, whatever it is given.
 */
export function redact(value: unknown, options: RedactOptions = {}): unknown {
  const seen = new WeakSet<object>();
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return redactString(v);
    if (typeof v !== 'object' || v === null) return typeof v === 'bigint' ? v.toString() : v;
    if (v instanceof Uint8Array) return binary(v.byteLength);
    if (v instanceof ArrayBuffer) return binary(v.byteLength);
    if (ArrayBuffer.isView(v)) return binary(v.byteLength);
    if (seen.has(v)) return '[circular]';
    if (depth >= MAX_DEPTH) return '[too deep]';
    seen.add(v);
    try {
      if (v instanceof Error) {
        return { name: v.name, message: redactString(v.message), ...(v.stack ? { stack: redactString(v.stack) } : {}) };
      }
      if (v instanceof Date) return v;
      if (Array.isArray(v)) return v.map((item) => walk(item, depth + 1));
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(v)) {
        const safeKey = redactString(key);
        const redacted = isSecretKey(key) || (isAudioKey(key) && !isMeasure(item))
          ? REDACTED
          : options.redactText && isTextKey(key) && (typeof item === 'string' || (typeof item === 'object' && item !== null))
            ? `[text ${textLength(item)} chars]`
            : walk(item, depth + 1);
        Object.defineProperty(out, safeKey, { value: redacted, enumerable: true, writable: true, configurable: true });
      }
      return out;
    } finally {
      seen.delete(v);
    }
  };
  return walk(value, 0);
}

/** The redacting decorator every adapter sits behind: the message and the data are both cleaned. */
export function redactingLog(inner: Log, options: RedactOptions & { enabled?: (level: 'debug' | 'info' | 'warn' | 'error') => boolean } = {}): Log {
  const clean = (data: LogData | undefined): LogData | undefined => {
    if (data === undefined) return undefined;
    try {
      return redact(data, options) as LogData;
    } catch {
      // A getter that throws, say: the line still goes out, without its data.
      return { logData: 'unloggable' };
    }
  };
  const write = (level: 'debug' | 'info' | 'warn' | 'error') => (message: string, data?: LogData) => {
    if (options.enabled && !options.enabled(level)) return;
    const cleaned = clean(data);
    if (cleaned === undefined) inner[level](redactString(message));
    else inner[level](redactString(message), cleaned);
  };
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    with: (keys) => redactingLog(inner.with(clean(keys) ?? {}), options),
  };
}

export const silentLog: Log = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  with: () => silentLog,
};

export interface LogLine extends LogData {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
}

/** Keeps lines in memory: for tests that assert what was logged. */
export function memoryLog(lines: LogLine[] = [], keys: LogData = {}): Log & { lines: LogLine[] } {
  const write = (level: LogLine['level']) => (message: string, data?: LogData) =>
    void lines.push({ ...keys, ...data, level, message });
  return {
    lines,
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    with: (more) => memoryLog(lines, { ...keys, ...more }),
  };
}
