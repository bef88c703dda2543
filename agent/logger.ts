import { pino, type Logger } from 'pino';

/** JSON lines on stdout (journald keeps them). Secrets are redacted by key wherever they appear. */
export function createLogger(level = process.env.DECKHAND_LOG_LEVEL ?? 'info', base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { ...base, pid: process.pid },
    redact: {
      paths: ['token', '*.token', 'secret', '*.secret', 'password', '*.password', 'authorization', '*.authorization', 'headers.authorization'],
      censor: '[redacted]',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
