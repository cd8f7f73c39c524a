import { defineEntity, p } from '@mikro-orm/core';

/**
 * One `Idempotency-Key` use (table `gateway.idempotency_key`): the first request's hash and, once
 * it answered, its status, replayable headers and body (all null while it is still running). The
 * store reads and writes it with plain `pg` queries on the hot path; this entity describes the
 * table for the schema test, which holds it to the committed migration.
 */
export const IdempotencyKey = defineEntity({
  name: 'IdempotencyKey',
  tableName: 'idempotency_key',
  properties: {
    organizationId: p.uuid().primary(),
    userId: p.text().primary(),
    key: p.text().primary(),
    requestHash: p.text(),
    responseStatus: p.integer().nullable(),
    responseHeaders: p.json<Record<string, string>>().nullable(),
    responseBody: p.json<unknown>().nullable(),
    createdAt: p.datetime().defaultRaw('now()'),
  },
});
