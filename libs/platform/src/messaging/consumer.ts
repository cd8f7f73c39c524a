import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { jetstream, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../logger.ts';
import type { PlatformMetrics } from '../metrics.ts';
import { quoteIdent, type EntityManager, type Orm } from '../persistence/database.ts';
import { isUuid } from '../persistence/ids.ts';
import { EVENT_STREAM, type ReceivedEvent } from './event.ts';
import { ensureDurableConsumer, jetstreamManager } from './nats.ts';

/** An event that can never be applied (undecodable, missing headers): terminated, not retried. */
export class PoisonEventError extends Error {}

/** Decoder of one event body; a ts-proto `MessageFns` (e.g. `contactsEventsV1.CompanyCreated`) is one. */
export interface EventDecoder<T> {
  decode(input: Uint8Array): T;
}

/** An event's effect, run inside the inbox transaction `em`; throw to have the event redelivered. */
export type EventEffect = (em: EntityManager) => Promise<void>;

/**
 * The handler of one event type, built by {@link onEvent}. `decode` reads the body of an event of
 * `type` and returns its effect; it throws {@link PoisonEventError} when the body does not decode.
 * The message type is closed over, so handlers of different types fit one list.
 */
export interface EventHandlerSpec {
  /** CloudEvents type handled (= the subject, e.g. `crm.contacts.company.created`); exact match, no wildcards. */
  readonly type: string;
  readonly decode: (event: ReceivedEvent) => EventEffect;
}

/**
 * Declares the handler of one event type: events whose CloudEvents `type` equals `type` are decoded
 * with `codec` and `apply`'d inside the inbox transaction (the effect commits with the inbox row, or
 * neither does). `apply` throws to have the event redelivered with backoff, or throws
 * {@link PoisonEventError} for a message that can never apply (e.g. a required field is empty).
 */
export function onEvent<T>(
  type: string,
  codec: EventDecoder<T>,
  apply: (em: EntityManager, message: T, event: ReceivedEvent) => Promise<void>,
): EventHandlerSpec {
  return {
    type,
    decode: (event) => {
      let message: T;
      try {
        message = codec.decode(event.data);
      } catch (err) {
        throw new PoisonEventError(`undecodable ${event.type}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      return (em) => apply(em, message, event);
    },
  };
}

/** A consumer's handler list is unusable (duplicate or empty type, no handler at all); thrown at boot. */
export class EventHandlerRegistrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EventHandlerRegistrationError';
  }
}

/**
 * Indexes the handlers of consumer `durable` by event type. Throws
 * {@link EventHandlerRegistrationError} when two handlers claim one type (which one would win
 * would depend on list order), a type is empty, or the list is empty (the consumer would ack and
 * drop every event). Run at boot, before the consumer receives anything.
 */
export function indexEventHandlers(durable: string, handlers: readonly EventHandlerSpec[]): ReadonlyMap<string, EventHandlerSpec> {
  if (handlers.length === 0) throw new EventHandlerRegistrationError(`consumer ${durable} registers no event handlers`);
  const byType = new Map<string, EventHandlerSpec>();
  for (const handler of handlers) {
    if (handler.type === '') throw new EventHandlerRegistrationError(`consumer ${durable} registers a handler without an event type`);
    if (byType.has(handler.type)) throw new EventHandlerRegistrationError(`consumer ${durable} registers two handlers for ${handler.type}`);
    byType.set(handler.type, handler);
  }
  return byType;
}

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
  /** One handler per event type (see {@link onEvent}); events of other types are acked and counted. */
  handlers: readonly EventHandlerSpec[];
  /** Deliveries before a failing message is terminated as poison (default 10). */
  maxDeliver?: number;
}

/**
 * Runs a durable JetStream pull consumer that dispatches each event by its CloudEvents type to the
 * one handler registered for it, applied exactly once per event id: the id goes into `inbox` in the
 * same transaction as the effect, so a redelivery finds it and changes nothing. Acks after commit;
 * on a handler error naks with backoff (min(2^n × 100 ms, 10 s)); after `maxDeliver` attempts, or
 * at once for a {@link PoisonEventError} (missing headers, undecodable body), terminates the
 * message, logs it and counts it. An event of a type no handler claims is acked without an inbox
 * row, logged at debug and counted (`consumer_unhandled_events_total`): a stream carries types a
 * consumer does not care about, including ones added after it was written.
 * Throws {@link EventHandlerRegistrationError} before touching NATS when `handlers` is unusable.
 * Returns a handle whose `stop()` ends consumption after the message in hand.
 */
export async function startEventConsumer(options: ConsumerOptions): Promise<{ stop(): Promise<void> }> {
  const handlers = indexEventHandlers(options.durable, options.handlers);
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
              const outcome = await handleOne(msg, options, handlers, maxDeliver);
              options.metrics.consumerProcessed.inc({ ...labels, outcome });
              span.setAttribute('crm.consumer.outcome', outcome);
              span.setStatus({ code: outcome === 'retried' || outcome === 'poison' ? SpanStatusCode.ERROR : SpanStatusCode.OK });
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

type Outcome = 'applied' | 'duplicate' | 'unhandled' | 'retried' | 'poison';

async function handleOne(msg: JsMsg, options: ConsumerOptions, handlers: ReadonlyMap<string, EventHandlerSpec>, maxDeliver: number): Promise<Outcome> {
  let event: ReceivedEvent;
  let effect: EventEffect;
  try {
    event = toReceivedEvent(msg);
    const handler = handlers.get(event.type);
    if (!handler) return unhandled(msg, options, event);
    // decoded before the transaction: a body that cannot decode never will, so it is poison at once
    effect = handler.decode(event);
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
      await effect(em);
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

function unhandled(msg: JsMsg, options: ConsumerOptions, event: ReceivedEvent): Outcome {
  options.metrics.consumerUnhandled.inc({ consumer: options.durable, type: event.type });
  options.logger.debug({ type: event.type, subject: msg.subject, eventId: event.id }, 'no handler for event type; acked');
  // no inbox row: nothing was applied, and a handler added later should not find this event "done"
  msg.ack();
  return 'unhandled';
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
