import { context, propagation } from '@opentelemetry/api';
import { defineEntity, p } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { requireContext } from '../context.ts';
import { newId } from '../persistence/ids.ts';

/** JetStream stream holding every domain event (subjects `crm.>`). */
export const EVENT_STREAM = 'CRM_EVENTS';

/** Encoder of one protobuf event message (a ts-proto `MessageFns`). */
export interface EventCodec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

/**
 * A domain event about to be stored: the subject `crm.<domain>.<aggregate>.<event>` (also the
 * CloudEvents type), the protobuf message type's full name, the aggregate's id and encoded body.
 */
export interface PendingEvent {
  subject: string;
  dataSchema: string;
  aggregateId: string;
  data: Uint8Array;
}

/** Builds a {@link PendingEvent} from a ts-proto codec and message. */
export function domainEvent<T>(subject: string, dataSchema: string, codec: EventCodec<T>, aggregateId: string, message: T): PendingEvent {
  return { subject, dataSchema, aggregateId, data: codec.encode(message).finish() };
}

/**
 * Outbox row: an event committed in the same transaction as the change it describes; the relay
 * publishes it to JetStream with `Nats-Msg-Id` = `id` and sets `publishedAt`. `headers` holds the
 * CloudEvents NATS-binding headers plus organization-id and traceparent, ready to send.
 */
export const OutboxMessage = defineEntity({
  name: 'OutboxMessage',
  tableName: 'outbox',
  indexes: [
    { name: 'outbox_unpublished_idx', properties: ['id'], where: 'published_at is null' },
    { name: 'outbox_published_at_idx', properties: ['publishedAt'], where: 'published_at is not null' },
  ],
  triggers: [
    {
      // the trigger calls function `outbox_notify()`, not MikroORM's `outbox_outbox_notify_fn`
      // naming convention, so it is declared as raw DDL; MikroORM then compares it by name only
      name: 'outbox_notify',
      timing: 'after',
      events: ['insert'],
      forEach: 'statement',
      expression: 'create trigger outbox_notify after insert on outbox for each statement execute function outbox_notify()',
    },
  ],
  properties: {
    id: p.uuid().primary(),
    subject: p.text(),
    organizationId: p.uuid(),
    aggregateId: p.text(),
    headers: p.json<Record<string, string>>(),
    payload: p.blob(),
    occurredAt: p.datetime(),
    publishedAt: p.datetime().nullable(),
  },
});

/**
 * Stages `events` in the outbox of `em`'s unit of work: they commit (or roll back) with the change.
 * Call inside `em.transactional`. Headers follow the CloudEvents NATS protocol binding
 * (`ce-id`, `ce-type`, `ce-source`, `ce-time`, `ce-specversion`, `ce-subject`, `ce-dataschema`)
 * plus `organization-id`, `x-request-id` and the W3C `traceparent` of the active span.
 */
export function recordEvents(em: EntityManager, source: string, events: readonly PendingEvent[]): void {
  const ctx = requireContext();
  const trace: Record<string, string> = {};
  propagation.inject(context.active(), trace);
  const now = new Date();
  for (const event of events) {
    const id = newId();
    const headers: Record<string, string> = {
      'ce-specversion': '1.0',
      'ce-id': id,
      'ce-type': event.subject,
      'ce-source': source,
      'ce-time': now.toISOString(),
      'ce-subject': event.aggregateId,
      'ce-dataschema': `proto:${event.dataSchema}`,
      'content-type': 'application/protobuf',
      'organization-id': ctx.organizationId,
      'x-request-id': ctx.requestId,
      ...trace,
    };
    em.create(OutboxMessage, {
      id,
      subject: event.subject,
      organizationId: ctx.organizationId,
      aggregateId: event.aggregateId,
      headers,
      payload: Buffer.from(event.data),
      occurredAt: now,
      publishedAt: null,
    });
  }
}

/** An event as a consumer receives it (decoded headers, raw protobuf body). */
export interface ReceivedEvent {
  id: string;
  subject: string;
  type: string;
  source: string;
  organizationId: string;
  time: Date;
  data: Uint8Array;
  headers: Record<string, string>;
  /** JetStream delivery attempt, 1 on first delivery. */
  deliveryCount: number;
}
