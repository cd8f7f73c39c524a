import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { context, propagation, trace } from '@opentelemetry/api';
import { node, tracing } from '@opentelemetry/sdk-node';
import { runWithContext } from './context.ts';
import { createLogger, REDACTED, traceFields } from './logger.ts';

/** A logger of service `test` whose lines are collected, parsed. */
function capturedLogger(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('test', 'info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

describe('log lines', () => {
  // the real SDK in-process (AsyncLocalStorage context manager), spans kept in memory
  const exporter = new tracing.InMemorySpanExporter();
  const provider = new node.NodeTracerProvider({ spanProcessors: [new tracing.SimpleSpanProcessor(exporter)] });
  beforeAll(() => provider.register());
  afterAll(async () => {
    await provider.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
  });

  it('carry the trace_id, span_id and trace_flags of the active span', async () => {
    const { logger, lines } = capturedLogger();
    const span = await provider.getTracer('test').startActiveSpan('work', async (active) => {
      await Promise.resolve(); // across an await, still inside the span
      logger.info('inside');
      active.end();
      return active;
    });
    const { traceId, spanId } = span.spanContext();
    expect(lines[0]).toMatchObject({ msg: 'inside', service: 'test', trace_id: traceId, span_id: spanId, trace_flags: '01' });
    expect(exporter.getFinishedSpans().map((s) => s.spanContext().spanId)).toContain(spanId);
  });

  it('carry no trace fields outside a span', () => {
    const { logger, lines } = capturedLogger();
    logger.info('outside');
    expect(lines[0]).not.toHaveProperty('trace_id');
    expect(lines[0]).not.toHaveProperty('span_id');
    expect(traceFields()).toEqual({});
  });

  it('carry the request id and organization id inside a request context', () => {
    const { logger, lines } = capturedLogger();
    runWithContext({ organizationId: 'org-1', userId: 'user-1', roles: ['crm-rep'], requestId: 'req-1' }, () => logger.info('in a request'));
    expect(lines[0]).toMatchObject({ requestId: 'req-1', organizationId: 'org-1' });
  });

  it('never carry tokens, passwords, NATS credentials, internal token keys or connection strings', () => {
    const { logger, lines } = capturedLogger();
    const secrets = {
      authorization: 'Bearer top-level-token',
      req: { headers: { authorization: 'Bearer header-token', cookie: 'session=abc', 'x-request-id': 'r-1' } },
      nats: { user: 'contacts-svc', pass: 'nats-pass' },
      config: { NATS_PASSWORD: 'nats-password', INTERNAL_TOKEN_PRIVATE_KEY: 'pem-private-key', DATABASE_URL: 'postgres://u:db-pass@h/crm' },
      err: Object.assign(new Error('refused'), { config: { headers: { authorization: 'Bearer deep-token' } }, password: 'err-pass' }),
      token: 'raw-token',
      grant: { access_token: 'at', refresh_token: 'rt', client_secret: 'cs' },
    };
    logger.warn(secrets, 'with secrets');
    const line = JSON.stringify(lines[0]);
    for (const secret of [
      'top-level-token',
      'header-token',
      'session=abc',
      'nats-pass',
      'nats-password',
      'pem-private-key',
      'db-pass',
      'deep-token',
      'err-pass',
      'raw-token',
      '"at"',
      '"rt"',
      '"cs"',
    ]) {
      expect(line).not.toContain(secret);
    }
    expect(lines[0]).toMatchObject({
      authorization: REDACTED,
      req: { headers: { authorization: REDACTED, cookie: REDACTED, 'x-request-id': 'r-1' } },
      nats: { user: 'contacts-svc', pass: REDACTED },
      err: { message: 'refused', config: { headers: { authorization: REDACTED } } },
    });
  });
});
