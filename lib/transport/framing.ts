import { LIMITS, type ServerEvent } from '../protocol/v1';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/**
 * Turns one event into the payloads to post, each at most `limit` bytes. Text deltas split into
 * smaller deltas (the client needs no extra logic); any other oversized event travels as
 * `event.part` pieces the client joins (EventAssembler in the protocol module).
 */
export function frameEvent(event: ServerEvent, newId: () => string, limit: number = LIMITS.serverMessageBytes): string[] {
  const json = JSON.stringify(event);
  if (bytes(json) <= limit) return [json];
  if (event.type === 'response.text.delta') {
    const overhead = bytes(JSON.stringify({ ...event, text: '' }));
    return splitToFit(event.text, limit - overhead, (text) => JSON.stringify({ ...event, text }));
  }
  const id = newId();
  const overhead = bytes(JSON.stringify({ type: 'event.part', id, index: 999_999, count: 999_999, data: '' }));
  const pieces = splitToFit(json, limit - overhead, (data) => data);
  return pieces.map((data, index) => JSON.stringify({ type: 'event.part', id, index, count: pieces.length, data }));
}

/**
 * Packs events into as few payloads as fit `limit`: consecutive events share a JSON array, an event
 * alone travels as itself, and an event too large for any payload is framed on its own.
 */
export function packEvents(events: readonly ServerEvent[], newId: () => string, limit: number = LIMITS.serverMessageBytes): string[] {
  const payloads: string[] = [];
  let batch: string[] = [];
  let batchBytes = 2; // the brackets
  const flush = () => {
    if (batch.length === 1) payloads.push(batch[0]!);
    else if (batch.length > 1) payloads.push(`[${batch.join(',')}]`);
    batch = [];
    batchBytes = 2;
  };
  for (const event of events) {
    // limit - 2: any single payload still fits between the brackets of a batch.
    for (const payload of frameEvent(event, newId, limit - 2)) {
      if (batch.length && batchBytes + 1 + bytes(payload) > limit) flush();
      batchBytes += (batch.length ? 1 : 0) + bytes(payload);
      batch.push(payload);
    }
  }
  flush();
  return payloads;
}

/**
 * Cuts `text` into pieces whose JSON-escaped form fits `budget` bytes, never inside a code point.
 * Only oversized events get here, so clarity beats speed.
 */
function splitToFit(text: string, budget: number, render: (piece: string) => string): string[] {
  if (budget < 16) throw new Error(`frame budget ${budget} is too small`);
  const out: string[] = [];
  const chars = Array.from(text);
  let start = 0;
  while (start < chars.length) {
    let size = 0;
    let end = start;
    while (end < chars.length) {
      // Escaped size of one code point: quotes, backslashes and controls grow when JSON-encoded.
      const c = chars[end]!;
      const cost = bytes(JSON.stringify(c)) - 2;
      if (size + cost > budget) break;
      size += cost;
      end += 1;
    }
    out.push(render(chars.slice(start, end).join('')));
    start = end;
  }
  return out;
}
