import { Migration20261121000300IdempotencyKey } from './Migration20261121000300_idempotency_key.ts';

/** Committed migrations of schema `gateway`, in order (explicit list: no folder scanning). */
export const migrations = [{ name: 'Migration20261121000300_idempotency_key', class: Migration20261121000300IdempotencyKey }];
