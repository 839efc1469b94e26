import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalRuntime } from '../../local/runtime';
import { sessionItems, startRuntime, TestClient } from './harness';

const HS_SECRET = 'hs256-test-secret-0123456789-abcdefghij';
const ISSUER = 'https://id.example.test/';
const AUDIENCE = 'parley-test';
const enc = (s: string) => new TextEncoder().encode(s);
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A real JWKS endpoint on this machine, counting how often it is asked. */
async function startJwks(keys: object[]): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const server: Server = createServer((req, res) => {
    hits++;
    if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    hits: () => hits,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

interface Sign {
  alg?: 'HS256' | 'RS256';
  key?: CryptoKey | Uint8Array;
  kid?: string;
  claims?: JWTPayload;
  /** seconds from now; negative: already expired */
  expiresIn?: number | null;
}

describe('JWT authentication (HS256 secret and RS256 via a JWKS)', () => {
  let runtime: LocalRuntime;
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let rsa: { privateKey: CryptoKey; publicKey: CryptoKey };
  let otherRsa: { privateKey: CryptoKey; publicKey: CryptoKey };

  /** A signed token: by default HS256 with the configured secret, for sub alice, issuer and audience right, 5 minutes. */
  async function token(o: Sign = {}): Promise<string> {
    const alg = o.alg ?? 'HS256';
    const jwt = new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'alice', ...o.claims })
      .setProtectedHeader({ alg, ...(o.kid ?? (alg === 'RS256' ? 'k1' : undefined) ? { kid: o.kid ?? 'k1' } : {}) })
      .setIssuedAt();
    if (o.expiresIn !== null) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + (o.expiresIn ?? 300));
    return jwt.sign(o.key ?? (alg === 'HS256' ? enc(HS_SECRET) : rsa.privateKey));
  }

  /** Sends hello with the token on a connection without credentials: hello.ack or the error. */
  async function helloWith(t: string, url = runtime.wsUrl) {
    const client = await TestClient.connect(url);
    client.send({ type: 'hello', version: '1', auth: { token: t } });
    const answer = await client.take(5000);
    return { client, answer };
  }

  async function refusedInHello(t: string, message = 'the token is not valid') {
    const { client, answer } = await helloWith(t);
    expect(answer).toEqual({ type: 'error', code: 'auth.invalid', message });
    await expect(client.closed).resolves.toMatchObject({ code: 1000 });
  }

  beforeAll(async () => {
    rsa = await generateKeyPair('RS256', { extractable: true });
    otherRsa = await generateKeyPair('RS256', { extractable: true });
    jwks = await startJwks([{ ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }]);
    runtime = await startRuntime({ auth: { jwt: { secret: HS_SECRET, jwksUrl: jwks.url, issuer: ISSUER, audience: AUDIENCE } } });
  });
  afterAll(async () => {
    await runtime?.close();
    await jwks?.close();
  });

  it('accepts an HS256 token in hello and binds the session to jwt:<iss>|<sub>', async () => {
    const { client, answer } = await helloWith(await token());
    expect(answer).toEqual({ type: 'hello.ack', version: '1' });
    client.send({ type: 'session.start' });
    const started = await client.next('session.started');
    const meta = (await sessionItems(runtime)).find((i) => i.pk?.S === `SESS#${started.sessionId}` && i.sk?.S === 'META');
    expect(meta?.principal?.S).toBe(`jwt:${ISSUER}|alice`);
    client.close();
  });

  it('accepts an RS256 token in the query string at $connect, verified against the JWKS, which is fetched once and cached', async () => {
    for (let i = 0; i < 3; i++) {
      const client = await TestClient.connect(`${runtime.wsUrl}/?token=${await token({ alg: 'RS256', claims: { sub: `rs-${i}` } })}`);
      const { started } = await client.open();
      const meta = (await sessionItems(runtime)).find((it) => it.pk?.S === `SESS#${started.sessionId}` && it.sk?.S === 'META');
      expect(meta?.principal?.S).toBe(`jwt:${ISSUER}|rs-${i}`);
      client.close();
    }
    // These are the runtime's first RS256 tokens: one fetch served all three.
    expect(jwks.hits()).toBe(1);
  });

  it('refuses the handshake with 401 for a bad token in the query string', async () => {
    await expect(TestClient.connect(`${runtime.wsUrl}/?token=${await token({ expiresIn: -3600 })}`)).rejects.toThrow('401');
    await expect(TestClient.connect(`${runtime.wsUrl}/?token=not.a.jwt`)).rejects.toThrow('401');
    await expect(TestClient.connect(`${runtime.wsUrl}/?token=${await token({ alg: 'RS256', key: otherRsa.privateKey })}`)).rejects.toThrow('401');
  });

  it('answers auth.required to a hello with no credentials, and closes; nothing is stored', async () => {
    const before = await sessionItems(runtime);
    const client = await TestClient.connect(runtime.wsUrl);
    client.send({ type: 'hello', version: '1' });
    await expect(client.next('error')).resolves.toMatchObject({ code: 'auth.required', message: expect.stringContaining('token') });
    await expect(client.closed).resolves.toMatchObject({ code: 1000 });
    expect(await sessionItems(runtime)).toEqual(before);
  });

  it('an expired token: auth.invalid, "the token has expired"', async () => {
    await refusedInHello(await token({ expiresIn: -3600 }), 'the token has expired');
    await refusedInHello(await token({ alg: 'RS256', expiresIn: -3600 }), 'the token has expired');
  });

  it('the wrong audience or issuer: auth.invalid', async () => {
    await refusedInHello(await token({ claims: { aud: 'someone-else' } }));
    await refusedInHello(await token({ alg: 'RS256', claims: { aud: 'someone-else' } }));
    await refusedInHello(await token({ claims: { iss: 'https://evil.example.test/' } }));
  });

  it('the wrong key: auth.invalid (another HS256 secret; another RSA key, under the JWKS key id or an unknown one)', async () => {
    await refusedInHello(await token({ key: enc('another-secret-0123456789-abcdefghijkl') }));
    await refusedInHello(await token({ alg: 'RS256', key: otherRsa.privateKey }));
    await refusedInHello(await token({ alg: 'RS256', key: otherRsa.privateKey, kid: 'k2' }));
  });

  it('alg none (an unsecured JWT): auth.invalid', async () => {
    const now = Math.floor(Date.now() / 1000);
    const payload = { iss: ISSUER, aud: AUDIENCE, sub: 'mallory', iat: now, exp: now + 300 };
    await refusedInHello(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`);
    await refusedInHello(`${b64({ alg: 'none' })}.${b64(payload)}.${Buffer.from('x').toString('base64url')}`);
  });

  it('a tampered payload (another sub, the original signature): auth.invalid', async () => {
    for (const alg of ['HS256', 'RS256'] as const) {
      const [header, payload, signature] = (await token({ alg })).split('.');
      const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
      await refusedInHello(`${header}.${b64({ ...claims, sub: 'mallory' })}.${signature}`);
    }
  });

  it('algorithm confusion: an HS256 token "signed" with the RSA public key as the secret is refused', async () => {
    const pem = await exportSPKI(rsa.publicKey);
    await refusedInHello(await token({ alg: 'HS256', key: enc(pem), kid: 'k1' }));
    // A token naming an algorithm neither key is for.
    const [, payload] = (await token()).split('.');
    await refusedInHello(`${b64({ alg: 'HS512', typ: 'JWT' })}.${payload}.${Buffer.from('sig').toString('base64url')}`);
  });

  it('a token without sub or without exp: auth.invalid', async () => {
    await refusedInHello(await token({ claims: { sub: undefined } }));
    await refusedInHello(await token({ expiresIn: null }));
  });

  it('an API key is refused when only JWTs are configured', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    client.send({ type: 'hello', version: '1', auth: { apiKey: 'some-api-key-123456' } });
    await expect(client.next('error')).resolves.toMatchObject({ code: 'auth.invalid' });
    client.close();
  });

  it("the session is bound to the token's subject: another sub cannot resume it; the same sub with a new token can", async () => {
    const owner = await TestClient.connect(`${runtime.wsUrl}/?token=${await token({ claims: { sub: 'owner' } })}`);
    const { started } = await owner.open();
    owner.close();
    const resume = { type: 'session.start' as const, sessionId: started.sessionId, resumeToken: started.resumeToken };

    const other = await TestClient.connect(`${runtime.wsUrl}/?token=${await token({ claims: { sub: 'someone-else' } })}`);
    other.send({ type: 'hello', version: '1' });
    await other.next('hello.ack');
    other.send(resume);
    await expect(other.next('error')).resolves.toMatchObject({ code: 'auth.invalid' });
    other.close();

    // The same subject, through the other algorithm and a fresh token: the same principal.
    const back = await TestClient.connect(`${runtime.wsUrl}/?token=${await token({ alg: 'RS256', claims: { sub: 'owner' } })}`);
    const again = await back.open(resume);
    expect(again.started).toMatchObject({ sessionId: started.sessionId, resumed: true });
    back.close();
  });
});

describe('JWT with a JWKS only (no HS256 secret)', () => {
  let runtime: LocalRuntime;
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let rsa: { privateKey: CryptoKey; publicKey: CryptoKey };

  beforeAll(async () => {
    rsa = await generateKeyPair('RS256', { extractable: true });
    jwks = await startJwks([{ ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }]);
    runtime = await startRuntime({ auth: { jwt: { jwksUrl: jwks.url } } });
  });
  afterAll(async () => {
    await runtime?.close();
    await jwks?.close();
  });

  it('refuses any HS256 token, including one keyed with the published RSA public key (algorithm confusion)', async () => {
    const pem = await exportSPKI(rsa.publicKey);
    const jwk = JSON.stringify(await exportJWK(rsa.publicKey));
    for (const key of [pem, jwk, 'any-secret-at-all-0123456789-abcdefgh']) {
      const t = await new SignJWT({ sub: 'mallory' }).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).setExpirationTime('5m').sign(enc(key));
      await expect(TestClient.connect(`${runtime.wsUrl}/?token=${t}`)).rejects.toThrow('401');
    }
  });

  it('accepts RS256 without issuer or audience configured: principal jwt:<iss>|<sub>, a "|" in the issuer escaped', async () => {
    const t = await new SignJWT({ sub: 'bob' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuer('a|b').setExpirationTime('5m').sign(rsa.privateKey);
    const client = await TestClient.connect(`${runtime.wsUrl}/?token=${t}`);
    const { started } = await client.open();
    const meta = (await sessionItems(runtime)).find((i) => i.pk?.S === `SESS#${started.sessionId}` && i.sk?.S === 'META');
    expect(meta?.principal?.S).toBe('jwt:a%7Cb|bob');
    client.close();
  });
});

describe('JWT with an unreachable JWKS', () => {
  let runtime: LocalRuntime;
  let rsa: { privateKey: CryptoKey; publicKey: CryptoKey };

  beforeAll(async () => {
    rsa = await generateKeyPair('RS256', { extractable: true });
    // A JWKS server that is gone: the port was open a moment ago.
    const gone = await startJwks([]);
    await gone.close();
    runtime = await startRuntime({ auth: { jwt: { jwksUrl: gone.url } } });
  });
  afterAll(async () => {
    await runtime?.close();
  });

  it('is the server\'s failure, not the token\'s: server.internal in hello, nothing stored', async () => {
    const before = await sessionItems(runtime);
    const t = await new SignJWT({ sub: 'bob' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setExpirationTime('5m').sign(rsa.privateKey);
    const client = await TestClient.connect(runtime.wsUrl);
    client.send({ type: 'hello', version: '1', auth: { token: t } });
    await expect(client.next('error')).resolves.toMatchObject({ code: 'server.internal' });
    expect(await sessionItems(runtime)).toEqual(before);
    client.close();
  });
});
