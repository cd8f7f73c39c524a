import { defineEntity, p } from '@mikro-orm/core';

/**
 * `contacts.record_merge`: one merge of companies or contacts into a survivor, with the snapshot
 * its undo restores from (merge.snapshot.ts) and, once undone, when, by whom and what the undo
 * kept because it had changed since (`undo_conflicts`).
 */
export const RecordMergeEntity = defineEntity({
  name: 'RecordMerge',
  tableName: 'record_merge',
  indexes: [{ name: 'record_merge_org_idx', properties: ['organizationId', 'id'] }],
  properties: {
    id: p.uuid().primary(),
    organizationId: p.uuid(),
    object: p.text(),
    survivorId: p.uuid(),
    mergedIds: p.array<string>().columnType('uuid[]'),
    fieldChoices: p.json<Record<string, string>>(),
    snapshot: p.json<unknown>(),
    createdAt: p.datetime(),
    createdBy: p.text(),
    undoneAt: p.datetime().nullable(),
    undoneBy: p.text().nullable(),
    undoConflicts: p.json<unknown>().nullable(),
  },
});
