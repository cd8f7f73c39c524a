import { defineEntity, p } from '@mikro-orm/core';

/**
 * Inbox row (table `inbox`, created by the platform messaging migration): event `eventId` was
 * applied by durable consumer `consumer`. The consumer inserts it with plain SQL in the same
 * transaction as the event's effect, so a redelivered event finds its row and applies nothing.
 * Listed in each consuming service's entities so the ORM metadata describes the whole schema (the
 * schema tests compare it with the migrations).
 *
 * Rows are never pruned: JetStream's `Nats-Msg-Id` dedup only spans the stream's 2-minute
 * duplicate window, while an event can come back much later (an outbox row re-sent after a crash,
 * a redelivery after a long outage, a replay) and the stream keeps events forever. Should rows
 * ever be pruned, only those of events that can no longer be delivered may go — older than
 * anything the stream still holds.
 */
export const InboxEntry = defineEntity({
  name: 'InboxEntry',
  tableName: 'inbox',
  properties: {
    consumer: p.text().primary(),
    eventId: p.uuid().primary(),
    subject: p.text(),
    processedAt: p.datetime().defaultRaw('now()'),
  },
});
