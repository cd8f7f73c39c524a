import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { jetstream, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import pRetry from 'p-retry';
import type { Logger } from '../logger.ts';
import type { PlatformMetrics } from '../metrics.ts';
import { quoteIdent, type EntityManager, type Orm } from '../persistence/database.ts';
import { isUuid } from '../persistence/ids.ts';
import { EVENT_STREAM, type ReceivedEvent } from './event.ts';
import { ensureDurableConsumer, jetstreamManager } from './nats.ts';
import { DEFAULT_RETRY_BACKOFF, isDatabaseUnavailable, resolveBackoff, retryDelayMs, toError, type RetryBackoff } from './retry.ts';

/**
 * An event that can never be applied — missing headers, an undecodable body, invalid content (e.g.
 * no aggregate version, an id that is no UUID): terminated, logged and counted, not retried. Any
 * other error is retried for as long as it takes, so throw this only when no retry can ever help.
 */
export class PoisonEventError extends Error {}

/** Decoder of one event body; a ts-proto `MessageFns` (e.g. `contactsEventsV1.CompanyCreated`) is one. */
export interface EventDecoder<T> {
  decode(input: Uint8Array): T;
}

/**
 * An event's effect, run inside the inbox transaction `em`; throw to have the event retried, or
 * throw {@link PoisonEventError} when it can never apply.
 */
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
 * neither does). `apply` throws to have the event retried with backoff, or throws
 * {@link PoisonEventError} for a message that can never apply (e.g. a required field is empty).
 * Events may arrive out of order (a retried one is overtaken by later ones): an effect applies
 * only what is newer than its state (e.g. by the aggregate's version), see analytics' projections.
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

/** Backoff of a consumer's retries (see {@link RetryBackoff}). */
export type ConsumerRetryOptions = RetryBackoff;

/** Default backoff of {@link startEventConsumer}: 100 ms doubling to 10 s. */
export const DEFAULT_CONSUMER_RETRY = DEFAULT_RETRY_BACKOFF;

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
  /** Backoff of retries (default {@link DEFAULT_CONSUMER_RETRY}); tests shorten it. */
  retry?: ConsumerRetryOptions;
  /** Told when the consumer turns unhealthy (an event failed for a transient reason) and healthy again. */
  onHealthChange?: (healthy: boolean) => void;
}

/** A running consumer (see {@link startEventConsumer}). */
export interface EventConsumer {
  /** The durable's name. */
  readonly durable: string;
  /** False from an event's transient failure until an event applies again (e.g. while its database is down). */
  healthy(): boolean;
  /** Ends consumption after the message in hand (one being retried goes back to JetStream at once). */
  stop(): Promise<void>;
}

/** msg.working() period while a message is in hand: a third of the durable's 30 s ack wait (nats.ts). */
const WORKING_INTERVAL_MS = 10_000;

/**
 * Runs a durable JetStream pull consumer that dispatches each event by its CloudEvents type to the
 * one handler registered for it, applied exactly once per event id: the id goes into `inbox` in the
 * same transaction as the effect, so a redelivery finds it and changes nothing. Acks after commit.
 *
 * No event is ever given up for a transient reason; only poison is dropped:
 * - poison — missing CloudEvents headers, an undecodable body, or a handler's
 *   {@link PoisonEventError} (the event can never apply) — is terminated, logged and counted;
 * - while the database is unavailable ({@link isDatabaseUnavailable}: down, unreachable,
 *   connection killed) the event stays in hand and is retried in place with capped exponential
 *   backoff for as long as it takes, so consumption pauses and order is kept (`msg.working()`
 *   keeps JetStream from redelivering it meanwhile);
 * - any other error naks the event with capped exponential backoff by delivery count.
 * The durable has no delivery limit (`max_deliver` -1, also set on a durable created with one),
 * so no retry ever ends as poison. The consumer is unhealthy (`healthy()`, `onHealthChange`) from
 * a failed attempt until an event applies again.
 *
 * An event of a type no handler claims is acked without an inbox row, logged at debug and counted
 * (`consumer_unhandled_events_total`): a stream carries types a consumer does not care about,
 * including ones added after it was written. Throws {@link EventHandlerRegistrationError} before
 * touching NATS when `handlers` is unusable.
 */
export async function startEventConsumer(options: ConsumerOptions): Promise<EventConsumer> {
  const handlers = indexEventHandlers(options.durable, options.handlers);
  const jsm = await jetstreamManager(options.nc);
  await ensureDurableConsumer(jsm, options.durable, options.filterSubject, -1);
  const info = await jsm.consumers.info(EVENT_STREAM, options.durable);
  if (info.config.max_deliver !== undefined && info.config.max_deliver > 0) {
    // created by an earlier version with a delivery limit: lift it, or transient failures end as poison
    await jsm.consumers.update(EVENT_STREAM, options.durable, { max_deliver: -1 });
  }
  const consumer = await jetstream(options.nc).consumers.get(EVENT_STREAM, options.durable);
  const messages = await consumer.consume({ max_messages: 200 });
  const tracer = trace.getTracer('crm-platform');
  const labels = { consumer: options.durable };
  const stopping = new AbortController();
  let healthy = true;
  const run: RunState = {
    options,
    handlers,
    retry: resolveBackoff(options.retry),
    signal: stopping.signal,
    setHealthy: (value) => {
      if (value === healthy) return;
      healthy = value;
      options.onHealthChange?.(value);
    },
  };

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
            const working = setInterval(() => msg.working(), WORKING_INTERVAL_MS);
            try {
              const outcome = await handleOne(msg, run);
              options.metrics.consumerProcessed.inc({ ...labels, outcome });
              span.setAttribute('crm.consumer.outcome', outcome);
              span.setStatus({ code: outcome === 'retried' || outcome === 'poison' ? SpanStatusCode.ERROR : SpanStatusCode.OK });
            } finally {
              clearInterval(working);
              span.end();
            }
          },
        ),
      );
    }
  })();

  return {
    durable: options.durable,
    healthy: () => healthy,
    stop: async () => {
      stopping.abort(new Error(`consumer ${options.durable} stopping`));
      await messages.close();
      await loop;
    },
  };
}

type Outcome = 'applied' | 'duplicate' | 'unhandled' | 'retried' | 'poison';

interface RunState {
  options: ConsumerOptions;
  handlers: ReadonlyMap<string, EventHandlerSpec>;
  retry: Required<ConsumerRetryOptions>;
  signal: AbortSignal;
  setHealthy(healthy: boolean): void;
}

async function handleOne(msg: JsMsg, run: RunState): Promise<Outcome> {
  const { options } = run;
  let event: ReceivedEvent;
  let effect: EventEffect;
  try {
    event = toReceivedEvent(msg);
    const handler = run.handlers.get(event.type);
    if (!handler) return unhandled(msg, options, event);
    // decoded before the transaction: a body that cannot decode never will, so it is poison at once
    effect = handler.decode(event);
  } catch (err) {
    return poison(msg, options, err);
  }
  const labels = { consumer: options.durable, outcome: 'retried' };
  try {
    // the attempt itself probes the database: while it is unavailable the event stays in hand
    const applied = await pRetry(() => applyInInbox(options, event, effect).catch((err: unknown) => Promise.reject(toError(err))), {
      retries: Infinity,
      factor: 2,
      minTimeout: run.retry.initialDelayMs,
      maxTimeout: run.retry.maxDelayMs,
      signal: run.signal,
      shouldRetry: ({ error }) => isDatabaseUnavailable(error) && !run.signal.aborted,
      onFailedAttempt: ({ error, attemptNumber, retryDelay }) => {
        if (!isDatabaseUnavailable(error)) return;
        run.setHealthy(false);
        options.metrics.consumerProcessed.inc(labels);
        options.logger.warn(
          { err: error, subject: msg.subject, eventId: event.id, attempt: attemptNumber, retryInMs: retryDelay },
          'database unavailable; holding the event and retrying',
        );
      },
    });
    msg.ack();
    run.setHealthy(true);
    return applied ? 'applied' : 'duplicate';
  } catch (err) {
    if (err instanceof PoisonEventError) return poison(msg, options, err);
    if (run.signal.aborted) {
      // stopping: hand it back at once so another replica (or the next start) takes it
      msg.nak();
      return 'retried';
    }
    run.setHealthy(false);
    const delay = retryDelayMs(msg.info.deliveryCount, run.retry);
    options.logger.warn(
      { err, subject: msg.subject, eventId: event.id, delivery: msg.info.deliveryCount, retryInMs: delay },
      'event handling failed; will retry',
    );
    msg.nak(delay);
    return 'retried';
  }
}

/** Inserts the inbox row and applies the effect in one transaction; false when the event was applied before. */
function applyInInbox(options: ConsumerOptions, event: ReceivedEvent, effect: EventEffect): Promise<boolean> {
  return options.orm.em.fork().transactional(async (em) => {
    const inserted = await em.execute<{ event_id: string }[]>(
      `insert into ${quoteIdent(options.schema)}.inbox (consumer, event_id, subject) values (?, ?, ?) on conflict do nothing returning event_id`,
      [options.durable, event.id, event.subject],
    );
    if (inserted.length === 0) return false;
    await effect(em);
    return true;
  });
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
