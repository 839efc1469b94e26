import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashResumeToken, RESUME_TOKEN_HMAC, resumeTokenFor } from '../../lib/session/auth';
import { localResumeSecret, RESUME_SECRET_FILE } from '../../local/resume-secret';
import type { LocalRuntime } from '../../local/runtime';
import { sessionItems, startRuntime, TestClient } from './harness';

const SECRET = 'resume-secret-for-tests-0123456789abcdef';

/** A client that said hello and asks to resume: the one event it gets back. */
async function resumeWith(runtime: LocalRuntime, sessionId: string, resumeToken: string) {
  const client = await TestClient.connect(runtime.wsUrl);
  client.send({ type: 'hello', version: '1' });
  await client.next('hello.ack');
  client.send({ type: 'session.start', sessionId, resumeToken });
  const answer = await client.take(5000);
  client.close();
  return answer;
}

describe('resume tokens are HMAC-SHA256(secret, session id)', () => {
  let runtime: LocalRuntime;
  beforeAll(async () => {
    runtime = await startRuntime({ auth: { resumeSecret: SECRET } });
  });
  afterAll(async () => {
    await runtime?.close();
  });

  it('session.started carries the HMAC of the id; META stores no token and no hash of it', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    client.close();
    expect(started.resumeToken).toBe(resumeTokenFor(SECRET, started.sessionId));
    expect(started.resumeToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const items = await sessionItems(runtime);
    const meta = items.find((i) => i.pk?.S === `SESS#${started.sessionId}` && i.sk?.S === 'META');
    expect(meta?.resumeTokenHash?.S).toBe(RESUME_TOKEN_HMAC);
    const stored = JSON.stringify(items);
    expect(stored).not.toContain(started.resumeToken);
    expect(stored).not.toContain(hashResumeToken(started.resumeToken));
    expect(stored).not.toContain(SECRET);

    // It resumes, and the resumed session.started hands back the same token.
    const answer = await resumeWith(runtime, started.sessionId, started.resumeToken);
    expect(answer).toMatchObject({ type: 'session.started', sessionId: started.sessionId, resumed: true, resumeToken: started.resumeToken });
  });

  it('a token made with another secret does not resume', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    client.close();
    const forged = resumeTokenFor('some-other-secret-0123456789-abcdefgh', started.sessionId);
    expect(await resumeWith(runtime, started.sessionId, forged)).toMatchObject({ type: 'error', code: 'auth.invalid' });
  });

  it("an issued token whose session is gone is told session.not_found; anyone else's guess is auth.invalid", async () => {
    const id = randomUUID();
    expect(await resumeWith(runtime, id, resumeTokenFor(SECRET, id))).toMatchObject({ type: 'error', code: 'session.not_found' });
    expect(await resumeWith(runtime, id, randomBytes(32).toString('base64url'))).toMatchObject({
      type: 'error',
      code: 'auth.invalid',
      message: 'the resume token does not match this session',
    });
  });

  it('a session from before HMAC tokens (META holds the SHA-256 of a random token) still resumes with its old token', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    client.close();
    // As an older Parley wrote it: a random token, stored hashed.
    const legacy = randomBytes(24).toString('base64url');
    await runtime.dynamo.client.send(
      new UpdateItemCommand({
        TableName: runtime.tableName,
        Key: { pk: { S: `SESS#${started.sessionId}` }, sk: { S: 'META' } },
        UpdateExpression: 'SET resumeTokenHash = :h',
        ExpressionAttributeValues: { ':h': { S: hashResumeToken(legacy) } },
      }),
    );
    const answer = await resumeWith(runtime, started.sessionId, legacy);
    // Resumed, and handed the HMAC token from now on; both keep working.
    expect(answer).toMatchObject({ type: 'session.started', sessionId: started.sessionId, resumed: true, resumeToken: resumeTokenFor(SECRET, started.sessionId) });
    expect(await resumeWith(runtime, started.sessionId, resumeTokenFor(SECRET, started.sessionId))).toMatchObject({ type: 'session.started', resumed: true });
    expect(await resumeWith(runtime, started.sessionId, legacy)).toMatchObject({ type: 'session.started', resumed: true });
    expect(await resumeWith(runtime, started.sessionId, legacy.slice(1) + 'x')).toMatchObject({ type: 'error', code: 'auth.invalid' });
  });
});

describe('the local runtime keeps its resume secret in the data folder', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const dataDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'parley-resume-'));
    dirs.push(d);
    return d;
  };

  it('makes it once (owner-only file) and reads the same one back', () => {
    const dir = dataDir();
    const secret = localResumeSecret(dir);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(localResumeSecret(dir)).toBe(secret);
    expect(readFileSync(join(dir, RESUME_SECRET_FILE), 'utf8').trim()).toBe(secret);
    expect(statSync(join(dir, RESUME_SECRET_FILE)).mode & 0o777).toBe(0o600);
    expect(localResumeSecret(dataDir())).not.toBe(secret);
  });

  it('so a session resumes after a restart on the same folder, and not with another folder\'s secret', async () => {
    const dir = dataDir();
    let runtime = await startRuntime({ dataDir: dir, auth: { resumeSecret: localResumeSecret(dir) } });
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    client.close();
    await runtime.close();

    runtime = await startRuntime({ dataDir: dir, auth: { resumeSecret: localResumeSecret(dir) } });
    try {
      expect(await resumeWith(runtime, started.sessionId, started.resumeToken)).toMatchObject({ type: 'session.started', sessionId: started.sessionId, resumed: true });
    } finally {
      await runtime.close();
    }
    // The same data under a new secret (a rotated one): every old token is refused.
    runtime = await startRuntime({ dataDir: dir, auth: { resumeSecret: localResumeSecret(dataDir()) } });
    try {
      expect(await resumeWith(runtime, started.sessionId, started.resumeToken)).toMatchObject({ type: 'error', code: 'auth.invalid' });
    } finally {
      await runtime.close();
    }
  });
});
