import { Migration } from '@mikro-orm/migrations';

/**
 * Rate-limit counters shared by every gateway replica: one row per key and fixed window, see
 * http/rate-limit.ts. `unlogged`: counters are hot, short-lived and worthless after a crash, so
 * they skip the WAL (and are not replicated: a failover starts every window afresh). Expired rows
 * are deleted by `reset_at`.
 */
export class Migration20261122000100RateLimit extends Migration {
  override name = 'Migration20261122000100_rate_limit';

  override up(): void {
    this.addSql(`create unlogged table rate_limit (
      key text primary key,
      hits integer not null,
      reset_at timestamptz not null
    )`);
    this.addSql('create index rate_limit_reset_at_idx on rate_limit (reset_at)');
  }

  override down(): void {
    this.addSql('drop table rate_limit');
  }
}
