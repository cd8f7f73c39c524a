import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';

/** Tracer of the platform's own spans (outbox publish, event processing). */
export const platformTracer = (): ReturnType<typeof trace.getTracer> => trace.getTracer('crm-platform');

/**
 * Runs `fn` with tracing suppressed: nothing it does (queries, calls) makes a span, not even a
 * root span. For background work that runs whether or not anything happens — the outbox relay's
 * polling and LISTEN, readiness checks — so that an idle process exports no traces.
 */
export function untraced<T>(fn: () => T): T {
  return context.with(suppressTracing(context.active()), fn);
}

/** The outbox event a relay publishes: its id (= JetStream `Nats-Msg-Id`), subject, stored headers and body size. */
export interface OutboxEventToPublish {
  id: string;
  subject: string;
  /** The headers stored with the event: CloudEvents, organization-id and the W3C `traceparent` of the write. */
  headers: Readonly<Record<string, string>>;
  /** Size of the payload in bytes. */
  bodySize: number;
}

/**
 * Publishes one outbox event as a PRODUCER span `publish <subject>` (OpenTelemetry messaging
 * conventions: `messaging.system` nats, the subject as destination, the event id as message id)
 * that continues the trace of the write that stored it (its `traceparent` header), however much
 * later and wherever the relay runs. `publish` gets the headers to send: the stored ones with
 * `traceparent` (and `tracestate`) now naming this span, so the consumer's processing is its
 * child. A rejection marks the span failed and is rethrown. The span is created even inside
 * {@link untraced} work (its parent is the stored context, not the active one); with the SDK off it
 * is a no-op and the stored headers go out unchanged.
 */
export async function publishTraced<T>(event: OutboxEventToPublish, publish: (headers: Record<string, string>) => Promise<T>): Promise<T> {
  const parent = propagation.extract(ROOT_CONTEXT, event.headers);
  const attributes: Attributes = {
    'messaging.system': 'nats',
    'messaging.operation.type': 'send',
    'messaging.operation.name': 'publish',
    'messaging.destination.name': event.subject,
    'messaging.message.id': event.id,
    'messaging.message.body.size': event.bodySize,
    ...(event.headers['ce-type'] ? { 'cloudevents.event_type': event.headers['ce-type'] } : {}),
    ...(event.headers['ce-source'] ? { 'cloudevents.event_source': event.headers['ce-source'] } : {}),
  };
  const span = platformTracer().startSpan(`publish ${event.subject}`, { kind: SpanKind.PRODUCER, attributes }, parent);
  const headers: Record<string, string> = { ...event.headers };
  propagation.inject(trace.setSpan(parent, span), headers);
  try {
    const result = await publish(headers);
    span.setStatus({ code: SpanStatusCode.OK });
    return result;
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    throw err;
  } finally {
    span.end();
  }
}

/**
 * Attributes of a consumer's CONSUMER span `process <subject>` (messaging conventions): NATS, the
 * subject, the durable as consumer group, and the event id (`ce-id`) as message id when present.
 */
export function processSpanAttributes(subject: string, headers: Readonly<Record<string, string>>, durable: string): Attributes {
  return {
    'messaging.system': 'nats',
    'messaging.operation.type': 'process',
    'messaging.operation.name': 'process',
    'messaging.destination.name': subject,
    'messaging.consumer.group.name': durable,
    ...(headers['ce-id'] ? { 'messaging.message.id': headers['ce-id'] } : {}),
  };
}
