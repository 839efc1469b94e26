import * as z from 'zod';
import { DEFAULT_LAMBDA_MEMORY_MB, loadPrices } from '../cost/prices';
import { ParleyError } from '../errors';
import { jwksUrlAllowed } from '../session/jwt';

const apiKeys = z
  .string()
  .optional()
  .transform((s) => (s ?? '').split(',').map((k) => k.trim()).filter(Boolean))
  .refine((keys) => keys.every((k) => k.length >= 8), 'every API key needs at least 8 characters')
  .describe('comma-separated API keys; unset or empty: no authentication');

const apiKeyHashes = z
  .string()
  .optional()
  .transform((s) => (s === undefined ? undefined : s.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean)))
  .refine((hashes) => (hashes ?? []).every((h) => /^[0-9a-f]{64}$/.test(h)), 'every API key hash is 64 hex digits: the sha256 of the key')
  .describe('comma-separated sha256 (hex) of the API keys: how a deployment configures them; with PARLEY_API_KEYS, either is accepted');

/** A secret read from the environment (development) or named by a Secrets Manager id (Lambda). */
const secret = (what: string) => z.string().min(32, `${what} needs at least 32 characters`);
const secretId = z.string().min(1);

/** `VAR=` in a shell or a .env file means "not set", not "zero" or "empty". */
const unsetIfBlank = (value: unknown) => (typeof value === 'string' && value.trim() === '' ? undefined : value);
const logLevel = z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR', 'SILENT']);
const port = z.coerce.number().int().min(0).max(65535);

/** The cost ledger's settings (lib/cost), read by the hosts that run turns (the turn function, npm start). */
export const CostEnv = z.object({
  PARLEY_PRICES: z
    .string()
    .optional()
    .transform((value, ctx) => {
      try {
        return loadPrices(value);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    })
    .describe('the price table of the cost ledger: inline JSON or a JSON file, merged over lib/cost/prices.ts DEFAULT_PRICES'),
  AWS_LAMBDA_FUNCTION_MEMORY_SIZE: z.coerce
    .number()
    .int()
    .min(128)
    .max(10_240)
    .default(DEFAULT_LAMBDA_MEMORY_MB)
    .describe("Lambda sets it; locally a turn is priced as the stack's turn function (256 MB)"),
});
export type CostEnv = z.infer<typeof CostEnv>;

/** What the Lambda functions read (set by the CDK construct). */
export const FunctionEnv = z.object({
  PARLEY_TABLE: z.string().min(3).max(255).default('parley'),
  PARLEY_API_KEYS: apiKeys,
  PARLEY_API_KEY_HASHES: apiKeyHashes,
  PARLEY_JWT_SECRET: secret('an HS256 secret').optional().describe('HS256: the secret JWTs are signed with; turns JWT authentication on'),
  PARLEY_JWT_SECRET_ID: secretId.optional().describe('HS256: a Secrets Manager secret (id or ARN) holding that secret (Lambda)'),
  PARLEY_JWT_JWKS_URL: z
    .url()
    .refine(jwksUrlAllowed, 'must be https (http only to localhost)')
    .optional()
    .describe("RS256: the issuer's JSON Web Key Set; turns JWT authentication on"),
  PARLEY_JWT_ISSUER: z.string().min(1).optional().describe("when set, a JWT's iss must be exactly this"),
  PARLEY_JWT_AUDIENCE: z.string().min(1).optional().describe("when set, a JWT's aud must name this"),
  PARLEY_RESUME_SECRET: secret('the resume secret').optional().describe('resume tokens are HMAC-SHA256(secret, session id)'),
  PARLEY_RESUME_SECRET_ID: secretId.optional().describe('a Secrets Manager secret (id or ARN) holding the resume secret (Lambda; the stack generates one)'),
  PARLEY_SESSION_TTL_HOURS: z.coerce.number().int().positive().max(24 * 365).default(24 * 30),
  PARLEY_RATE_PER_SECOND: z.coerce
    .number()
    .min(0)
    .max(1000)
    .default(5)
    .describe('messages per second one connection may send in the long run (a token bucket in DynamoDB); 0: no rate limit'),
  PARLEY_RATE_BURST: z.coerce.number().int().min(1).max(1000).default(20).describe('messages one connection may send at once (the bucket size)'),
  PARLEY_MAX_TURNS: z.coerce.number().int().min(0).max(1_000_000).default(500).describe('turns after the greeting one session may take; 0: no limit'),
  PARLEY_MAX_SESSION_AGE_HOURS: z.coerce
    .number()
    .min(0)
    .max(24 * 365)
    .default(24)
    .describe('hours after its start a session takes input; 0: no limit'),
  PARLEY_LOG_LEVEL: logLevel.default('INFO'),
  PARLEY_LOG_REDACT_TEXT: z
    .stringbool()
    .default(false)
    .describe('true: what users and the bot said (text, transcripts, LLM messages) is logged as its length only'),
  PARLEY_ACTIONS_BASE_URL: z.url().optional().describe('base of relative webhook URLs in the dialogue map'),
  /** The LLM: any OpenAI-compatible server. Without a key (or a secret holding one) there is no LLM. */
  OPENAI_API_KEY: z.string().min(1).optional(),
  OPENAI_BASE_URL: z.url().optional(),
  OPENAI_MODEL: z.string().min(1).default('gpt-4o-mini'),
  /** Lambda: the key lives in Secrets Manager (secret id or ARN). */
  OPENAI_API_KEY_SECRET: z.string().min(1).optional(),
  /** What one turn may spend on the LLM, tool rounds included. */
  PARLEY_LLM_BUDGET_MS: z.coerce.number().int().min(1000).max(900_000).default(20_000),
  /** First-sentence safety check: OpenAI moderation, the local word list, or none. auto: moderation on api.openai.com, else local. */
  PARLEY_SAFETY: z.enum(['auto', 'openai', 'local', 'off']).default('auto'),
  PARLEY_TTS: z
    .enum(['auto', 'polly', 'local', 'off'])
    .default('auto')
    .describe('speech synthesis: Polly, the local eSpeak synthesizer (npm start only), or none; auto: Polly with AWS credentials, else local'),
  /** Extra blocked words or phrases for the local checker, comma-separated. */
  PARLEY_SAFETY_BLOCKED: z
    .string()
    .optional()
    .transform((s) => (s ?? '').split(',').map((w) => w.trim()).filter(Boolean)),
  PARLEY_AUDIO_FORMATS: z.string().optional().describe('formats the audio cache renders, comma-separated (pcm16000, mp3-24000); default pcm16000'),
  PARLEY_AUDIO_CACHE_DIR: z.string().min(1).optional().describe('the audio cache folder; relative: to LAMBDA_TASK_ROOT in Lambda (the stack sets "audio"), else to the current directory; default build/audio locally'),
  PARLEY_TRANSCRIBE_ROLE_ARN: z
    .string()
    .regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/, 'an IAM role ARN (arn:aws:iam::<account>:role/<name>)')
    .optional()
    .describe('voice input: the role assumed to presign Transcribe streaming URLs for clients; it may only transcribe:StartStreamTranscriptionWebSocket (the CDK prop voiceInput sets it); unset: no Transcribe access'),
  PARLEY_STT_BASE_URL: z
    .url()
    .optional()
    .describe('voice input: an OpenAI-compatible transcription endpoint (POST <url>/audio/transcriptions), e.g. https://api.openai.com/v1 or a self-hosted http://127.0.0.1:8000/v1; unset (and no Transcribe): voice input answers stt.unavailable'),
  PARLEY_STT_MODEL: z
    .string()
    .min(1)
    .optional()
    .describe('the transcription model at PARLEY_STT_BASE_URL (whisper-1, gpt-4o-mini-transcribe, or what a self-hosted server names); unset: whisper-1 (transcriberFromEnv)'),
  PARLEY_STT_API_KEY: z
    .string()
    .min(1)
    .optional()
    .describe('the key for PARLEY_STT_BASE_URL; unset: OPENAI_API_KEY when that is api.openai.com, else none (self-hosted servers)'),
  PARLEY_TRACING: z
    .enum(['off', 'otlp'])
    .optional()
    .describe('otlp: OpenTelemetry spans per turn and provider call, exported over OTLP/HTTP to OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT (lib/observability/tracing.ts); unset or off: none'),
  PARLEY_TRACE_URL: z
    .string()
    .refine((t) => /\{(traceId|xrayTraceId|sessionId)\}/.test(t), 'must name {traceId}, {xrayTraceId} or {sessionId}')
    .optional()
    .describe('link to a trace in its viewer, e.g. http://localhost:16686/trace/{traceId}: the replay report links each turn with it'),
  /** Read by the OTLP exporter itself; checked here so that a typo stops the start instead of losing every span. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url().optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: z.enum(['http/protobuf', 'http/json']).optional().describe('default http/protobuf; grpc is not supported'),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: z.enum(['http/protobuf', 'http/json']).optional(),
});
export type FunctionEnv = z.infer<typeof FunctionEnv>;

/** What `npm start` reads on top: where the embedded stand-ins listen and keep their data. */
export const LocalEnv = FunctionEnv.extend({
  PARLEY_HOST: z.string().min(1).default('127.0.0.1'),
  PARLEY_PORT: port.default(8787),
  PARLEY_DYNAMODB_PORT: port.default(0).describe('0: any free port'),
  PARLEY_DATA_DIR: z.string().min(1).default('.parley-data'),
  PARLEY_DYNAMODB_ENDPOINT: z.url().optional().describe('use this DynamoDB (e.g. DynamoDB Local) instead of the embedded dynalite'),
  PARLEY_DIALOGUE_MAP: z.string().min(1).default('dialogue_map.json'),
  PARLEY_LOG_LEVEL: logLevel.default('WARN'),
});
export type LocalEnv = z.infer<typeof LocalEnv>;

/** Validates the environment; a bad value stops the start with a message naming the variable. */
export function readEnv<S extends z.ZodType>(schema: S, env: Record<string, string | undefined> = process.env): z.infer<S> {
  const parsed = schema.safeParse(Object.fromEntries(Object.entries(env).map(([k, v]) => [k, unsetIfBlank(v)])));
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
  throw new ParleyError('config.invalid', `invalid configuration:\n${lines.join('\n')}`);
}
