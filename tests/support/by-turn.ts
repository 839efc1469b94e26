import type { ServerEvent } from '../../lib/protocol/v1';
import type { TestClient } from '../integration/harness';

/** A client's events sorted by the turn they belong to, for tests where turns overlap. */
export class ByTurn {
  private readonly buckets = new Map<string, ServerEvent[]>();
  constructor(private readonly client: TestClient) {}

  /** The turn's events up to its turn.completed or error; null if none came in time. */
  async finished(turnId: string, timeoutMs: number): Promise<ServerEvent[] | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const bucket = this.buckets.get(turnId) ?? [];
      const end = bucket.findIndex((e) => e.type === 'turn.completed' || e.type === 'error');
      if (end >= 0) return bucket.splice(0, end + 1);
      const left = deadline - Date.now();
      if (left <= 0) return null;
      let event: ServerEvent;
      try {
        event = await this.client.take(left);
      } catch {
        return null;
      }
      const id = 'turnId' in event && typeof event.turnId === 'string' ? event.turnId : '';
      this.buckets.set(id, [...(this.buckets.get(id) ?? []), event]);
    }
  }

  /** What came for the turn so far and was not taken. */
  seen(turnId: string): ServerEvent[] {
    return this.buckets.get(turnId) ?? [];
  }
}

/** How a turn's events ended: the error's code, `turn.completed`, or null for nothing. */
export const endOf = (events: readonly ServerEvent[] | null): string | null => {
  const last = events?.at(-1);
  return !last ? null : last.type === 'error' ? last.code : last.type;
};

/** Rejects with `what` when `promise` takes longer than `ms`. */
export const within = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
};
