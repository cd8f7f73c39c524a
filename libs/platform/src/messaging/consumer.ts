import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
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
import { processSpanAttributes } from './tracing.ts';

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
  /**
   * Set by {@link onEvents}: applies the effects (made by this handler's `decode`) of several
   * events at once, with the same outcome as applying each of them.
   */
  readonly applyMany?: (em: EntityManager, effects: readonly EventEffect[]) => Promise<void>;
}

/** An event's decoded message with the event, as {@link onEvents} hands them to its handler. */
export interface DecodedEvent<T> {
  message: T;
  event: ReceivedEvent;
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
      const message = decodeBody(codec, event);
      return (em) => apply(em, message, event);
    },
  };
}

/**
 * Like {@link onEvent}, for a handler that applies many events of `type` at once: the consumer
 * gives `applyAll` every event of the type in a batch (see startEventConsumer) — in one call, inside
 * the batch's inbox transaction — and a single event when events are applied one by one. Applying
 * them together must have the same effect as applying them one after the other in any order
 * (events may arrive out of order anyway). `applyAll` throws to have the events retried (the batch
 * is then applied one event at a time), or {@link PoisonEventError} for a message that never applies.
 */
export function onEvents<T>(
  type: string,
  codec: EventDecoder<T>,
  applyAll: (em: EntityManager, events: readonly DecodedEvent<T>[]) => Promise<void>,
): EventHandlerSpec {
  const items = new WeakMap<EventEffect, DecodedEvent<T>>();
  return {
    type,
    decode: (event) => {
      const item = { message: decodeBody(codec, event), event };
      const effect: EventEffect = (em) => applyAll(em, [item]);
      items.set(effect, item);
      return effect;
    },
    applyMany: (em, effects) =>
      applyAll(
        em,
        effects.map((effect) => items.get(effect)!),
      ),
  };
}

/** The body of `event` decoded with `codec`; {@link PoisonEventError} when it does not decode. */
function decodeBody<T>(codec: EventDecoder<T>, event: ReceivedEvent): T {
  try {
    return codec.decode(event.data);
  } catch (err) {
    throw new PoisonEventError(`undecodable ${event.type}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
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

/** msg.working() period while messages are in hand: a third of the durable's 30 s ack wait (nats.ts). */
const WORKING_INTERVAL_MS = 10_000;

/** Events applied in one transaction at most (the subscription also buffers this many). */
const MAX_BATCH = 200;

/**
 * Runs a durable JetStream pull consumer that dispatches each event by its CloudEvents type to the
 * one handler registered for it, applied exactly once per event id: the id goes into `inbox` in the
 * same transaction as the effect, so a redelivery finds it and changes nothing. Acks after commit.
 * Events that arrive while others are being applied are applied together, in one transaction per
 * batch (at most {@link MAX_BATCH}); a batch that fails is rolled back and its events applied one
 * by one with the rules below, so batching changes throughput, never outcomes.
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
  const messages = await consumer.consume({ max_messages: MAX_BATCH });
  const tracer = trace.getTracer('crm-platform');
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

  // Messages are taken off the subscription as they arrive (the pump) and applied in batches: all
  // that arrived while the previous batch was being applied, at most MAX_BATCH, in one transaction
  // (see applyBatch). Under no load a batch is one event, applied as before; under load the
  // transaction, its commit and the round trips around it are shared by up to MAX_BATCH events.
  const queue: JsMsg[] = [];
  const inHand = new Set<JsMsg>();
  let arrived: (() => void) | undefined;
  let drained = false;
  const pump = (async () => {
    try {
      for await (const msg of messages) {
        queue.push(msg);
        arrived?.();
      }
    } finally {
      drained = true;
      arrived?.();
    }
  })();
  // every message held here (queued or being applied) tells JetStream it is still being worked on
  const working = setInterval(() => {
    for (const msg of queue) msg.working();
    for (const msg of inHand) msg.working();
  }, WORKING_INTERVAL_MS);
  const loop = (async () => {
    try {
      for (;;) {
        if (queue.length === 0) {
          if (drained) break;
          await new Promise<void>((resolve) => (arrived = resolve));
          arrived = undefined;
          continue;
        }
        if (stopping.signal.aborted) {
          // stopping: hand back at once what was received but not started, so another replica (or the next start) takes it
          for (const msg of queue.splice(0)) msg.nak();
          continue;
        }
        const batch = queue.splice(0, MAX_BATCH);
        for (const msg of batch) inHand.add(msg);
        try {
          await processBatch(batch, run, tracer);
        } finally {
          for (const msg of batch) inHand.delete(msg);
        }
      }
      await pump;
    } finally {
      clearInterval(working);
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

/** A received message, decoded and ready to apply, with its CONSUMER span (and the context naming it). */
interface Ready {
  msg: JsMsg;
  event: ReceivedEvent;
  effect: EventEffect;
  handler: EventHandlerSpec;
  span: Span;
  spanContext: Context;
}

/**
 * Handles one batch of received messages, each under its own CONSUMER span `process <subject>`
 * (continuing the trace of its publish): poison and unhandled events are settled at once; the
 * others are applied in one transaction ({@link applyBatch}) and acked after its commit. When
 * that transaction fails for any reason — a poison event, a handler error, a deadlock, the
 * database going away — it is rolled back, so nothing of it was applied, and every event of the
 * batch is applied again one by one ({@link applyOne}), with the per-event semantics: poison
 * terminated, transient failures retried, the rest applied once. No event is applied twice (the
 * inbox row commits with the effect, or neither does) and none is lost.
 */
async function processBatch(batch: JsMsg[], run: RunState, tracer: Tracer): Promise<void> {
  const { options } = run;
  const labels = { consumer: options.durable };
  const finish = (span: Span, outcome: Outcome): void => {
    options.metrics.consumerProcessed.inc({ ...labels, outcome });
    span.setAttribute('crm.consumer.outcome', outcome);
    span.setStatus({ code: outcome === 'retried' || outcome === 'poison' ? SpanStatusCode.ERROR : SpanStatusCode.OK });
    span.end();
  };
  const ready: Ready[] = [];
  for (const msg of batch) {
    options.metrics.consumerLag.set(labels, msg.info.pending);
    if (msg.info.deliveryCount > 1) options.metrics.consumerRedeliveries.inc(labels);
    const headers = headerRecord(msg);
    const parent = propagation.extract(ROOT_CONTEXT, headers);
    const span = tracer.startSpan(
      `process ${msg.subject}`,
      { kind: SpanKind.CONSUMER, attributes: processSpanAttributes(msg.subject, headers, options.durable) },
      parent,
    );
    const spanContext = trace.setSpan(parent, span);
    const decoded = context.with(spanContext, () => decode(msg, run));
    if (typeof decoded === 'string') finish(span, decoded);
    else ready.push({ msg, ...decoded, span, spanContext });
  }
  if (ready.length > 1 && !run.signal.aborted) {
    try {
      const applied = await applyBatch(options, ready);
      ready.forEach((r, i) => {
        r.msg.ack();
        finish(r.span, applied[i] ? 'applied' : 'duplicate');
      });
      run.setHealthy(true);
      return;
    } catch (err) {
      options.logger.debug({ err, events: ready.length }, 'batch not applied; applying its events one by one');
    }
  }
  for (const r of ready) finish(r.span, await context.with(r.spanContext, () => applyOne(r.msg, r.event, r.effect, run)));
}

/**
 * The event of `msg` and its effect; or, for an event that needs no transaction, its outcome once
 * settled: unhandled (acked) or poison (terminated).
 */
function decode(msg: JsMsg, run: RunState): { event: ReceivedEvent; effect: EventEffect; handler: EventHandlerSpec } | Outcome {
  const { options } = run;
  try {
    const event = toReceivedEvent(msg);
    const handler = run.handlers.get(event.type);
    if (!handler) return unhandled(msg, options, event);
    // decoded before the transaction: a body that cannot decode never will, so it is poison at once
    return { event, effect: handler.decode(event), handler };
  } catch (err) {
    return poison(msg, options, err);
  }
}

/**
 * Applies the events of `ready` in one transaction: their inbox rows in one statement, then the
 * effects of the events whose rows are new — one call for all the events of a handler that applies
 * many at once ({@link onEvents}, at the place of its first event), each other event's on its own
 * in order, under the event's span. Resolves per event whether it was applied (false: applied
 * before, or earlier in this batch). Rejects (having rolled everything back) when any of it fails.
 */
function applyBatch(options: ConsumerOptions, ready: readonly Ready[]): Promise<boolean[]> {
  return options.orm.em.fork().transactional(async (em) => {
    // one JSON parameter: the driver would expand a JS array into a list of placeholders
    const rows = JSON.stringify(ready.map((r) => ({ id: r.event.id, subject: r.event.subject })));
    const inserted = await em.execute<{ event_id: string }[]>(
      `insert into ${quoteIdent(options.schema)}.inbox (consumer, event_id, subject)
       select ?, e.id, e.subject from json_to_recordset(?::json) as e(id uuid, subject text)
       on conflict do nothing returning event_id`,
      [options.durable, rows],
    );
    const fresh = new Set(inserted.map((row) => row.event_id));
    // the same event twice in one batch: its row is new once, and it applies once (Postgres
    // returns uuids in lower case; a header may carry upper case)
    const applied = ready.map((r) => fresh.delete(r.event.id.toLowerCase()));
    const groups = new Map<EventHandlerSpec, Ready[]>();
    const steps: (Ready | Ready[])[] = [];
    ready.forEach((r, i) => {
      if (!applied[i]) return;
      if (!r.handler.applyMany) return void steps.push(r);
      const group = groups.get(r.handler);
      if (group) return void group.push(r);
      const created = [r];
      groups.set(r.handler, created);
      steps.push(created);
    });
    for (const step of steps) {
      if (!Array.isArray(step)) await context.with(step.spanContext, () => step.effect(em));
      else
        await context.with(step[0]!.spanContext, () =>
          step[0]!.handler.applyMany!(
            em,
            step.map((r) => r.effect),
          ),
        );
    }
    return applied;
  });
}

/** Applies one event in its own transaction, holding it while the database is unavailable; see startEventConsumer. */
async function applyOne(msg: JsMsg, event: ReceivedEvent, effect: EventEffect, run: RunState): Promise<Outcome> {
  const { options } = run;
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

/** Inserts the inbox row of `event` in `em`'s transaction and, when it is new, applies the effect; false when applied before. */
async function insertAndApply(em: EntityManager, options: ConsumerOptions, event: ReceivedEvent, effect: EventEffect): Promise<boolean> {
  const inserted = await em.execute<{ event_id: string }[]>(
    `insert into ${quoteIdent(options.schema)}.inbox (consumer, event_id, subject) values (?, ?, ?) on conflict do nothing returning event_id`,
    [options.durable, event.id, event.subject],
  );
  if (inserted.length === 0) return false;
  await effect(em);
  return true;
}

/** Inserts the inbox row and applies the effect in one transaction; false when the event was applied before. */
function applyInInbox(options: ConsumerOptions, event: ReceivedEvent, effect: EventEffect): Promise<boolean> {
  return options.orm.em.fork().transactional((em) => insertAndApply(em, options, event, effect));
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
