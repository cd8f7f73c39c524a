import { defineEntity, p } from '@mikro-orm/core';

/**
 * Inbox row (table `inbox`, created by the platform messaging migration): event `eventId` was
 * applied by durable consumer `consumer`. The consumer inserts it with plain SQL in the same
 * transaction as the event's effect, so a redelivered event finds its row and applies nothing.
 * Listed in each consuming service's entities so the ORM metadata describes the whole schema (the
 * schema tests compare it with the migrations).
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
