import type { Logger } from '@aws-lambda-powertools/logger';

export type LogData = Record<string, unknown>;

/**
 * Port for structured logs. `with` binds keys (connectionId, sessionId, traceId) for the rest of an
 * invocation, so every line of a session's turn carries its trace id.
 */
export interface Log {
  debug(message: string, data?: LogData): void;
  info(message: string, data?: LogData): void;
  warn(message: string, data?: LogData): void;
  error(message: string, data?: LogData): void;
  with(keys: LogData): Log;
}

/** Adapter on Powertools for AWS Lambda's Logger: JSON lines CloudWatch can query. */
export function powertoolsLog(logger: Logger): Log {
  return {
    debug: (message, data) => (data ? logger.debug(message, data) : logger.debug(message)),
    info: (message, data) => (data ? logger.info(message, data) : logger.info(message)),
    warn: (message, data) => (data ? logger.warn(message, data) : logger.warn(message)),
    error: (message, data) => (data ? logger.error(message, data) : logger.error(message)),
    with: (keys) => powertoolsLog(logger.createChild({ persistentKeys: keys })),
  };
}

export const silentLog: Log = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  with: () => silentLog,
};

export interface LogLine extends LogData {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
}

/** Keeps lines in memory: for tests that assert what was logged. */
export function memoryLog(lines: LogLine[] = [], keys: LogData = {}): Log & { lines: LogLine[] } {
  const write = (level: LogLine['level']) => (message: string, data?: LogData) =>
    void lines.push({ ...keys, ...data, level, message });
  return {
    lines,
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    with: (more) => memoryLog(lines, { ...keys, ...more }),
  };
}
