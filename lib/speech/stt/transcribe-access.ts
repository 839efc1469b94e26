/**
 * Short-lived access to Amazon Transcribe streaming for one session (issue 9, groundwork).
 *
 * Transcribe streaming must be fed at real-time pace, so the client streams its microphone to
 * Transcribe itself. The server hands it a presigned WebSocket URL: signed with temporary
 * credentials of a role that may do nothing but `transcribe:StartStreamTranscriptionWebSocket`
 * (the CDK construct's `voiceInput: 'transcribe'` creates it), assumed for this one session with a
 * session policy that allows that one action again. The function's own credentials sign nothing here:
 * they only call STS AssumeRole.
 *
 * The URL's format follows the Transcribe developer guide, "Setting up a WebSocket stream":
 * `GET wss://transcribestreaming.<region>.amazonaws.com:8443/stream-transcription-websocket` with
 * `language-code`, `media-encoding`, `sample-rate` and the SigV4 query parameters (service
 * `transcribe`, signed header `host` with the port, `X-Amz-Expires` at most 300 seconds,
 * `X-Amz-Security-Token` signed in the canonical query, empty payload).
 */
import { createHash } from 'node:crypto';
import type { STSClient } from '@aws-sdk/client-sts';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import * as z from 'zod';
import { ParleyError } from '../../errors';
import { SDK_CLIENT_DEFAULTS } from '../../host/sdk';
import type { ServerEventOf } from '../../protocol/v1';

type SpeechAccess = ServerEventOf<'speech.access'>;

/** The one action the vended credentials may use (Transcribe streaming has no resource-level ARN: `*`). */
export const TRANSCRIBE_STREAMING_ACTION = 'transcribe:StartStreamTranscriptionWebSocket';

/** Transcribe's limit for a presigned streaming URL's `X-Amz-Expires`, and our default. */
export const MAX_TRANSCRIBE_URL_LIFETIME_SECONDS = 300;

/** STS AssumeRole's minimum session duration: the assumed credentials outlive the URL they sign. */
export const ASSUMED_ROLE_DURATION_SECONDS = 900;

/**
 * The session policy passed with AssumeRole: the effective permissions are the intersection of the
 * role's own policy and this one, so even a role granted more by mistake vends this action only.
 */
export const TRANSCRIBE_SESSION_POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: TRANSCRIBE_STREAMING_ACTION, Resource: '*' }],
});

export const TranscribeEncoding = z.enum(['pcm', 'ogg-opus', 'flac']);
export type TranscribeEncoding = z.infer<typeof TranscribeEncoding>;

/** What a client asks for: values it sends, so they are checked (a bad one is `protocol.invalid_message`). */
export const TranscribeAccessRequest = z.object({
  sessionId: z.string().min(1).max(256),
  /** Transcribe streaming language codes look like `en-US`, `de-DE`, `zh-CN`. */
  languageCode: z.string().regex(/^[a-z]{2,3}-[A-Z]{2}$/, 'a language code such as en-US'),
  /** Transcribe streaming accepts 8,000 to 48,000 Hz; it must match the audio's rate. */
  sampleRate: z.number().int().min(8000).max(48000),
  encoding: TranscribeEncoding,
});
export type TranscribeAccessRequest = z.infer<typeof TranscribeAccessRequest>;

/**
 * What the client gets (the protocol's `speech.access` without its type), for audio of exactly this
 * shape: a presigned `wss://` URL to open before `urlExpiresAt`, or the same temporary credentials
 * (the session policy lets them do nothing but StartStreamTranscriptionWebSocket) for the AWS SDK
 * until `expiresAt`, STS's answer. Both are secrets: never log them.
 */
export type TranscribeGrant = Omit<SpeechAccess, 'type'>;

/** Port: issues Transcribe streaming access for one session. Absent when voice input is not configured. */
export interface TranscribeAccess {
  /**
   * A fresh grant, each call (a client asks again before `expiresAt` for its next utterance).
   * Throws ParleyError: `protocol.invalid_message` for a bad request, `stt.access_failed` when STS
   * refuses or cannot be reached.
   */
  issue(request: TranscribeAccessRequest): Promise<TranscribeGrant>;
}

export interface TranscribeAccessOptions {
  /** The STS client (tests pass theirs). @default one for `region`, loaded with the first grant */
  sts?: STSClient;
  /** The role that may only StartStreamTranscriptionWebSocket (`PARLEY_TRANSCRIBE_ROLE_ARN`). */
  roleArn: string;
  /** The region of the Transcribe endpoint, and of the signature. */
  region: string;
  /** How long the URL may be opened, in seconds: 1 to 300. @default 300 */
  lifetimeSeconds?: number;
  now?: () => number;
}

/** RoleSessionName: 2 to 64 of `[\w+=,.@-]`; shows in CloudTrail as the assumed role's session. */
export function roleSessionName(sessionId: string): string {
  const clean = sessionId.replace(/[^\w+=,.@-]/g, '-');
  const name = `parley-${clean}`;
  if (name.length <= 64) return name;
  // Too long to keep whole: a prefix to read, and a hash so that two long ids stay apart.
  const hash = createHash('sha256').update(sessionId).digest('hex').slice(0, 16);
  return `parley-${clean.slice(0, 64 - 'parley-'.length - 1 - hash.length)}-${hash}`;
}

export function transcribeAccess(options: TranscribeAccessOptions): TranscribeAccess {
  const lifetimeSeconds = options.lifetimeSeconds ?? MAX_TRANSCRIBE_URL_LIFETIME_SECONDS;
  if (!Number.isInteger(lifetimeSeconds) || lifetimeSeconds < 1 || lifetimeSeconds > MAX_TRANSCRIBE_URL_LIFETIME_SECONDS) {
    throw new ParleyError('config.invalid', `Transcribe URL lifetime must be 1 to ${MAX_TRANSCRIBE_URL_LIFETIME_SECONDS} seconds, got ${lifetimeSeconds}`);
  }
  if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(options.region)) {
    throw new ParleyError('config.invalid', `not an AWS region: ${JSON.stringify(options.region)}`);
  }
  const now = options.now ?? Date.now;
  const host = `transcribestreaming.${options.region}.amazonaws.com`;

  // STS loads with the first grant, like Polly with the first audio: a cold start without voice input never pays for it.
  let sts: Promise<{ client: STSClient; AssumeRoleCommand: typeof import('./sts').AssumeRoleCommand }> | undefined;
  const loadSts = () =>
    (sts ??= import('./sts').then((m) => ({
      client: options.sts ?? new m.STSClient({ region: options.region, ...SDK_CLIENT_DEFAULTS }),
      AssumeRoleCommand: m.AssumeRoleCommand,
    })));

  return {
    async issue(input) {
      const parsed = TranscribeAccessRequest.safeParse(input);
      if (!parsed.success) {
        const detail = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
        throw new ParleyError('protocol.invalid_message', `invalid voice input request: ${detail}`);
      }
      const request = parsed.data;

      let assumed;
      try {
        const { client, AssumeRoleCommand } = await loadSts();
        assumed = await client.send(
          new AssumeRoleCommand({
            RoleArn: options.roleArn,
            RoleSessionName: roleSessionName(request.sessionId),
            DurationSeconds: ASSUMED_ROLE_DURATION_SECONDS,
            Policy: TRANSCRIBE_SESSION_POLICY,
          }),
        );
      } catch (err) {
        throw new ParleyError('stt.access_failed', `could not assume the Transcribe role: ${(err as Error)?.name ?? 'error'}`, { cause: err });
      }
      const c = assumed.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken) {
        throw new ParleyError('stt.access_failed', 'STS AssumeRole returned no credentials');
      }

      const issuedAt = now();
      // Credentials are these temporary ones and nothing else: no provider chain is consulted.
      const signer = new SignatureV4({
        service: 'transcribe',
        region: options.region,
        sha256: Sha256,
        credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken },
      });
      const signed = await signer.presign(
        {
          method: 'GET',
          protocol: 'wss:',
          hostname: host,
          port: 8443,
          path: '/stream-transcription-websocket',
          // The browser sends `Host: <host>:8443` (not the default port), so that is what is signed.
          headers: { host: `${host}:8443` },
          query: {
            'language-code': request.languageCode,
            'media-encoding': request.encoding,
            'sample-rate': String(request.sampleRate),
          },
        },
        { signingDate: new Date(issuedAt), expiresIn: lifetimeSeconds },
      );
      const url = new URL(`wss://${host}:8443/stream-transcription-websocket`);
      for (const [name, value] of Object.entries(signed.query ?? {})) {
        if (typeof value === 'string') url.searchParams.set(name, value);
      }
      return {
        region: options.region,
        url: url.toString(),
        urlExpiresAt: issuedAt + lifetimeSeconds * 1000,
        credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken },
        expiresAt: c.Expiration ? c.Expiration.getTime() : issuedAt + ASSUMED_ROLE_DURATION_SECONDS * 1000,
        languageCode: request.languageCode,
        sampleRate: request.sampleRate,
        encoding: request.encoding,
      };
    },
  };
}

/**
 * The hosts' factory: Transcribe access when `PARLEY_TRANSCRIBE_ROLE_ARN` is set, else undefined
 * (voice input then has no Transcribe). The region is `AWS_REGION` (Lambda sets it).
 */
export function transcribeAccessFromEnv(
  env: { PARLEY_TRANSCRIBE_ROLE_ARN?: string | undefined; AWS_REGION?: string | undefined },
  options: Pick<TranscribeAccessOptions, 'sts' | 'lifetimeSeconds' | 'now'> = {},
): TranscribeAccess | undefined {
  const roleArn = env.PARLEY_TRANSCRIBE_ROLE_ARN;
  if (!roleArn) return undefined;
  const region = env.AWS_REGION;
  if (!region) throw new ParleyError('config.invalid', 'PARLEY_TRANSCRIBE_ROLE_ARN is set but AWS_REGION is not: the Transcribe endpoint needs a region');
  return transcribeAccess({
    ...(options.sts ? { sts: options.sts } : {}),
    roleArn,
    region,
    ...(options.lifetimeSeconds === undefined ? {} : { lifetimeSeconds: options.lifetimeSeconds }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
}
