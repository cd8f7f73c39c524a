import { defineEntity, p } from '@mikro-orm/core';

/**
 * One rate-limit counter (table `gateway.rate_limit`, shared by every gateway replica): the hits of
 * `key` (e.g. `ip:203.0.113.7`, `user:<organization>:<user>`) in the window that ends at
 * `resetAt`. The store (http/rate-limit.ts) reads and writes it with plain `pg` upserts on the hot
 * path; this entity describes the table for the schema test, which holds it to the migration.
 */
export const RateLimitCounter = defineEntity({
  name: 'RateLimitCounter',
  tableName: 'rate_limit',
  indexes: [{ name: 'rate_limit_reset_at_idx', properties: ['resetAt'] }],
  properties: {
    key: p.text().primary(),
    hits: p.integer(),
    resetAt: p.datetime(),
  },
});
