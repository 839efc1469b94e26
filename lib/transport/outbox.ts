import type { ServerEvent } from '../protocol/v1';
import type { ConnectionSender } from './sender';

/**
 * The turn's events on their way to the client, in order. Events pushed back to back (within one
 * macrotask: a runner step that needed no I/O, a burst of audio) travel as one message; a send
 * never waits for the next event, so streaming stays live. Two producers (the runner and the
 * audio player) share one outbox, so their events never overtake each other.
 */
export class Outbox {
  private queue: ServerEvent[] = [];
  private scheduled = false;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly sender: ConnectionSender) {}

  push(event: ServerEvent): void {
    this.queue.push(event);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Resolves once everything pushed so far was posted (or the client is gone). */
  async drain(): Promise<void> {
    if (this.queue.length) this.flush();
    await this.chain;
  }

  private flush(): void {
    this.scheduled = false;
    if (!this.queue.length) return;
    const batch = this.queue;
    this.queue = [];
    // Sender failures are absorbed by the sender (it marks itself gone); never break the chain.
    this.chain = this.chain.then(() => this.sender.sendBatch(batch)).catch(() => undefined);
  }
}
