import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * One Prometheus registry per process, with the platform's shared instruments. Names follow
 * Prometheus conventions (base units: seconds; `_total` for counters).
 */
export class PlatformMetrics {
  readonly registry = new Registry();
  /**
   * gRPC calls handled, by `method` — the full method name without the leading slash
   * (`crm.contacts.v1.CompanyService/GetCompany`, grpc/server.ts `grpcMethodName`), one label per
   * method of each service — and status `code` name (`OK`, `NOT_FOUND`, …).
   */
  readonly grpcRequests: Counter<'method' | 'code'>;
  /** gRPC handling time by `method` (as {@link grpcRequests}). */
  readonly grpcDuration: Histogram<'method'>;
  readonly outboxBacklog: Gauge;
  readonly outboxOldestAge: Gauge;
  readonly outboxPublished: Counter;
  readonly consumerProcessed: Counter<'consumer' | 'outcome'>;
  readonly consumerRedeliveries: Counter<'consumer'>;
  readonly consumerPoison: Counter<'consumer'>;
  readonly consumerUnhandled: Counter<'consumer' | 'type'>;
  readonly consumerLag: Gauge<'consumer'>;

  constructor(service: string) {
    this.registry.setDefaultLabels({ service });
    collectDefaultMetrics({ register: this.registry });
    const r = [this.registry];
    this.grpcRequests = new Counter({ name: 'grpc_server_handled_total', help: 'gRPC calls handled', labelNames: ['method', 'code'], registers: r });
    this.grpcDuration = new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'gRPC handling time',
      labelNames: ['method'],
      registers: r,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    });
    this.outboxBacklog = new Gauge({ name: 'outbox_backlog', help: 'outbox rows not yet published', registers: r });
    this.outboxOldestAge = new Gauge({ name: 'outbox_oldest_age_seconds', help: 'age of the oldest unpublished outbox row', registers: r });
    this.outboxPublished = new Counter({ name: 'outbox_published_total', help: 'events published to JetStream', registers: r });
    this.consumerProcessed = new Counter({
      name: 'consumer_messages_total',
      help: 'messages handled by outcome (applied, duplicate, unhandled, retried, poison)',
      labelNames: ['consumer', 'outcome'],
      registers: r,
    });
    this.consumerRedeliveries = new Counter({
      name: 'consumer_redeliveries_total',
      help: 'messages seen with delivery count > 1',
      labelNames: ['consumer'],
      registers: r,
    });
    this.consumerPoison = new Counter({
      name: 'consumer_poison_messages_total',
      help: 'messages terminated after max deliveries or as undecodable',
      labelNames: ['consumer'],
      registers: r,
    });
    // by type: a type showing up here that should be handled points at a missing registration
    this.consumerUnhandled = new Counter({
      name: 'consumer_unhandled_events_total',
      help: 'events acked without effect because no handler is registered for their type',
      labelNames: ['consumer', 'type'],
      registers: r,
    });
    this.consumerLag = new Gauge({
      name: 'consumer_pending_messages',
      help: 'messages pending for the durable consumer (lag)',
      labelNames: ['consumer'],
      registers: r,
    });
  }
}
