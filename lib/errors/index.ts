import { ErrorCode } from '../protocol/v1';

/** Codes that never reach a client as such: they describe the server's own state. */
export type InternalErrorCode =
  | 'checkpoint.invalid'
  | 'checkpoint.version_unsupported'
  | 'config.invalid'
  | 'export.invalid'
  | 'export.version_unsupported'
  | 'map.invalid'
  | 'store.unavailable'
  /** STS refused or could not be reached when issuing Transcribe access (lib/speech/stt/transcribe-access.ts). */
  | 'stt.access_failed';

export type ParleyErrorCode = ErrorCode | InternalErrorCode;

/**
 * The one error type Parley throws on purpose. Callers branch on `code`, never on the message.
 * Anything else that is thrown is a bug and reaches the client as `server.internal`.
 */
export class ParleyError extends Error {
  override readonly name = 'ParleyError';

  constructor(
    readonly code: ParleyErrorCode,
    message: string,
    readonly details: { turnId?: string; cause?: unknown; retryAfterMs?: number } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
  }

  /** Whether the code is part of the wire protocol, so the client may see this error as it is. */
  get isClientFacing(): boolean {
    return ErrorCode.safeParse(this.code).success;
  }
}

/** What the client is told about any thrown value: its own code when it has one, else server.internal. */
export function toWireError(err: unknown): { code: ErrorCode; message: string; turnId?: string; retryAfterMs?: number } {
  if (err instanceof ParleyError && err.isClientFacing) {
    return {
      code: err.code as ErrorCode,
      message: err.message,
      ...(err.details.turnId ? { turnId: err.details.turnId } : {}),
      ...(err.details.retryAfterMs !== undefined ? { retryAfterMs: err.details.retryAfterMs } : {}),
    };
  }
  const turnId = err instanceof ParleyError ? err.details.turnId : undefined;
  // The failure may come before or after the commit: a retry with the same turnId gets the stored outcome, or runs the turn.
  return { code: 'server.internal', message: 'internal error; send the same turnId again to get the turn or run it', ...(turnId ? { turnId } : {}) };
}

/** An error as one log-friendly line: its name and message (never its stack). */
export function describeError(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
