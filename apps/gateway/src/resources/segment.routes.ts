import { companyRecord, contactRecord, EXAMPLE_RECORD_ID, fromProto, SEGMENT_CRITERIA_DESCRIPTION, segmentRecord, segmentV1, toProto } from '@crm/contracts';
import { callUnary } from '@crm/platform';
import { z } from 'zod';
import { READ_ROLES } from '../auth/tenant.ts';
import type { BackendContext } from '../backends.ts';
import { listQueryBase } from '../http/crud.router.ts';
import { defineRoute, json, noContent, type Route } from '../http/route.ts';
import { recordSchemas, toJson, type RecordJson } from './record.resource.ts';

/**
 * The segment routes beyond its record resource (`/api/v1/segments`, recordRoutes): members,
 * static membership and preview. Each is one gRPC call to contacts-svc, which scopes it to the
 * caller's organization (another organization's segment: 404; its records: 422). Members are
 * served as full records, exactly as `/api/v1/companies` and `/api/v1/contacts` serve them.
 */

const writeRoles = segmentRecord.writeRoles ?? [];
const uuidParam = (description: string) => z.string().meta({ format: 'uuid', description, examples: [EXAMPLE_RECORD_ID] });
const segmentParams = z.strictObject({ id: uuidParam('segment id (UUIDv7)') });
const memberParams = z.strictObject({ id: uuidParam('segment id (UUIDv7)'), recordId: uuidParam('company or contact id: the segment’s object') });
const objectSchema = z.enum(['company', 'contact']).meta({ description: 'the kind of record: company or contact' });

/** A member: a company or a contact as its own endpoint serves it. */
const memberSchema = z.union([recordSchemas(companyRecord).resource, recordSchemas(contactRecord).resource]) as z.ZodType<RecordJson>;

/** `GET /segments/{id}/members` (component `SegmentMembers`). */
export const segmentMembersSchema = z
  .object({
    object: objectSchema,
    data: z.array(memberSchema).meta({ description: 'live members in record id order: companies or contacts, as their endpoints serve them' }),
    nextCursor: z
      .string()
      .nullable()
      .meta({ description: 'pass as cursor for the next page; null on the last', examples: ['MDE5M2E1YjItN2M0ZQ'] }),
  })
  .meta({ id: 'SegmentMembers', description: 'one page of a segment’s members' });

/** `POST /segments/preview` body (component `SegmentPreviewRequest`). */
export const segmentPreviewRequestSchema = z
  .strictObject({
    object: objectSchema,
    criteria: z.record(z.string(), z.unknown()).meta({ description: SEGMENT_CRITERIA_DESCRIPTION }),
    limit: z.int().min(1).max(200).optional().meta({ description: 'size of the first page of members (default 50)' }),
  })
  .meta({
    id: 'SegmentPreviewRequest',
    description: 'criteria to evaluate without saving a segment',
    examples: [{ object: 'company', criteria: { all: [{ field: 'status', op: 'eq', value: 'active' }] }, limit: 10 }],
  });

/** `POST /segments/preview` answer (component `SegmentPreview`). */
export const segmentPreviewSchema = z
  .object({
    count: z
      .int()
      .min(0)
      .meta({ description: 'live records matching the criteria now', examples: [42] }),
    object: objectSchema,
    members: z.array(memberSchema).meta({ description: 'the first page of them, in record id order' }),
    nextCursor: z.string().nullable().meta({ description: 'non-null when more members match than the first page holds (pages: save the segment)' }),
  })
  .meta({ id: 'SegmentPreview', description: 'what a segment with these criteria would hold now' });

/** `GET /segments/{id}/members` query: `limit` 1..200 (default 50), `cursor`. */
const membersQuery = listQueryBase;

/** Members of a gRPC members/preview response as REST records. */
function membersJson(res: { object: segmentV1.SegmentObject; companies: unknown[]; contacts: unknown[] }): {
  object: 'company' | 'contact';
  data: RecordJson[];
} {
  const object = fromProto(segmentRecord.fields.object, res.object) === 'contact' ? 'contact' : 'company';
  return object === 'company'
    ? { object, data: res.companies.map((m) => toJson(companyRecord, m)) }
    : { object, data: res.contacts.map((m) => toJson(contactRecord, m)) };
}

/** The segment routes beyond the five record routes (see the module comment). */
export function segmentRoutes(backend: BackendContext): Route[] {
  const client = backend.client(segmentV1.SegmentServiceClient);
  const deadlineMs = backend.deadlineMs;
  return [
    defineRoute({
      method: 'get',
      path: '/segments/:id/members',
      operationId: 'listSegmentMembers',
      summary: 'List a segment’s members',
      description:
        'Dynamic segments are evaluated now (the live records matching the criteria); static ones list the records added to them that are still live. Keyset-paged by record id. 422 when a dynamic segment’s criteria no longer hold (a custom field was deleted).',
      tag: 'segments',
      roles: READ_ROLES,
      params: segmentParams,
      query: membersQuery,
      response: json(segmentMembersSchema, { description: 'one page; pass nextCursor as cursor for the next' }),
      problems: { '404': 'no such segment (or another organization’s)', '422': 'the dynamic segment’s criteria no longer hold' },
      handler: async ({ params, query }) => {
        const res = await callUnary(
          client,
          client.getSegmentMembers,
          { segmentId: params.id, pageSize: query.limit ?? 0, pageToken: query.cursor ?? '' },
          { deadlineMs },
        );
        return { ...membersJson(res), nextCursor: res.nextPageToken || null };
      },
    }),
    defineRoute({
      method: 'put',
      path: '/segments/:id/members/:recordId',
      operationId: 'addSegmentMember',
      summary: 'Add a record to a static segment',
      description:
        'Idempotent: adding a member again changes nothing. The record must be a live company or contact (the segment’s object) of the organization.',
      tag: 'segments',
      roles: writeRoles,
      params: memberParams,
      response: noContent('the record is a member'),
      problems: {
        '404': 'no such segment (or another organization’s)',
        '422': 'the segment is dynamic, or the record is no live record of its object in the organization',
      },
      handler: async ({ params }) => {
        await callUnary(client, client.addSegmentMember, { segmentId: params.id, recordId: params.recordId }, { deadlineMs });
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/segments/:id/members/:recordId',
      operationId: 'removeSegmentMember',
      summary: 'Remove a record from a static segment',
      description: 'Idempotent: removing a non-member changes nothing (it must still be a live record of the segment’s object in the organization).',
      tag: 'segments',
      roles: writeRoles,
      params: memberParams,
      response: noContent('the record is no member'),
      problems: {
        '404': 'no such segment (or another organization’s)',
        '422': 'the segment is dynamic, or the record is no live record of its object in the organization',
      },
      handler: async ({ params }) => {
        await callUnary(client, client.removeSegmentMember, { segmentId: params.id, recordId: params.recordId }, { deadlineMs });
      },
    }),
    defineRoute({
      method: 'post',
      path: '/segments/preview',
      operationId: 'previewSegment',
      summary: 'Preview segment criteria',
      description:
        'Evaluates criteria without saving anything: the number of live records matching now and the first page of them. Invalid criteria: 400 naming the path (e.g. `criteria.all.0.value`).',
      tag: 'segments',
      roles: READ_ROLES,
      body: segmentPreviewRequestSchema,
      response: json(segmentPreviewSchema, { description: 'count and first page' }),
      handler: async ({ body }) => {
        const request: segmentV1.PreviewSegmentRequest = {
          object: toProto(segmentRecord.fields.object, body.object) as segmentV1.SegmentObject,
          criteria: body.criteria,
          pageSize: body.limit ?? 0,
        };
        const res = await callUnary(client, client.previewSegment, request, { deadlineMs });
        const { object, data } = membersJson(res);
        return { count: Number(res.count), object, members: data, nextCursor: res.nextPageToken || null };
      },
    }),
  ];
}
