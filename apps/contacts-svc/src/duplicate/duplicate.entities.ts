import { defineEntity, p, type EntitySchema } from '@mikro-orm/core';
import type { StoredRow } from '@crm/platform';

/**
 * The tables and schema objects of duplicate detection (migration
 * `Migration20261124000200_duplicates_merge`, which documents them); declared here so the schema
 * test holds entities and migration to agreement.
 */

/** `contacts.duplicate_pair`: a scored pair of live records (record_id < duplicate_id), kept by the duplicate scan. */
export const DuplicatePairEntity = defineEntity({
  name: 'DuplicatePair',
  tableName: 'duplicate_pair',
  indexes: [
    { name: 'duplicate_pair_score_idx', properties: ['organizationId', 'object', 'score', 'recordId', 'duplicateId'] },
    { name: 'duplicate_pair_duplicate_idx', properties: ['organizationId', 'object', 'duplicateId'] },
  ],
  properties: {
    organizationId: p.uuid().primary(),
    object: p.text().primary(),
    recordId: p.uuid().primary(),
    duplicateId: p.uuid().primary(),
    score: p.integer(),
    reasons: p.json<{ rule: string; weight: number }[]>(),
    computedAt: p.datetime(),
  },
});

/**
 * `contacts.duplicate_scan_queue`: records to rescan (up to 500 per row, one organization and
 * object), filled by the rescan triggers, drained by the duplicate scan oldest first.
 */
export const DuplicateScanQueueEntity = defineEntity({
  name: 'DuplicateScanQueue',
  tableName: 'duplicate_scan_queue',
  indexes: [
    { name: 'duplicate_scan_queue_queued_idx', properties: ['queuedAt'] },
    {
      name: 'duplicate_scan_queue_group_idx',
      expression: 'create index duplicate_scan_queue_group_idx on duplicate_scan_queue (organization_id, object, queued_at) where parked_at is null',
    },
  ],
  properties: {
    id: p.uuid().primary().defaultRaw('gen_random_uuid()'),
    organizationId: p.uuid(),
    object: p.text(),
    recordIds: p.array<string>().columnType('uuid[]'),
    queuedAt: p.datetime().defaultRaw('clock_timestamp()'),
    /** Failed scans of this entry. */
    attempts: p.integer().default(0),
    lastError: p.text().nullable(),
    /** Set when the scan gave up on it (duplicate.scan.ts `SCAN_MAX_ATTEMPTS`): left for an operator. */
    parkedAt: p.datetime().nullable(),
  },
});

/** `contacts.duplicate_settings`: the organization's likely-duplicate threshold (1..100). */
export const DuplicateSettingsEntity = defineEntity({
  name: 'DuplicateSettings',
  tableName: 'duplicate_settings',
  checks: [{ name: 'duplicate_settings_threshold_check', property: 'threshold', expression: 'threshold >= 1 and threshold <= 100' }],
  properties: {
    organizationId: p.uuid().primary(),
    threshold: p.integer(),
    updatedAt: p.datetime(),
    updatedBy: p.text(),
    version: p.integer().version(),
  },
});

/**
 * Adds the blocking indexes and rescan triggers of duplicate detection to the company or contact
 * entity (declared as raw DDL: MikroORM compares them by name). Call once, where the entity is built.
 */
export function declareDuplicateSchema(entity: EntitySchema<StoredRow>, table: 'company' | 'contact'): void {
  const live = 'where deleted_at is null';
  const indexes: [string, string][] =
    table === 'contact'
      ? [
          ['contact_email_key_idx', `(organization_id, crm_email_key(email)) ${live}`],
          [
            'contact_name_key_idx',
            `(organization_id, company_id, crm_person_name_key(first_name, last_name)) include (first_name, last_name, id) ${live} and company_id is not null`,
          ],
        ]
      : [
          ['company_domain_key_idx', `(organization_id, crm_company_domain_key(domain, website)) ${live}`],
          ['company_email_key_idx', `(organization_id, crm_email_key(email)) ${live}`],
          ['company_name_key_idx', `(organization_id, lower(address_city), crm_company_name_key(name)) include (name, address_city, id) ${live}`],
        ];
  for (const [name, definition] of indexes) entity.addIndex({ name, expression: `create index ${name} on ${table} ${definition}` });
  // plain column indexes: compared in full by the schema test
  const phones = table === 'contact' ? ['phone', 'mobile'] : ['phone'];
  for (const column of phones) entity.addIndex({ name: `${table}_${column}_idx`, properties: ['organizationId', column], where: 'deleted_at is null' });
  entity.meta.triggers.push(
    {
      name: `${table}_duplicate_inserted`,
      timing: 'after',
      events: ['insert'],
      forEach: 'statement',
      expression: `create trigger ${table}_duplicate_inserted after insert on ${table} referencing new table as new_rows for each statement execute function duplicate_queue_inserted('${table}')`,
    },
    {
      name: `${table}_duplicate_updated`,
      timing: 'after',
      events: ['update'],
      forEach: 'statement',
      expression: `create trigger ${table}_duplicate_updated after update on ${table} referencing old table as old_rows new table as new_rows for each statement execute function duplicate_queue_${table}_updated()`,
    },
  );
}
