import { trace } from '@opentelemetry/api';
import { pino, type Logger } from 'pino';
import { currentContext } from './context.ts';

export type { Logger };

/**
 * JSON logger (pino) for one service. Each line carries `service`, and when known the trace id,
 * span id, request id and organization id; `authorization`, tokens, passwords and secrets are
 * redacted wherever they appear at the first two levels.
 */
export function createLogger(service: string, level: string = process.env['LOG_LEVEL'] ?? 'info'): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: [
        'authorization',
        '*.authorization',
        'token',
        '*.token',
        'password',
        '*.password',
        'secret',
        '*.secret',
        'headers.authorization',
        'req.headers.authorization',
      ],
      censor: '[redacted]',
    },
    mixin() {
      const span = trace.getActiveSpan()?.spanContext();
      const ctx = currentContext();
      return {
        ...(span ? { traceId: span.traceId, spanId: span.spanId } : {}),
        ...(ctx ? { requestId: ctx.requestId, organizationId: ctx.organizationId } : {}),
      };
    },
  });
}
