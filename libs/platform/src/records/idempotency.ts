import { createHash } from 'node:crypto';
import { defineEntity, p } from '@mikro-orm/core';
import { Migration } from '@mikro-orm/migrations';
import type { RequestContext } from '../context.ts';
import { DomainError } from '../errors.ts';
import { quoteIdent, type EntityManager } from '../persistence/database.ts';

/**
 * Idempotency of writes, end to end (architecture "Tenancy and identity": "the owning service
 * records the key with the write, in one transaction"). The gateway forwards the client's
 * `Idempotency-Key`; the service inserts (organization, user, key) in the same transaction as the
 * record it creates. A retry after any failure — a time-out, a 5xx, the service killed between
 * commit and reply — finds the committed key and gets the record it created, so a request has one
 * effect whatever failed in between. Keys are kept {@link IDEMPOTENCY_RETENTION_HOURS} hours.
 */
export const IDEMPOTENCY_RETENTION_HOURS = 24;

/** One key use (table `idempotency_key` in the service's schema). */
export const IdempotentWrite = defineEntity({
  name: 'IdempotentWrite',
  tableName: 'idempotency_key',
  properties: {
    organizationId: p.uuid().primary(),
    userId: p.text().primary(),
    key: p.text().primary(),
    requestHash: p.text(),
    recordId: p.uuid(),
    createdAt: p.datetime().defaultRaw('now()'),
  },
});

/** Creates `idempotency_key` in a service schema (list it after the platform messaging migration). */
export class PlatformIdempotencyMigration extends Migration {
  override name = 'Migration20261121000500_platform_idempotency';

  override up(): void {
    this.addSql(`create table idempotency_key (
      organization_id uuid not null,
      user_id text not null,
      key text not null,
      request_hash text not null,
      record_id uuid not null,
      created_at timestamptz not null default now(),
      primary key (organization_id, user_id, key)
    )`);
  }

  override down(): void {
    this.addSql('drop table idempotency_key');
  }
}

/** Migration list entry for a service's `migrations`. */
export const platformIdempotencyMigration = { name: 'Migration20261121000500_platform_idempotency', class: PlatformIdempotencyMigration };

/**
 * Claims the caller's idempotency key for a create of `recordId` inside `em`'s transaction.
 * Returns undefined when this request is the first with the key (the key commits with the write),
 * or the id of the record the first request created. A concurrent first request holding the key
 * makes this wait for its commit (unique index), so two in-flight retries still create one record.
 * `request` is what was asked (hashed): the same key with another request is 422
 * IDEMPOTENCY_KEY_REUSED.
 */
export async function claimIdempotencyKey(em: EntityManager, ctx: RequestContext, request: unknown, recordId: string): Promise<string | undefined> {
  if (!ctx.idempotencyKey) return undefined;
  const table = `${quoteIdent(String(em.config.get('schema')))}.idempotency_key`;
  const hash = createHash('sha256').update(JSON.stringify(request)).digest('hex');
  const id = [ctx.organizationId, ctx.userId, ctx.idempotencyKey];
  if (Math.random() < 0.001) await em.execute(`delete from ${table} where created_at < now() - interval '${IDEMPOTENCY_RETENTION_HOURS} hours'`);
  const claimed = await em.execute<{ key: string }[]>(
    `insert into ${table} (organization_id, user_id, key, request_hash, record_id) values (?, ?, ?, ?, ?) on conflict do nothing returning key`,
    [...id, hash, recordId],
  );
  if (claimed.length > 0) return undefined;
  const [earlier] = await em.execute<{ request_hash: string; record_id: string }[]>(
    `select request_hash, record_id from ${table} where organization_id = ? and user_id = ? and key = ?`,
    id,
  );
  if (!earlier) return undefined; // pruned between the two statements: nothing to replay
  if (earlier.request_hash !== hash) {
    throw new DomainError('rule_violation', 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request', [
      { field: 'Idempotency-Key', message: 'already used with a different request' },
    ]);
  }
  return earlier.record_id;
}
