import { Migration } from '@mikro-orm/migrations';

/**
 * Platform tables every service schema carries: `outbox` (with a statement trigger that
 * NOTIFYs channel `outbox_<schema>` so the relay wakes within milliseconds) and `inbox`
 * (consumer, event id) for idempotent consumers. Unqualified names: runs in the service schema.
 */
export class PlatformMessagingMigration extends Migration {
  override name = 'Migration20261121000000_platform_messaging';

  override up(): void {
    this.addSql(`create table outbox (
      id uuid primary key,
      subject text not null,
      organization_id uuid not null,
      aggregate_id text not null,
      headers jsonb not null,
      payload bytea not null,
      occurred_at timestamptz not null,
      published_at timestamptz null
    )`);
    this.addSql('create index outbox_unpublished_idx on outbox (id) where published_at is null');
    this.addSql('create index outbox_published_at_idx on outbox (published_at) where published_at is not null');
    this.addSql(`create function outbox_notify() returns trigger language plpgsql as $$
      begin perform pg_notify('outbox_' || tg_table_schema, ''); return null; end $$`);
    this.addSql('create trigger outbox_notify after insert on outbox for each statement execute function outbox_notify()');
    this.addSql(`create table inbox (
      consumer text not null,
      event_id uuid not null,
      subject text not null,
      processed_at timestamptz not null default now(),
      primary key (consumer, event_id)
    )`);
  }

  override down(): void {
    this.addSql('drop table inbox');
    this.addSql('drop trigger outbox_notify on outbox');
    this.addSql('drop function outbox_notify()');
    this.addSql('drop table outbox');
  }
}

/** Migration list entry for a service's `migrationsList`. */
export const platformMessagingMigration = { name: 'Migration20261121000000_platform_messaging', class: PlatformMessagingMigration };
