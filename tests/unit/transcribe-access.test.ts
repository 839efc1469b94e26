import { createHash, createHmac } from 'node:crypto';
import { AssumeRoleCommand, STSClient, type AssumeRoleCommandInput } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readEnv, FunctionEnv } from '../../lib/config/env';
import { ParleyError, toWireError } from '../../lib/errors';
import {
  MAX_TRANSCRIBE_URL_LIFETIME_SECONDS,
  TRANSCRIBE_STREAMING_ACTION,
  roleSessionName,
  transcribeAccess,
  transcribeAccessFromEnv,
} from '../../lib/speech/stt/transcribe-access';
import { SpeechAccess } from '../../lib/protocol/v1';

/** What the function itself runs as: must never show in a URL it hands out. */
const OWN = { accessKeyId: 'AKIAFUNCTIONOWNKEY01', secretAccessKey: 'function-own-secret-key', sessionToken: 'function-own-session-token' };
/** What STS hands back for the Transcribe role. */
const ASSUMED = { AccessKeyId: 'ASIAASSUMEDROLEKEY01', SecretAccessKey: 'assumed/secret+key=0123456789', SessionToken: 'assumed-token/with+chars==' };

const ROLE_ARN = 'arn:aws:iam::123456789012:role/ParleyTranscribe';
const NOW = Date.UTC(2026, 10, 21, 14, 30, 5); // 20261121T143005Z

const stsClient = new STSClient({ region: 'eu-west-1', credentials: OWN });
const sts = mockClient(stsClient);

beforeEach(() => {
  sts.reset();
  sts.on(AssumeRoleCommand).resolves({ Credentials: { ...ASSUMED, Expiration: new Date(NOW + 900_000) } });
});
afterEach(() => sts.reset());

const assumeCalls = (): AssumeRoleCommandInput[] => sts.commandCalls(AssumeRoleCommand).map((c) => c.args[0].input);
const access = (lifetimeSeconds?: number) =>
  transcribeAccess({ sts: stsClient, roleArn: ROLE_ARN, region: 'eu-west-1', now: () => NOW, ...(lifetimeSeconds ? { lifetimeSeconds } : {}) });
const request = { sessionId: 'sess-0b7c1f52-4f1e-4a57-9d1c-1f1f1f1f1f1f', languageCode: 'en-US', sampleRate: 16000, encoding: 'pcm' } as const;

/**
 * SigV4 query-string signing written from the AWS documents alone (Transcribe's "Setting up a
 * WebSocket stream" and S3's "Authenticating requests: using query parameters"), not with the
 * signer the module uses: its agreement with the module checks the module's signature.
 */
const uriEncode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
function sigV4QuerySignature(input: {
  method: string;
  host: string;
  path: string;
  /** Every query parameter but X-Amz-Signature. */
  query: Record<string, string>;
  secretAccessKey: string;
  region: string;
  service: string;
  payloadHash: string;
}): string {
  const amzDate = input.query['X-Amz-Date']!;
  const day = amzDate.slice(0, 8);
  const canonicalQuery = Object.keys(input.query)
    .sort()
    .map((k) => `${uriEncode(k)}=${uriEncode(input.query[k]!)}`)
    .join('&');
  const canonicalRequest = [input.method, input.path, canonicalQuery, `host:${input.host}\n`, 'host', input.payloadHash].join('\n');
  const scope = `${day}/${input.region}/${input.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
  const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${input.secretAccessKey}`, day), input.region), input.service), 'aws4_request');
  return createHmac('sha256', signingKey).update(stringToSign).digest('hex');
}
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

describe('the independent SigV4 check itself', () => {
  it("reproduces the presigned URL example of Amazon S3's documentation (sigv4-query-string-auth)", () => {
    expect(
      sigV4QuerySignature({
        method: 'GET',
        host: 'examplebucket.s3.amazonaws.com',
        path: '/test.txt',
        query: {
          'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
          'X-Amz-Credential': 'AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request',
          'X-Amz-Date': '20130524T000000Z',
          'X-Amz-Expires': '86400',
          'X-Amz-SignedHeaders': 'host',
        },
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
        region: 'us-east-1',
        service: 's3',
        payloadHash: 'UNSIGNED-PAYLOAD',
      }),
    ).toBe('aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404');
  });
});

describe('transcribeAccess: STS', () => {
  it('assumes the Transcribe role for 900 s, named after the session, with a session policy allowing the one streaming action', async () => {
    await access().issue(request);
    const calls = assumeCalls();
    expect(calls).toHaveLength(1);
    const input = calls[0]!;
    expect(input.RoleArn).toBe(ROLE_ARN);
    expect(input.DurationSeconds).toBe(900);
    expect(input.RoleSessionName).toBe(`parley-${request.sessionId}`);
    expect(JSON.parse(input.Policy!)).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 'transcribe:StartStreamTranscriptionWebSocket', Resource: '*' }],
    });
    expect(TRANSCRIBE_STREAMING_ACTION).toBe('transcribe:StartStreamTranscriptionWebSocket');
    expect(input.PolicyArns).toBeUndefined();
    expect(input.Tags).toBeUndefined();
  });

  it('assumes the role afresh for every grant (a client asks again before expiry)', async () => {
    const a = access();
    await a.issue(request);
    await a.issue({ ...request, sessionId: 'other' });
    expect(assumeCalls().map((c) => c.RoleSessionName)).toEqual([`parley-${request.sessionId}`, 'parley-other']);
  });

  it('session names keep to STS rules: 2 to 64 of [\\w+=,.@-], long ids shortened with a hash that keeps them apart', () => {
    expect(roleSessionName('a b/c:d#é')).toBe('parley-a-b-c-d--');
    const long1 = roleSessionName('x'.repeat(100) + '1');
    const long2 = roleSessionName('x'.repeat(100) + '2');
    for (const name of [long1, long2, roleSessionName('s'), roleSessionName('ü'.repeat(300))]) {
      expect(name).toMatch(/^[\w+=,.@-]{2,64}$/);
    }
    expect(long1).toHaveLength(64);
    expect(long1).not.toBe(long2);
  });

  it('an STS failure is a typed stt.access_failed error (internal: the client sees server.internal), with the cause kept', async () => {
    const denied = Object.assign(new Error('User: arn:aws:sts::123456789012:assumed-role/Turn is not authorized to perform: sts:AssumeRole'), {
      name: 'AccessDenied',
    });
    sts.on(AssumeRoleCommand).rejects(denied);
    const err = await access().issue(request).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ParleyError);
    expect((err as ParleyError).code).toBe('stt.access_failed');
    expect((err as ParleyError).isClientFacing).toBe(false);
    expect((err as ParleyError).cause).toBe(denied);
    expect(toWireError(err).code).toBe('server.internal');
  });

  it('STS answering without credentials is stt.access_failed too', async () => {
    sts.on(AssumeRoleCommand).resolves({});
    await expect(access().issue(request)).rejects.toMatchObject({ code: 'stt.access_failed' });
  });

  it('a bad request is protocol.invalid_message and calls STS not at all', async () => {
    for (const bad of [
      { ...request, languageCode: 'english' },
      { ...request, sampleRate: 44100.5 },
      { ...request, sampleRate: 4000 },
      { ...request, encoding: 'mp3' },
      { ...request, sessionId: '' },
    ]) {
      await expect(access().issue(bad as never)).rejects.toMatchObject({ code: 'protocol.invalid_message' });
    }
    expect(assumeCalls()).toHaveLength(0);
  });

  it('refuses a lifetime above 300 s (Transcribe\'s limit for presigned URLs) or below 1 s', () => {
    expect(() => access(301)).toThrow(/1 to 300 seconds/);
    expect(() => access(0.5)).toThrow(ParleyError);
    expect(() => transcribeAccess({ sts: stsClient, roleArn: ROLE_ARN, region: 'not a region' })).toThrow(/region/);
  });
});

describe('transcribeAccess: the presigned URL', () => {
  it('is wss://transcribestreaming.<region>.amazonaws.com:8443/stream-transcription-websocket with the audio parameters', async () => {
    const grant = await access().issue({ ...request, languageCode: 'de-DE', sampleRate: 8000, encoding: 'ogg-opus' });
    // A valid speech.access event once typed: what the server sends.
    expect(SpeechAccess.parse({ type: 'speech.access', ...grant })).toEqual({ type: 'speech.access', ...grant });
    const url = new URL(grant.url);
    expect(url.protocol).toBe('wss:');
    expect(url.hostname).toBe('transcribestreaming.eu-west-1.amazonaws.com');
    expect(url.port).toBe('8443');
    expect(url.pathname).toBe('/stream-transcription-websocket');
    expect(url.searchParams.get('language-code')).toBe('de-DE');
    expect(url.searchParams.get('media-encoding')).toBe('ogg-opus');
    expect(url.searchParams.get('sample-rate')).toBe('8000');
    expect(grant).toMatchObject({ languageCode: 'de-DE', sampleRate: 8000, encoding: 'ogg-opus' });
  });

  it('carries the SigV4 query parameters of the ASSUMED credentials: their key id, service transcribe, their session token, X-Amz-Expires = lifetime', async () => {
    const grant = await access().issue(request);
    const q = new URL(grant.url).searchParams;
    expect(q.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    expect(q.get('X-Amz-Credential')).toBe(`${ASSUMED.AccessKeyId}/20261121/eu-west-1/transcribe/aws4_request`);
    expect(q.get('X-Amz-Date')).toBe('20261121T143005Z');
    expect(q.get('X-Amz-Expires')).toBe('300');
    expect(q.get('X-Amz-Security-Token')).toBe(ASSUMED.SessionToken);
    expect(q.get('X-Amz-SignedHeaders')).toBe('host');
    expect(q.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    expect([...q.keys()].sort()).toEqual(
      [
        'X-Amz-Algorithm',
        'X-Amz-Credential',
        'X-Amz-Date',
        'X-Amz-Expires',
        'X-Amz-Security-Token',
        'X-Amz-Signature',
        'X-Amz-SignedHeaders',
        'language-code',
        'media-encoding',
        'sample-rate',
      ].sort(),
    );
  });

  it('expires lifetime seconds after it was issued (default 300 s, shorter on request)', async () => {
    expect((await access().issue(request)).urlExpiresAt).toBe(NOW + MAX_TRANSCRIBE_URL_LIFETIME_SECONDS * 1000);
    const short = await access(60).issue(request);
    expect(short.urlExpiresAt).toBe(NOW + 60_000);
    expect(new URL(short.url).searchParams.get('X-Amz-Expires')).toBe('60');
  });

  it('hands out the assumed credentials (for the SDK) with their STS expiry, never the function\'s own', async () => {
    const grant = await access().issue(request);
    expect(grant.credentials).toEqual({ accessKeyId: ASSUMED.AccessKeyId, secretAccessKey: ASSUMED.SecretAccessKey, sessionToken: ASSUMED.SessionToken });
    expect(grant.expiresAt).toBe(NOW + 900_000);
    expect(grant.region).toBe('eu-west-1');
    expect(JSON.stringify(grant)).not.toContain(OWN.secretAccessKey);
  });

  it('is signed correctly: the signature agrees with SigV4 computed independently (host with :8443, empty payload, the token signed)', async () => {
    const grant = await access(120).issue({ ...request, languageCode: 'en-GB', sampleRate: 48000, encoding: 'flac' });
    const url = new URL(grant.url);
    const query = Object.fromEntries([...url.searchParams].filter(([k]) => k !== 'X-Amz-Signature'));
    const expected = sigV4QuerySignature({
      method: 'GET',
      host: 'transcribestreaming.eu-west-1.amazonaws.com:8443',
      path: '/stream-transcription-websocket',
      query,
      secretAccessKey: ASSUMED.SecretAccessKey,
      region: 'eu-west-1',
      service: 'transcribe',
      payloadHash: EMPTY_SHA256,
    });
    expect(url.searchParams.get('X-Amz-Signature')).toBe(expected);
    // Signed with the function's own secret instead, it would differ.
    expect(sigV4QuerySignature({ method: 'GET', host: 'transcribestreaming.eu-west-1.amazonaws.com:8443', path: '/stream-transcription-websocket', query, secretAccessKey: OWN.secretAccessKey, region: 'eu-west-1', service: 'transcribe', payloadHash: EMPTY_SHA256 })).not.toBe(expected);
  });

  it("never carries the function's own credentials, even with them in the environment", async () => {
    const saved = { ...process.env };
    process.env.AWS_ACCESS_KEY_ID = OWN.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = OWN.secretAccessKey;
    process.env.AWS_SESSION_TOKEN = OWN.sessionToken;
    try {
      const grant = await access().issue(request);
      const decoded = decodeURIComponent(grant.url);
      for (const own of Object.values(OWN)) {
        expect(grant.url).not.toContain(own);
        expect(decoded).not.toContain(own);
      }
      expect(decoded).toContain(ASSUMED.AccessKeyId);
      expect(decoded).not.toContain(ASSUMED.SecretAccessKey);
    } finally {
      for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });
});

describe('configuration', () => {
  it('PARLEY_TRANSCRIBE_ROLE_ARN: optional, an IAM role ARN', () => {
    expect(readEnv(FunctionEnv, {}).PARLEY_TRANSCRIBE_ROLE_ARN).toBeUndefined();
    expect(readEnv(FunctionEnv, { PARLEY_TRANSCRIBE_ROLE_ARN: ROLE_ARN }).PARLEY_TRANSCRIBE_ROLE_ARN).toBe(ROLE_ARN);
    expect(() => readEnv(FunctionEnv, { PARLEY_TRANSCRIBE_ROLE_ARN: 'arn:aws:iam::123456789012:user/someone' })).toThrow(/PARLEY_TRANSCRIBE_ROLE_ARN/);
  });

  it('transcribeAccessFromEnv: none without the role; with it, access in AWS_REGION; a role without a region is a config error', async () => {
    expect(transcribeAccessFromEnv({})).toBeUndefined();
    expect(transcribeAccessFromEnv({ AWS_REGION: 'eu-west-1' })).toBeUndefined();
    expect(() => transcribeAccessFromEnv({ PARLEY_TRANSCRIBE_ROLE_ARN: ROLE_ARN })).toThrow(/AWS_REGION/);
    const fromEnv = transcribeAccessFromEnv({ PARLEY_TRANSCRIBE_ROLE_ARN: ROLE_ARN, AWS_REGION: 'us-west-2' }, { sts: stsClient, now: () => NOW });
    const grant = await fromEnv!.issue(request);
    expect(new URL(grant.url).hostname).toBe('transcribestreaming.us-west-2.amazonaws.com');
    expect(assumeCalls()[0]!.RoleArn).toBe(ROLE_ARN);
  });
});
