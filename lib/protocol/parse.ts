/**
 * Parsing a raw client message, server side: size, JSON and schema checks, each with its own error
 * code. Kept apart from ./v1 so the browser widget, which bundles v1 for EventAssembler, does not
 * carry it nor the error-message locale it needs.
 */
import * as z from 'zod/mini';
import { ClientMessage, LIMITS, type ErrorCode } from './v1';

// The schemas are zod/mini, which loads no error-message locale: without one every issue reads
// "Invalid input", and these messages are what a client is told in `protocol.invalid_message`.
// English, as classic zod would have it (classic only sets it when no locale is set, so this wins).
z.config(z.locales.en());

export type ParseResult =
  | { ok: true; message: ClientMessage }
  | { ok: false; code: ErrorCode; message: string; turnId?: string };

const byteLength = (s: string): number =>
  typeof Buffer !== 'undefined' ? Buffer.byteLength(s, 'utf8') : new TextEncoder().encode(s).length;

/** Size, JSON and schema checks, in that order, each with its own error code. */
export function parseClientMessage(raw: string): ParseResult {
  const size = byteLength(raw);
  if (size > LIMITS.clientMessageBytes) {
    return {
      ok: false,
      code: 'protocol.too_large',
      message: `message is ${size} bytes; the limit is ${LIMITS.clientMessageBytes}`,
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    return { ok: false, code: 'protocol.invalid_json', message: `not JSON: ${(err as Error).message}` };
  }
  const parsed = ClientMessage.safeParse(json);
  if (parsed.success) return { ok: true, message: parsed.data };
  const turnId = typeof (json as { turnId?: unknown })?.turnId === 'string' ? (json as { turnId: string }).turnId : undefined;
  return { ok: false, code: 'protocol.invalid_message', message: describeIssues(parsed.error), ...(turnId ? { turnId } : {}) };
}

function describeIssues(error: z.core.$ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
}
