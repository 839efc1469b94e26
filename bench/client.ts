import WebSocket from 'ws';
import { EventAssembler, type ClientMessage, type ServerEvent } from '../lib/protocol/v1';

/**
 * A minimal protocol client for the benchmark: one waiter at a time, resolved by the first event
 * that matches it. An `error` or `session.ended` event while waiting fails the wait, so a script
 * that drifts off the expected path stops the benchmark instead of measuring the wrong thing.
 */
export class BenchClient {
  private readonly assembler = new EventAssembler();
  private waiter:
    | { match: (e: ServerEvent) => boolean; resolve: (e: ServerEvent) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }
    | undefined;
  /** Every event received since the last `clearSeen()`. */
  seen: ServerEvent[] = [];
  /** performance.now() when the message carrying `seen[i]` arrived (before the client parsed it). */
  seenAt: number[] = [];

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => this.onMessage(String(data)));
    socket.on('close', () => this.fail(new Error('connection closed while waiting')));
    socket.on('error', (err) => this.fail(err));
  }

  static open(url: string): Promise<BenchClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.once('open', () => resolve(new BenchClient(socket)));
      socket.once('error', reject);
    });
  }

  /** The session this client is in, named in every input.text as a well-behaved client does. */
  private sessionId: string | undefined;

  send(message: ClientMessage): void {
    const named = message.type === 'input.text' && this.sessionId ? { ...message, sessionId: this.sessionId } : message;
    this.socket.send(JSON.stringify(named));
  }

  clearSeen(): void {
    this.seen = [];
    this.seenAt = [];
  }

  /** Register before sending the message that triggers the event. */
  waitFor(match: (e: ServerEvent) => boolean, timeoutMs = 10_000): Promise<ServerEvent> {
    if (this.waiter) throw new Error('one waiter at a time');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      this.waiter = { match, resolve, reject, timer };
    });
  }

  close(): Promise<void> {
    this.waiter = undefined;
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close(1000);
    });
  }

  private onMessage(raw: string): void {
    const arrivedAt = performance.now();
    let events: ServerEvent[];
    try {
      events = this.assembler.receive(raw);
    } catch {
      return this.fail(new Error(`unexpected server message: ${raw.slice(0, 200)}`));
    }
    events.forEach((event) => this.onEvent(event, arrivedAt));
  }

  private onEvent(event: ServerEvent, arrivedAt: number): void {
    if (event.type === 'session.started') this.sessionId = event.sessionId;
    this.seen.push(event);
    this.seenAt.push(arrivedAt);
    const w = this.waiter;
    if (!w) return;
    if (event.type === 'error') return this.fail(new Error(`server error ${event.code}: ${event.message}`));
    if (event.type === 'session.ended') return this.fail(new Error('the session ended (END_CALL): the script left the loop'));
    if (w.match(event)) {
      clearTimeout(w.timer);
      this.waiter = undefined;
      w.resolve(event);
    }
  }

  private fail(err: Error): void {
    const w = this.waiter;
    if (!w) return;
    clearTimeout(w.timer);
    this.waiter = undefined;
    w.reject(err);
  }
}
