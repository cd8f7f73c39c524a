import { companyRecord, contactRecord, duplicateV1, EXAMPLE_RECORD_ID, pascalCase, type RecordDeclaration } from '@crm/contracts';
import { callUnary, type Role } from '@crm/platform';
import { z } from 'zod';
import { READ_ROLES } from '../auth/tenant.ts';
import type { BackendContext } from '../backends.ts';
import { defineRoute, json, type Route } from '../http/route.ts';
import { recordSchemas, toJson, type RecordJson } from './record.resource.ts';

/**
 * Merges over REST (contacts-svc `MergeService`, whose module comment has the rules):
 * `POST /companies/{id}/merge` and `/contacts/{id}/merge` (the path's record survives),
 * `GET /merges/{id}`, `POST /merges/{id}/undo`. Merging and undoing: crm-admin and crm-manager.
 */

const MERGE_ROLES: readonly Role[] = ['crm-admin', 'crm-manager'];
const EXAMPLE_MERGED_ID = '0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f11';
const EXAMPLE_MERGE_ID = '0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f40';

const uuidParam = (description: string, example = EXAMPLE_RECORD_ID) => z.string().meta({ format: 'uuid', description, examples: [example] });

/** `POST /<plural>/{id}/merge` body (component `MergeRequest`). */
const mergeBody = z
  .strictObject({
    mergedIds: z
      .array(z.string().max(100))
      .min(1)
      .max(10)
      .meta({ description: 'the records merged into the survivor (1..10, distinct, not the survivor)', examples: [[EXAMPLE_MERGED_ID]] }),
    fieldChoices: z
      .record(z.string().max(100), z.string().max(100))
      .optional()
      .meta({
        description:
          'field → id of the record (survivor or merged) whose value the survivor takes. Without a choice the survivor keeps its value, or takes the first merged record’s when it has none; ' +
          'tags are unioned; custom fields unioned key by key; doNotCall and emailOptOut true if any record’s is; isPrimary (contacts) follows the company.',
        examples: [{ email: EXAMPLE_MERGED_ID }],
      }),
  })
  .meta({ id: 'MergeRequest', description: 'records to merge into the survivor' });

const conflictSchema = z
  .object({
    recordId: z.uuid().meta({ examples: [EXAMPLE_RECORD_ID] }),
    field: z.string().meta({ description: 'the field that kept its later value', examples: ['jobTitle'] }),
  })
  .meta({ id: 'MergeConflict', description: 'a field the merge changed that changed again before the undo (kept)' });

/** A merge as served (component `Merge`). */
const mergeSchema = z
  .object({
    id: z.uuid().meta({ description: 'merge id (UUIDv7)', examples: [EXAMPLE_MERGE_ID] }),
    object: z.enum(['company', 'contact']),
    survivorId: z.uuid().meta({ examples: [EXAMPLE_RECORD_ID] }),
    mergedIds: z.array(z.uuid()).meta({ examples: [[EXAMPLE_MERGED_ID]] }),
    fieldChoices: z.record(z.string(), z.uuid()).meta({ description: 'as asked', examples: [{ email: EXAMPLE_MERGED_ID }] }),
    createdAt: z.iso.datetime().meta({ examples: ['2026-11-21T09:30:00.000Z'] }),
    createdBy: z.string().meta({ description: 'Keycloak user id of who merged' }),
    undoDeadline: z.iso.datetime().meta({ description: 'the undo is possible until then (30 days)', examples: ['2026-12-21T09:30:00.000Z'] }),
    undoneAt: z.iso.datetime().nullable().meta({ description: 'null until undone' }),
    undoneBy: z.string().nullable(),
    conflicts: z.array(conflictSchema).meta({ description: 'what the undo kept because it changed after the merge' }),
    movedIds: z
      .array(z.uuid())
      .meta({ description: 'records and documents whose reference the merge pointed at the survivor (contacts, subsidiaries, referrals, documents)' }),
  })
  .meta({ id: 'Merge', description: 'a merge of records into a survivor, undoable for 30 days' });

type MergeJson = z.infer<typeof mergeSchema>;

function mergeJson(m: duplicateV1.Merge | undefined): MergeJson {
  if (!m) throw new Error('the service returned no merge');
  return {
    id: m.id,
    object: m.object === duplicateV1.CustomerObject.CUSTOMER_OBJECT_COMPANY ? 'company' : 'contact',
    survivorId: m.survivorId,
    mergedIds: m.mergedIds,
    fieldChoices: m.fieldChoices,
    createdAt: (m.createTime ?? new Date(0)).toISOString(),
    createdBy: m.createdBy,
    undoDeadline: (m.undoDeadline ?? new Date(0)).toISOString(),
    undoneAt: m.undoTime ? m.undoTime.toISOString() : null,
    undoneBy: m.undoneBy || null,
    conflicts: m.conflicts.map((c) => ({ recordId: c.recordId, field: c.field })),
    movedIds: m.movedIds,
  };
}

/** The merge routes (see the module comment). */
export function mergeRoutes(backend: BackendContext): Route[] {
  const client = backend.client(duplicateV1.MergeServiceClient);
  const deadlineMs = backend.deadlineMs;
  const mergeRoute = (record: RecordDeclaration): Route => {
    const plural = record.plural;
    const one = pascalCase(record.name);
    const resultSchema = mergeSchema
      .extend({ survivor: recordSchemas(record).resource as z.ZodType<RecordJson> })
      .meta({ id: `${one}MergeResult`, description: `the merge and the surviving ${record.name}` });
    return defineRoute({
      method: 'post',
      path: `/${plural}/:id/merge`,
      operationId: `merge${pascalCase(plural)}`,
      summary: `Merge ${plural} into this one`,
      description:
        `Merges up to 10 ${plural} into the survivor (the path’s ${record.name}) in one transaction: it takes the chosen values, tags and static segment memberships are unioned, ` +
        (record === companyRecord
          ? 'contacts and subsidiaries of merged companies move to it, '
          : 'contacts referred by merged contacts are referred by it, ') +
        `merged ${plural} are soft-deleted (their GET answers 404 with mergedIntoId). With If-Match only if the survivor is at that version (else 412). ` +
        'Undo within 30 days: POST /api/v1/merges/{id}/undo. Emits `merged`. crm-admin and crm-manager.',
      tag: plural,
      roles: MERGE_ROLES,
      params: z.strictObject({ id: uuidParam(`the surviving ${record.name}`) }),
      idempotency: backend.idempotency,
      body: mergeBody,
      ifMatch: true,
      response: json(resultSchema, { status: 201, location: (r) => `/api/v1/merges/${r.id}` }),
      problems: {
        '404': `the survivor or a merged ${record.name} is not found (or another organization’s)`,
        '409': `a ${record.name} was merged already`,
        '422': record === companyRecord ? 'a merged company is above the survivor in the hierarchy, or the result would be circular' : 'business rule violated',
      },
      handler: async ({ params, body, expectedVersion }) => {
        const request = { survivorId: params.id, mergedIds: body.mergedIds, fieldChoices: body.fieldChoices ?? {}, expectedVersion };
        const opts = { deadlineMs };
        if (record === companyRecord) {
          const res = await callUnary(client, client.mergeCompanies, request, opts);
          return { ...mergeJson(res.merge), survivor: toJson(record, res.company) };
        }
        const res = await callUnary(client, client.mergeContacts, request, opts);
        return { ...mergeJson(res.merge), survivor: toJson(record, res.contact) };
      },
    });
  };
  const mergeParams = z.strictObject({ id: uuidParam('merge id', EXAMPLE_MERGE_ID) });
  return [
    mergeRoute(companyRecord),
    mergeRoute(contactRecord),
    defineRoute({
      method: 'get',
      path: '/merges/:id',
      operationId: 'getMerge',
      summary: 'Get a merge',
      description: 'Who merged what into which survivor, until when it can be undone, and — once undone — what the undo kept.',
      tag: 'merges',
      roles: READ_ROLES,
      params: mergeParams,
      response: json(mergeSchema, { description: 'the merge' }),
      problems: { '404': 'no such merge (or another organization’s)' },
      handler: async ({ params }) => mergeJson((await callUnary(client, client.getMerge, { id: params.id }, { deadlineMs })).merge),
    }),
    defineRoute({
      method: 'post',
      path: '/merges/:id/undo',
      operationId: 'undoMerge',
      summary: 'Undo a merge',
      description:
        'Within 30 days, once: the merged records come back exactly as they were; the survivor’s and moved records’ fields the merge changed get their earlier values back ' +
        'unless they changed since (then they keep the later value and are listed in conflicts; custom fields key by key). ' +
        'A restored reference (companyId, referredById, parentCompanyId) to a record deleted or merged since, or a parent that would now close a hierarchy cycle, ' +
        'is cleared and listed in conflicts; so is a primary flag whose company has another primary contact now. ' +
        'Retry-safe with Idempotency-Key. Emits `unmerged`. crm-admin and crm-manager.',
      tag: 'merges',
      roles: MERGE_ROLES,
      params: mergeParams,
      idempotency: backend.idempotency,
      response: json(mergeSchema, { description: 'the merge, undone' }),
      problems: {
        '404': 'no such merge (or another organization’s)',
        '409':
          'undone already (MERGE_ALREADY_UNDONE), older than 30 days (MERGE_UNDO_EXPIRED), the survivor is gone (MERGE_SURVIVOR_GONE), or a unique value is taken since (MERGE_UNDO_CONFLICT)',
        '503': 'collided with concurrent writes repeatedly (WRITE_CONFLICT): retry',
      },
      handler: async ({ params }) => mergeJson((await callUnary(client, client.undoMerge, { mergeId: params.id }, { deadlineMs })).merge),
    }),
  ];
}
