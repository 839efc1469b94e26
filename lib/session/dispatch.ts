/* One client message: parsing, protocol order on the connection, hello, session start and stop. */
import { traceIdFor } from '../checkpoint/trace';
import { meteredDeps } from '../cost/turn';
import { inSessionTrace } from '../observability/tracing';
import { ParleyError, toWireError } from '../errors';
import { parseClientMessage } from '../protocol/parse';
import { PROTOCOL_VERSION, type ClientMessage, type ServerEvent, type SpeechInput, type SpeechInputRequest } from '../protocol/v1';
import type { AudioFormat } from '../speech/format';
import { RESUME_TOKEN_HMAC, resumeTokenMatches } from './auth';
import type { ConnectionRecord } from './connections';
import { describe, headOf, leaseTiming, sessionLog, type Ctx, type Inbound, type TurnDeps } from './context';
import { executeTurn } from './execute-turn';
import { cancelTurn } from './interrupt';
import { enforceRate } from './limits';
import { resendMissed, textTurn } from './text-turn';
import { takeLease } from './turn-lease';
import { preparePartial } from './early-work';
import { commitUtterance, liveSpeech, negotiateSpeechInput, renewAccess, speechAccess, speechInputOf, speechLanguage, sttUnavailable, storeAudioChunk } from './speech-input';

export type { Inbound, SpeechDeps, SttDeps, TurnDeps } from './context';

/**
 * Handles one client message: parse, check the protocol order stored on the connection, act, reply.
 * Every failure becomes a typed `error` event; nothing is committed for a message that fails.
 */
export async function handleClientMessage(deps: TurnDeps, inbound: Inbound): Promise<void> {
  // This message's DynamoDB units are metered apart from every other message's (its turn's cost ledger).
  deps = meteredDeps(deps);
  const log = deps.log.with({ connectionId: inbound.connectionId });
  const parsed = parseClientMessage(inbound.body);
  if (!parsed.ok) {
    log.info('rejected message', { code: parsed.code });
    await inbound.sender.send({ type: 'error', code: parsed.code, message: parsed.message, ...(parsed.turnId ? { turnId: parsed.turnId } : {}) });
    return;
  }
  const message = parsed.message;
  try {
    // Both reads at once when the client names its session: one DynamoDB round trip less per turn.
    const named = message.type === 'input.text' || message.type === 'input.partial' || message.type === 'input.audio.commit' ? message.sessionId : undefined;
    const head = named ? deps.store.loadHead(named) : undefined;
    head?.catch(() => undefined); // awaited (and its error surfaced) only when it is used
    // The rate bucket is keyed by the connection id API Gateway gives, so it is taken while the
    // connection is read rather than after: no round trip of its own on every message.
    const rate = enforceRate(deps, inbound.connectionId, undefined, message.type === 'input.audio' ? AUDIO_CHUNK_WEIGHT : 1);
    rate.catch(() => undefined); // awaited below, once the connection is known to exist
    const connection = await deps.connections.get(inbound.connectionId);
    if (!connection) {
      // $connect always writes the record first; without it the connection is already gone.
      log.warn('message for an unknown connection', { type: message.type });
      return;
    }
    await rate; // rate.limited: nothing below runs
    const ctx: Ctx = {
      ...inbound,
      deps,
      connection,
      log: sessionLog(log, connection.sessionId),
      ...(named && head ? { preloaded: { sessionId: named, head } } : {}),
    };
    // Once the connection names its session, everything the message does is in that session's trace.
    await inSessionTrace(connection.sessionId, () => dispatch(ctx, message));
  } catch (err) {
    // The client correlates a failed turn by its turnId, whichever layer failed.
    const turnId = 'turnId' in message ? message.turnId : undefined;
    const wire = { ...(turnId ? { turnId } : {}), ...toWireError(err) };
    if (wire.code === 'server.internal') log.error('message failed', { type: message.type, turnId, error: describe(err) });
    else log.info('message refused', { type: message.type, turnId, code: wire.code });
    await inbound.sender.send({ type: 'error', ...wire });
  }
}

async function dispatch(ctx: Ctx, message: ClientMessage): Promise<void> {
  if (message.type === 'hello') return hello(ctx, message);
  if (ctx.connection.phase === 'open') throw new ParleyError('protocol.order', `send hello before ${message.type}`);
  if (message.type === 'session.start') return startSession(ctx, message);
  if (ctx.connection.phase !== 'active' || !ctx.connection.sessionId) {
    throw new ParleyError('protocol.order', `send session.start before ${message.type}`);
  }
  const sessionId = ctx.connection.sessionId;
  switch (message.type) {
    case 'input.text':
      if (message.source === 'speech') speechInputOf(ctx, message.turnId);
      return textTurn(ctx, sessionId, message, message.source === 'speech' ? liveSpeech(message.speech) : undefined);
    case 'input.partial':
      return partial(ctx, sessionId, message);
    case 'input.audio':
      return storeAudioChunk(ctx, sessionId, message);
    case 'input.audio.commit':
      return commitUtterance(ctx, sessionId, message);
    case 'speech.renew':
      return renewAccess(ctx, sessionId);
    case 'response.cancel':
      return cancelTurn(ctx, sessionId, message.turnId, message.playedMs);
    case 'session.stop':
      return stopSession(ctx, sessionId, message.reason ?? 'client_requested');
  }
}

async function hello(ctx: Ctx, message: Extract<ClientMessage, { type: 'hello' }>): Promise<void> {
  const { connection, deps, sender } = ctx;
  if (connection.phase !== 'open') throw new ParleyError('protocol.order', 'hello was already received');
  if (message.version !== PROTOCOL_VERSION) {
    await sender.send({
      type: 'error',
      code: 'protocol.version_unsupported',
      message: `protocol version '${message.version}' is not supported; this server speaks '${PROTOCOL_VERSION}'`,
    });
    return sender.close();
  }
  let principal = connection.principal;
  if (principal === null) {
    const auth = await deps.auth.authenticate(message.auth);
    if (!auth.ok) {
      await sender.send({ type: 'error', code: auth.code, message: auth.message });
      return sender.close();
    }
    principal = auth.principal;
  }
  await updateConnection(ctx, { ...connection, phase: 'ready', principal });
  await sender.send({ type: 'hello.ack', version: PROTOCOL_VERSION });
}

async function startSession(ctx: Ctx, message: Extract<ClientMessage, { type: 'session.start' }>): Promise<void> {
  const { connection, deps, sender } = ctx;
  if (connection.phase === 'active' && !(await boundSessionEnded(ctx))) {
    throw new ParleyError('protocol.order', 'a session is already running on this connection; send session.stop first');
  }
  const principal = connection.principal ?? 'public';

  if (message.sessionId && message.resumeToken) {
    // The token is HMAC(secret, session id): whether it is the one issued for this id needs no read.
    const [issued, meta] = await Promise.all([deps.auth.resumeTokenIssued(message.sessionId, message.resumeToken), deps.store.getSession(message.sessionId)]);
    // One answer for a wrong token, an unknown id and someone else's session: none reveals whether the
    // session exists. Only the holder of the issued token learns that its session is gone.
    const refused = new ParleyError('auth.invalid', 'the resume token does not match this session');
    if (!meta) throw issued ? new ParleyError('session.not_found', `no session ${message.sessionId}`) : refused;
    // Sessions from before HMAC tokens keep the SHA-256 of a random token in META: either token resumes them.
    if (!(issued || resumeTokenMatches(message.resumeToken, meta.resumeTokenHash)) || meta.principal !== principal) throw refused;
    const head = await deps.store.loadHead(meta.sessionId);
    if (head?.checkpoint.ended) throw new ParleyError('session.ended', 'this session has ended; start a new one');
    const audio = negotiateAudio(deps, message.audio);
    const speech = openSpeechInput(ctx, meta.sessionId, message.speechInput, speechLanguage(deps, meta.metadata, head?.checkpoint.language ?? undefined));
    await updateConnection(ctx, { ...withoutMedia(connection), phase: 'active', sessionId: meta.sessionId, ...(audio ? { audio } : {}), ...(speech.input ? { speechInput: speech.input } : {}) });
    sessionLog(ctx.log, meta.sessionId).info('session resumed', { seq: head?.seq ?? null });
    await sender.sendBatch([
      {
        type: 'session.started',
        sessionId: meta.sessionId,
        resumeToken: await deps.auth.resumeToken(meta.sessionId),
        traceId: traceIdFor(meta.sessionId),
        resumed: true,
        node: head?.checkpoint.currentNode ?? deps.map.initial_state,
        audio,
        ...(message.speechInput ? { speechInput: speech.input } : {}),
      },
      ...(await speech.events),
    ]);
    await resendMissed(ctx, meta.sessionId, { lastTurnId: message.lastTurnId, history: message.history }, head);
    return;
  }

  const sessionId = deps.ids.uuid();
  const resumeToken = await deps.auth.resumeToken(sessionId);
  await deps.store.createSession({
    sessionId,
    // Nothing to store: the token is derived from the id, and only the server holds the secret.
    resumeTokenHash: RESUME_TOKEN_HMAC,
    principal,
    createdAt: new Date(deps.clock.nowMs()).toISOString(),
    metadata: message.metadata ?? {},
  });
  const audio = negotiateAudio(deps, message.audio);
  const speech = openSpeechInput(ctx, sessionId, message.speechInput, speechLanguage(deps, message.metadata, undefined));
  await updateConnection(ctx, { ...withoutMedia(connection), phase: 'active', sessionId, ...(audio ? { audio } : {}), ...(speech.input ? { speechInput: speech.input } : {}) });
  const log = sessionLog(ctx.log, sessionId);
  log.info('session started', { speechInput: speech.input?.mode ?? (message.speechInput ? 'unavailable' : 'off') });
  await sender.sendBatch([
    {
      type: 'session.started',
      sessionId,
      resumeToken,
      traceId: traceIdFor(sessionId),
      resumed: false,
      node: deps.map.initial_state,
      audio,
      ...(message.speechInput ? { speechInput: speech.input } : {}),
    },
    ...(await speech.events),
  ]);
  // The greeting is turn 0: it is committed like any turn, so the session's first checkpoint exists.
  const greeting = deps.ids.uuid();
  await takeLease(deps.store, sessionId, { at: deps.clock.nowMs(), turnId: greeting }, deps.clock, leaseTiming(deps));
  await executeTurn({ ...ctx, log }, sessionId, undefined, greeting, { kind: 'start', ...(message.metadata ? { metadata: message.metadata } : {}) });
}

async function stopSession(ctx: Ctx, sessionId: string, reason: string): Promise<void> {
  const { deps } = ctx;
  const turnId = deps.ids.uuid();
  // A stop supersedes a running turn like any newer input; then the stop record ends the chain.
  await takeLease(deps.store, sessionId, { at: deps.clock.nowMs(), turnId }, deps.clock, leaseTiming(deps));
  const head = await deps.store.loadHead(sessionId);
  if (!head?.checkpoint.ended) await executeTurn(ctx, sessionId, head, turnId, { kind: 'stop', reason });
  else await deps.store.endTurn(sessionId, turnId);
  await updateConnection(ctx, { ...withoutMedia(ctx.connection), phase: 'ready', sessionId: undefined });
  ctx.log.info('session stopped', { reason });
  await ctx.sender.send({ type: 'session.stopped', reason });
}

/**
 * The audio a session gets: what it asked for when the synthesizer makes it, else PCM at the asked
 * rate (or 16 kHz); null without speech, or when the client asked for none.
 */
function negotiateAudio(deps: TurnDeps, asked: AudioFormat | undefined): AudioFormat | null {
  const synthesizer = deps.speech?.synthesizer;
  if (!asked || !deps.speech) return null;
  if (!synthesizer || synthesizer.supports(asked)) return asked;
  const pcm: AudioFormat = { format: 'pcm', sampleRate: asked.sampleRate };
  return synthesizer.supports(pcm) ? pcm : { format: 'pcm', sampleRate: 16000 };
}

/** A connection's record without what its last session negotiated (audio out, speech in). */
const withoutMedia = (record: ConnectionRecord): ConnectionRecord => {
  const { audio: _audio, speechInput: _speechInput, ...rest } = record;
  return rest;
};

/**
 * Voice input for a session being (re)started: what it gets, and the events that follow
 * session.started (`speech.access` for live transcription, or `stt.unavailable`). The access is
 * issued while the session is set up, not after it.
 */
function openSpeechInput(ctx: Ctx, sessionId: string, asked: SpeechInputRequest | undefined, language: string): { input: SpeechInput | null; events: Promise<ServerEvent[]> } {
  if (!asked) return { input: null, events: Promise.resolve([]) };
  const input = negotiateSpeechInput(ctx.deps, asked, language);
  if (!input) return { input, events: Promise.resolve([sttUnavailable()]) };
  if (input.mode !== 'transcribe') return { input, events: Promise.resolve([]) };
  const events = speechAccess(ctx, sessionId, input).then(
    (access) => [access],
    (err: unknown) => [{ type: 'error' as const, ...toWireError(err) }],
  );
  return { input, events };
}

/** A partial transcript: early work on the session's head (nothing stored, nothing sent). */
async function partial(ctx: Ctx, sessionId: string, message: Extract<ClientMessage, { type: 'input.partial' }>): Promise<void> {
  speechInputOf(ctx, message.turnId);
  await preparePartial(ctx, sessionId, message.turnId, message.text, await headOf(ctx, sessionId));
}

/** Rate tokens an `input.audio` chunk takes: a 30 s utterance (about 92 chunks) costs as much as a dozen messages. */
const AUDIO_CHUNK_WEIGHT = 1 / 8;

/** After END_CALL the connection stays bound to the ended session until a new one starts. */
async function boundSessionEnded(ctx: Ctx): Promise<boolean> {
  const sessionId = ctx.connection.sessionId;
  if (!sessionId) return true;
  const head = await ctx.deps.store.loadHead(sessionId);
  return head?.checkpoint.ended === true;
}

async function updateConnection(ctx: Ctx, record: ConnectionRecord): Promise<void> {
  const stillThere = await ctx.deps.connections.update(record);
  if (!stillThere) ctx.log.info('connection closed while its message was handled');
  ctx.connection = record;
}
