/*
 * The price table the cost ledger multiplies usage by: USD, us-east-1, on-demand list prices without
 * free tiers or volume discounts. Every number is overridable (PARLEY_PRICES, see loadPrices): a
 * deployment in another region, with a negotiated rate or on x86 replaces what differs.
 *
 * Checked 2026-11-21 against these pages (the figures agree with AWS's and OpenAI's pricing pages as
 * quoted by several independent price guides of 2025-2026; re-check before relying on them):
 *   - OpenAI "API Pricing" (platform.openai.com/docs/pricing), standard tier, per 1M tokens
 *   - "Amazon Polly Pricing": per 1M characters, by voice engine
 *   - "Amazon Transcribe Pricing": standard streaming, tier 1 (first 250,000 minutes a month),
 *     billed per second with a 15-second minimum per stream
 *   - "AWS Lambda Pricing": duration per GB-second (arm64: first 7.5 billion GB-s a month; x86: first
 *     6 billion) and requests; the CDK stack deploys arm64 (infra/parley-construct.ts)
 *   - "Amazon DynamoDB Pricing" > on-demand: per 1M write and read request units, Standard table
 *     class (the prices of 1 November 2024, when on-demand throughput became 50% cheaper)
 *   - "Amazon API Gateway Pricing" > WebSocket APIs: per 1M messages (first 1 billion; a message is
 *     metered in 32 KB increments) and per 1M connection minutes
 */
import { readFileSync } from 'node:fs';
import * as z from 'zod';

const usd = z.number().nonnegative().finite();

/** USD per 1M tokens. `cachedInput` is what a prompt-cache hit costs instead of `input` (default: the same). */
export const ModelPrice = z.strictObject({ input: usd, cachedInput: usd.optional(), output: usd });
export type ModelPrice = z.infer<typeof ModelPrice>;

export const PriceTable = z.strictObject({
  /** When the figures were last checked (YYYY-MM-DD): the ledger and the README name it. */
  checked: z.string().min(1),
  currency: z.literal('USD'),
  region: z.string().min(1),
  /** Per model, per 1M tokens. A model missing here is priced 0 and flagged `unpriced`. */
  llm: z.record(z.string().min(1), ModelPrice),
  /** Speech synthesis, USD per 1M characters, by engine (Polly's engines; `espeak` is the local synthesizer). */
  tts: z.record(z.string().min(1), usd),
  /**
   * Speech recognition, USD per minute of audio: `perMinute` is Amazon Transcribe streaming's (and
   * what seconds of no known recognizer cost); `byProvider` prices the others (`openai`, `self-hosted`).
   */
  stt: z.strictObject({ perMinute: usd, byProvider: z.record(z.string().min(1), usd).optional() }),
  lambda: z.strictObject({
    /** Which architecture the turn function runs on: the stack deploys arm64. */
    architecture: z.enum(['arm64', 'x86_64']),
    /** USD per GB-second of duration. */
    perGbSecond: z.strictObject({ arm64: usd, x86_64: usd }),
    perMillionRequests: usd,
  }),
  dynamodb: z.strictObject({ perMillionReadUnits: usd, perMillionWriteUnits: usd }),
  apiGateway: z.strictObject({
    perMillionMessages: usd,
    /** Not in a turn's ledger (a connection is not a turn); here for estimates. */
    perMillionConnectionMinutes: usd,
    /** Messages are metered in increments of this many bytes. */
    messageBytes: z.number().int().positive(),
  }),
});
export type PriceTable = z.infer<typeof PriceTable>;

export const DEFAULT_PRICES: PriceTable = {
  checked: '2026-11-21',
  currency: 'USD',
  region: 'us-east-1',
  llm: {
    // OPENAI_MODEL's default.
    'gpt-4o-mini': { input: 0.15, cachedInput: 0.075, output: 0.6 },
    'gpt-4o': { input: 2.5, cachedInput: 1.25, output: 10 },
    'gpt-4.1': { input: 2, cachedInput: 0.5, output: 8 },
    'gpt-4.1-mini': { input: 0.4, cachedInput: 0.1, output: 1.6 },
    'gpt-4.1-nano': { input: 0.1, cachedInput: 0.025, output: 0.4 },
    'gpt-5': { input: 1.25, cachedInput: 0.125, output: 10 },
    'gpt-5-mini': { input: 0.25, cachedInput: 0.025, output: 2 },
    'gpt-5-nano': { input: 0.05, cachedInput: 0.005, output: 0.4 },
  },
  tts: { standard: 4, neural: 16, generative: 30, 'long-form': 100, espeak: 0 },
  // Transcribe streaming (per second, 15 s minimum per stream); OpenAI's whisper-1 and gpt-4o-transcribe; your own recognizer: nothing here.
  stt: { perMinute: 0.024, byProvider: { openai: 0.006, 'self-hosted': 0 } },
  lambda: { architecture: 'arm64', perGbSecond: { arm64: 0.0000133334, x86_64: 0.0000166667 }, perMillionRequests: 0.2 },
  dynamodb: { perMillionReadUnits: 0.125, perMillionWriteUnits: 0.625 },
  apiGateway: { perMillionMessages: 1, perMillionConnectionMinutes: 0.25, messageBytes: 32 * 1024 },
};

/** The stack's turn function (infra/parley-construct.ts): the memory a turn is priced with outside Lambda. */
export const DEFAULT_LAMBDA_MEMORY_MB = 256;

/**
 * The price of `model`: its own entry, else the entry it is a dated snapshot of. OpenAI answers with
 * the snapshot's name (`gpt-4o-mini-2024-07-18` for `gpt-4o-mini`); only a date suffix counts, so
 * `gpt-4o-audio-preview` is not taken for `gpt-4o`.
 */
export function modelPrice(prices: PriceTable, model: string): ModelPrice | undefined {
  const own = prices.llm[model];
  if (own) return own;
  const snapshot = /^(.+)-\d{4}-\d{2}-\d{2}$/.exec(model);
  return snapshot ? prices.llm[snapshot[1]!] : undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Objects merge key by key, at any depth; anything else in `override` replaces what `base` has. */
export function deepMerge(base: unknown, override: unknown): unknown {
  if (!isObject(base) || !isObject(override)) return override;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) merged[key] = key in base ? deepMerge(base[key], value) : value;
  return merged;
}

/** The defaults with `override` merged over them, validated; throws an Error naming every bad path. */
export function mergePrices(override: unknown, base: PriceTable = DEFAULT_PRICES): PriceTable {
  if (!isObject(override)) throw new Error('the price table override must be a JSON object');
  const parsed = PriceTable.safeParse(deepMerge(base, override));
  if (parsed.success) return parsed.data;
  throw new Error(parsed.error.issues.map((i) => `${i.path.join('.') || '(table)'}: ${i.message}`).join('; '));
}

/**
 * PARLEY_PRICES: unset is the defaults; a value starting with `{` is inline JSON; anything else is
 * the path of a JSON file. Either is merged over the defaults, so it only needs what differs:
 * `{"lambda": {"architecture": "x86_64"}, "llm": {"my-model": {"input": 0.3, "output": 1.2}}}`.
 */
export function loadPrices(value: string | undefined, readFile: (path: string) => string = (path) => readFileSync(path, 'utf8')): PriceTable {
  if (value === undefined || value.trim() === '') return DEFAULT_PRICES;
  const inline = value.trim().startsWith('{');
  let text: string;
  try {
    text = inline ? value : readFile(value);
  } catch (err) {
    throw new Error(`cannot read the price file ${value}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${inline ? 'the inline price table' : `the price file ${value}`} is not JSON: ${(err as Error).message}`);
  }
  return mergePrices(json);
}
