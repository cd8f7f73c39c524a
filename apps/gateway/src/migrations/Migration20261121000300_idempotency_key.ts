import { Migration } from '@mikro-orm/migrations';

/**
 * `Idempotency-Key` store: one row per (organization, user, key), see http/idempotency.ts. Expired
 * rows are deleted by `created_at`.
 */
export class Migration20261121000300IdempotencyKey extends Migration {
  override name = 'Migration20261121000300_idempotency_key';

  override up(): void {
    // `if not exists`: gateways before this migration created the very same table with boot DDL;
    // on their databases this migration adopts it (and its rows) unchanged
    this.addSql(`create table if not exists idempotency_key (
      organization_id uuid not null,
      user_id text not null,
      key text not null,
      request_hash text not null,
      response_status integer null,
      response_headers jsonb null,
      response_body jsonb null,
      created_at timestamptz not null default now(),
      primary key (organization_id, user_id, key)
    )`);
  }

  override down(): void {
    this.addSql('drop table idempotency_key');
  }
}
