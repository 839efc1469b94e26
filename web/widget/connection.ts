import { EventAssembler, PROTOCOL_VERSION, type ClientMessage, type ServerEvent, type SpeechInputRequest } from '../../lib/protocol/v1';
import type { AudioFormat } from '../../lib/speech/format';
import { STALE_SESSION_CODES } from './friendly';
import type { SessionStore } from './session-store';

/*
 * The widget's WebSocket: hello, session.start (resuming the saved session, with its history), and
 * reconnecting whenever the socket drops (API Gateway closes idle connections after 10 minutes
 * and every connection after 2 hours), with backoff. Everything else is the controller's.
 */

export type ConnectionState =
  /** Opening the socket or waiting for session.started. */
  | 'connecting'
  /** A session is running on this socket. */
  | 'ready'
  /** Dropped; a retry is scheduled. */
  | 'offline'
  /** Refused for good (bad credentials, an unsupported version): no retries. */
  | 'failed';

export interface ConnectionOptions {
  endpoint: string;
  auth: { apiKey?: string; token?: string } | undefined;
  store: SessionStore;
  /** The audio to ask for in the next session.start (null: text only). */
  audio: () => AudioFormat | null;
  /** The voice input to ask for in the next session.start (null: typed input only). */
  speechInput?: () => SpeechInputRequest | null;
  metadata?: Record<string, string | number | boolean>;
  onEvent: (event: ServerEvent) => void;
  onState: (state: ConnectionState, detail?: { code: string; message: string }) => void;
  /** Tests pass a fake. */
  WebSocket?: typeof WebSocket;
}

const BACKOFF_MS = [500, 1000, 2000, 5000, 10_000, 30_000];

export class Connection {
  private socket: WebSocket | null = null;
  private phase: 'hello' | 'starting' | 'ready' = 'hello';
  private attempt = 0;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** The next session.start begins a new session even if one is saved. */
  private fresh = false;

  constructor(private readonly options: ConnectionOptions) {}

  get state(): 'ready' | 'other' {
    return this.phase === 'ready' && this.socket?.readyState === 1 ? 'ready' : 'other';
  }

  open(): void {
    this.closed = false;
    this.connect();
  }

  /** Sends when a session runs; false when the message could not go (the caller tells the user). */
  send(message: ClientMessage): boolean {
    if (this.state !== 'ready') return false;
    this.socket!.send(JSON.stringify(message));
    return true;
  }

  /** A new socket that resumes the session: session.start carries the current audio choice. */
  reconnect(): void {
    this.drop();
    this.connect();
  }

  /** Ends the current session (session.stop) and starts a new one; a new socket when there is none. */
  startOver(): void {
    this.forget();
    if (this.state === 'ready') this.socket!.send(JSON.stringify({ type: 'session.stop', reason: 'user_restart' } satisfies ClientMessage));
    else this.reconnect();
  }

  /** The saved session is done with (ended, stale, or restarted): a reload, and the next session.start, begin a new one. */
  private forget(): void {
    this.options.store.clear();
    this.fresh = true;
  }

  /** Starts the next session (after the last one ended): on this socket when it is open. */
  startNew(): void {
    this.fresh = true;
    if (this.socket?.readyState === 1 && this.phase === 'ready') this.start();
    else this.reconnect();
  }

  close(): void {
    this.closed = true;
    this.drop();
  }

  /** Try again now (the network came back, the page became visible). */
  wake(): void {
    if (this.closed || this.socket) return;
    clearTimeout(this.retry);
    this.connect();
  }

  private connect(): void {
    clearTimeout(this.retry);
    const WS = this.options.WebSocket ?? WebSocket;
    const assembler = new EventAssembler();
    const ws = new WS(this.options.endpoint);
    this.socket = ws;
    this.phase = 'hello';
    this.options.onState('connecting');
    ws.onopen = () => {
      const auth = this.options.auth;
      ws.send(JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION, ...(auth ? { auth } : {}) } satisfies ClientMessage));
    };
    ws.onmessage = (message) => {
      if (ws !== this.socket) return;
      let events: ServerEvent[];
      try {
        events = assembler.receive(String(message.data));
      } catch {
        return; // from a newer server: skip it rather than break the widget
      }
      for (const event of events) this.receive(event);
    };
    ws.onclose = () => {
      if (ws !== this.socket) return;
      this.socket = null;
      if (this.closed) return;
      const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)]!;
      this.attempt += 1;
      this.options.onState('offline');
      // Jitter, so a server restart is not met by every widget at the same instant.
      this.retry = setTimeout(() => this.connect(), delay * (0.75 + Math.random() / 2));
    };
  }

  private receive(event: ServerEvent): void {
    if (event.type === 'hello.ack') {
      this.start();
      return;
    }
    if (event.type === 'session.started') {
      this.phase = 'ready';
      this.attempt = 0;
      this.fresh = false;
      this.options.store.save({ sessionId: event.sessionId, resumeToken: event.resumeToken });
      this.options.onState('ready');
    } else if (event.type === 'session.stopped') {
      // Our startOver: the old session is stopped, the new one starts on this socket.
      this.start();
    } else if (event.type === 'session.ended') {
      this.forget();
    } else if (event.type === 'error' && this.phase === 'hello' && refusedAtHello(event.code)) {
      // Refused at hello: the credentials or the version are wrong, and retrying will not fix them.
      this.closed = true;
      this.options.onState('failed', { code: event.code, message: event.message });
      this.drop();
      return;
    } else if (event.type === 'error' && this.phase === 'starting' && STALE_SESSION_CODES.has(event.code)) {
      // The saved session is gone, ended or not ours: a new one, not a dead end.
      this.forget();
      this.start();
      return;
    }
    this.options.onEvent(event);
  }

  private start(): void {
    const saved = this.fresh ? null : this.options.store.load();
    const audio = this.options.audio();
    const speechInput = this.options.speechInput?.() ?? null;
    const metadata = this.options.metadata;
    this.phase = 'starting';
    this.socket?.send(
      JSON.stringify({
        type: 'session.start',
        ...(saved ? { sessionId: saved.sessionId, resumeToken: saved.resumeToken, history: true } : {}),
        ...(audio ? { audio } : {}),
        ...(speechInput ? { speechInput } : {}),
        ...(metadata && !saved ? { metadata } : {}),
      } satisfies ClientMessage),
    );
  }

  private drop(): void {
    clearTimeout(this.retry);
    const ws = this.socket;
    this.socket = null;
    ws?.close();
  }
}

/** Wrong credentials or an unsupported version: no retry can fix them. */
const refusedAtHello = (code: string): boolean => code.startsWith('auth.') || code === 'protocol.version_unsupported';
