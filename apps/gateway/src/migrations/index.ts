import { Migration20261121000300IdempotencyKey } from './Migration20261121000300_idempotency_key.ts';
import { Migration20261122000100RateLimit } from './Migration20261122000100_rate_limit.ts';

/** Committed migrations of schema `gateway`, in order (explicit list: no folder scanning). */
export const migrations = [
  { name: 'Migration20261121000300_idempotency_key', class: Migration20261121000300IdempotencyKey },
  { name: 'Migration20261122000100_rate_limit', class: Migration20261122000100RateLimit },
];
