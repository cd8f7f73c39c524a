import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { jetstream, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../logger.ts';
import type { PlatformMetrics } from '../metrics.ts';
import { quoteIdent, type EntityManager, type Orm } from '../persistence/database.ts';
import { isUuid } from '../persistence/ids.ts';
import { EVENT_STREAM, type ReceivedEvent } from './event.ts';
import { ensureDurableConsumer, jetstreamManager } from './nats.ts';

/** Applies one event inside the inbox transaction `em`; throw to have it redelivered. */
export type EventHandler = (em: EntityManager, event: ReceivedEvent) => Promise<void>;

/** An event that can never be applied (undecodable, missing headers): terminated, not retried. */
export class PoisonEventError extends Error {}

export interface ConsumerOptions {
  orm: Orm;
  nc: NatsConnection;
  logger: Logger;
  metrics: PlatformMetrics;
  /** Service schema holding the `inbox` table. */
  schema: string;
  /** Durable consumer name, also the inbox's `consumer` column (e.g. `analytics-svc`). */
  durable: string;
  filterSubject: string;
  handle: EventHandler;
  /** Deliveries before a failing message is terminated as poison (default 10). */
  maxDeliver?: number;
}

/**
 * Runs a durable JetStream pull consumer whose handler is applied exactly once per event id: the
 * id goes into `inbox` in the same transaction as the effect, so a redelivery finds it and
 * changes nothing. Acks after commit; on a handler error naks with backoff
 * (min(2^n × 100 ms, 10 s)); after `maxDeliver` attempts, or at once for a
 * {@link PoisonEventError}, terminates the message, logs it and counts it.
 * Returns a handle whose `stop()` ends consumption after the message in hand.
 */
export async function startEventConsumer(options: ConsumerOptions): Promise<{ stop(): Promise<void> }> {
  const maxDeliver = options.maxDeliver ?? 10;
  const jsm = await jetstreamManager(options.nc);
  await ensureDurableConsumer(jsm, options.durable, options.filterSubject, maxDeliver);
  const consumer = await jetstream(options.nc).consumers.get(EVENT_STREAM, options.durable);
  const messages = await consumer.consume({ max_messages: 200 });
  const tracer = trace.getTracer('crm-platform');
  const labels = { consumer: options.durable };

  const loop = (async () => {
    for await (const msg of messages) {
      const pending = msg.info.pending;
      options.metrics.consumerLag.set(labels, pending);
      if (msg.info.deliveryCount > 1) options.metrics.consumerRedeliveries.inc(labels);
      const parent = propagation.extract(ROOT_CONTEXT, headerRecord(msg));
      await context.with(parent, () =>
        tracer.startActiveSpan(
          `process ${msg.subject}`,
          { kind: SpanKind.CONSUMER, attributes: { 'messaging.system': 'nats', 'messaging.destination.name': msg.subject } },
          async (span) => {
            try {
              const outcome = await handleOne(msg, options, maxDeliver);
              options.metrics.consumerProcessed.inc({ ...labels, outcome });
              span.setAttribute('crm.consumer.outcome', outcome);
              span.setStatus({ code: outcome === 'applied' || outcome === 'duplicate' ? SpanStatusCode.OK : SpanStatusCode.ERROR });
            } finally {
              span.end();
            }
          },
        ),
      );
    }
  })();

  return {
    stop: async () => {
      await messages.close();
      await loop;
    },
  };
}

type Outcome = 'applied' | 'duplicate' | 'retried' | 'poison';

async function handleOne(msg: JsMsg, options: ConsumerOptions, maxDeliver: number): Promise<Outcome> {
  let event: ReceivedEvent;
  try {
    event = toReceivedEvent(msg);
  } catch (err) {
    return poison(msg, options, err);
  }
  try {
    const applied = await options.orm.em.fork().transactional(async (em) => {
      const inserted = await em.execute<{ event_id: string }[]>(
        `insert into ${quoteIdent(options.schema)}.inbox (consumer, event_id, subject) values (?, ?, ?) on conflict do nothing returning event_id`,
        [options.durable, event.id, event.subject],
      );
      if (inserted.length === 0) return false;
      await options.handle(em, event);
      return true;
    });
    msg.ack();
    return applied ? 'applied' : 'duplicate';
  } catch (err) {
    if (err instanceof PoisonEventError || msg.info.deliveryCount >= maxDeliver) return poison(msg, options, err);
    const delay = Math.min(2 ** msg.info.deliveryCount * 100, 10_000);
    options.logger.warn(
      { err, subject: msg.subject, eventId: event.id, delivery: msg.info.deliveryCount, retryInMs: delay },
      'event handling failed; will retry',
    );
    msg.nak(delay);
    return 'retried';
  }
}

function poison(msg: JsMsg, options: ConsumerOptions, err: unknown): Outcome {
  options.metrics.consumerPoison.inc({ consumer: options.durable });
  options.logger.error({ err, subject: msg.subject, seq: msg.seq, delivery: msg.info.deliveryCount }, 'poison event terminated');
  // plain +TERM: a reason (`+TERM <reason>`) needs nats-server 2.10; the reason is in the log above
  msg.term();
  return 'poison';
}

function headerRecord(msg: JsMsg): Record<string, string> {
  const out: Record<string, string> = {};
  if (msg.headers) for (const [k, v] of msg.headers) if (v[0] !== undefined) out[k.toLowerCase()] = v[0];
  return out;
}

/** Reads the CloudEvents headers; throws {@link PoisonEventError} when required ones are missing. */
export function toReceivedEvent(msg: JsMsg): ReceivedEvent {
  const h = headerRecord(msg);
  const id = h['ce-id'];
  const organizationId = h['organization-id'];
  if (!id || !isUuid(id) || !organizationId || !isUuid(organizationId)) {
    throw new PoisonEventError('event lacks a valid ce-id / organization-id header');
  }
  return {
    id,
    subject: msg.subject,
    type: h['ce-type'] ?? msg.subject,
    source: h['ce-source'] ?? '',
    organizationId,
    time: new Date(h['ce-time'] ?? Date.now()),
    data: msg.data,
    headers: h,
    deliveryCount: msg.info.deliveryCount,
  };
}
