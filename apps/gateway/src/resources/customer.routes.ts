import {
  companyRecord,
  contactRecord,
  contactsV1,
  contactV1,
  EXAMPLE_RECORD_ID,
  fieldExample,
  fieldOutputSchema,
  fromProto,
  type RecordDeclaration,
} from '@crm/contracts';
import { callUnary } from '@crm/platform';
import { z } from 'zod';
import { READ_ROLES, WRITE_ROLES } from '../auth/tenant.ts';
import type { BackendContext } from '../backends.ts';
import { listQueryBase, type Page } from '../http/crud.router.ts';
import { defineRoute, json, noContent, type Route } from '../http/route.ts';
import { recordSchemas, toJson, type RecordJson } from './record.resource.ts';

/**
 * The customer-master routes beyond the record resources: a company's hierarchy, a contact's
 * referrals, and assigning tags to companies and contacts one at a time. Each is one gRPC call to
 * contacts-svc, which scopes it to the caller's organization (another organization's ids: 404, or
 * 422 for its tags).
 */

const companyFields = companyRecord.fields;
const summaryField = <K extends 'name' | 'domain' | 'accountType' | 'status' | 'parentCompanyId'>(key: K) =>
  fieldOutputSchema(companyFields[key]).meta({ examples: [fieldExample(key, companyFields[key])] });

/** A company as a hierarchy shows it (component `CompanySummary`). */
const companySummarySchema = z
  .object({
    id: z.uuid().meta({ description: 'company id (UUIDv7)', examples: [EXAMPLE_RECORD_ID] }),
    name: summaryField('name'),
    domain: summaryField('domain'),
    accountType: summaryField('accountType'),
    status: summaryField('status'),
    parentCompanyId: summaryField('parentCompanyId'),
  })
  .meta({ id: 'CompanySummary', description: 'a company as a hierarchy shows it' });

/** A company summary as served. */
type CompanySummaryJson = z.infer<typeof companySummarySchema>;

/** A subsidiary with its own subsidiaries. */
interface CompanyHierarchyNodeJson {
  company: CompanySummaryJson;
  subsidiaries: CompanyHierarchyNodeJson[];
}

/** A subsidiary and its subsidiaries, recursively (component `CompanyHierarchyNode`). */
const companyHierarchyNodeSchema: z.ZodType<CompanyHierarchyNodeJson> = z
  .object({
    company: companySummarySchema,
    get subsidiaries(): z.ZodArray<z.ZodType<CompanyHierarchyNodeJson>> {
      return z.array(companyHierarchyNodeSchema).meta({ description: 'its subsidiaries; empty at the depth asked for' });
    },
  })
  .meta({ id: 'CompanyHierarchyNode', description: 'a subsidiary and its own subsidiaries' });

/** `GET /companies/{id}/hierarchy` (component `CompanyHierarchy`). */
const companyHierarchySchema = z
  .object({
    ancestors: z.array(companySummarySchema).meta({ description: 'the parent, its parent, … up to the root (nearest first)' }),
    company: companySummarySchema,
    subsidiaries: z.array(companyHierarchyNodeSchema).meta({ description: 'direct subsidiaries, each with its own, down to depth; siblings by name' }),
    truncated: z.boolean().meta({ description: 'true when there were more than 1,000 subsidiaries within depth (the deepest level is then partial)' }),
  })
  .meta({ id: 'CompanyHierarchy', description: 'a company with its ancestors and its subsidiaries' });

/** A company hierarchy as served. */
type CompanyHierarchyJson = z.infer<typeof companyHierarchySchema>;

const EXAMPLE_PARENT_ID = '0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f01';
const EXAMPLE_SUBSIDIARY_ID = '0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f20';
const HIERARCHY_EXAMPLE: CompanyHierarchyJson = {
  ancestors: [{ id: EXAMPLE_PARENT_ID, name: 'Acme Holding', domain: 'acme-holding.com', accountType: 'customer', status: 'active', parentCompanyId: null }],
  company: { id: EXAMPLE_RECORD_ID, name: 'Acme Europe', domain: 'acme.eu', accountType: 'customer', status: 'active', parentCompanyId: EXAMPLE_PARENT_ID },
  subsidiaries: [
    {
      company: {
        id: EXAMPLE_SUBSIDIARY_ID,
        name: 'Acme France',
        domain: 'acme.fr',
        accountType: 'customer',
        status: 'active',
        parentCompanyId: EXAMPLE_RECORD_ID,
      },
      subsidiaries: [],
    },
  ],
  truncated: false,
};

/** The path parameter of a record; not checked as a UUID here: the service answers 404 for a malformed id. */
const id = z
  .string()
  .max(100)
  .meta({ format: 'uuid', description: 'record id (UUIDv7)', examples: [EXAMPLE_RECORD_ID] });
const tagId = z
  .string()
  .max(100)
  .meta({ format: 'uuid', description: 'tag id (see /api/v1/tags)', examples: ['0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f30'] });
const recordParams = z.strictObject({ id });
const tagParams = z.strictObject({ id, tagId });
const hierarchyQuery = z.strictObject({
  depth: z.coerce
    .number()
    .int()
    .min(1)
    .max(10)
    .optional()
    .meta({ description: 'levels of subsidiaries, 1..10 (default 3)', examples: [3] }),
});

/** proto CompanySummary → JSON. */
function summaryJson(s: contactsV1.CompanySummary | undefined): CompanySummaryJson {
  if (!s) throw new Error('the service returned no company summary');
  return {
    id: s.id,
    name: s.name,
    domain: s.domain || null,
    accountType: fromProto(companyFields.accountType, s.accountType),
    status: fromProto(companyFields.status, s.status),
    parentCompanyId: s.parentCompanyId || null,
  };
}

function nodeJson(n: contactsV1.CompanyHierarchyNode): CompanyHierarchyNodeJson {
  return { company: summaryJson(n.company), subsidiaries: n.subsidiaries.map(nodeJson) };
}

/** PUT and DELETE `/<plural>/{id}/tags/{tagId}` of a record, over its assign/unassign calls. */
function tagRoutes(
  record: RecordDeclaration,
  plural: string,
  assign: (id: string, tagId: string, expectedVersion: string | undefined) => Promise<unknown>,
  unassign: (id: string, tagId: string, expectedVersion: string | undefined) => Promise<unknown>,
): Route[] {
  const one = record.name.charAt(0).toUpperCase() + record.name.slice(1);
  const roles = record.writeRoles ?? WRITE_ROLES;
  return [
    defineRoute({
      method: 'put',
      path: `/${plural}/:id/tags/:tagId`,
      operationId: `assign${one}Tag`,
      summary: `Assign a tag to a ${record.name}`,
      description:
        `Adds the tag to the ${record.name}’s tags (the version goes up; an \`updated\` event names the field tags). ` +
        'Idempotent: an assigned tag changes nothing (same version, no event). With If-Match only if nobody changed it since (else 412). ' +
        `Roles as for changing the ${record.name} (crm-rep: their own).`,
      tag: plural,
      roles,
      params: tagParams,
      ifMatch: true,
      response: json(recordSchemas(record).resource as z.ZodType<RecordJson>, { description: `the ${record.name} with the tag`, etag: (r) => r.version }),
      problems: { '404': 'not found (or another organization’s)', '422': 'no such tag in the organization (TAG_NOT_FOUND)' },
      handler: async ({ params, expectedVersion }) => toJson(record, await assign(params.id, params.tagId, expectedVersion)),
    }),
    defineRoute({
      method: 'delete',
      path: `/${plural}/:id/tags/:tagId`,
      operationId: `unassign${one}Tag`,
      summary: `Remove a tag from a ${record.name}`,
      description:
        `Removes the tag from the ${record.name}’s tags (an \`updated\` event names the field tags). ` +
        'Idempotent: a tag not assigned changes nothing (204 too, no event). With If-Match only if nobody changed it since (else 412).',
      tag: plural,
      roles,
      params: tagParams,
      ifMatch: true,
      response: noContent('the tag is not assigned (any more)'),
      problems: { '404': 'not found (or another organization’s)' },
      handler: async ({ params, expectedVersion }) => {
        await unassign(params.id, params.tagId, expectedVersion);
      },
    }),
  ];
}

/**
 * The routes of this file on the contacts backend: `GET /companies/{id}/hierarchy`,
 * `GET /contacts/{id}/referrals`, and `PUT`/`DELETE` `/companies/{id}/tags/{tagId}` and
 * `/contacts/{id}/tags/{tagId}`.
 */
export function customerRoutes(backend: BackendContext): Route[] {
  const { deadlineMs } = backend;
  const companies = backend.client(contactsV1.CompanyServiceClient);
  const contacts = backend.client(contactV1.ContactServiceClient);
  const contactPage = z.object({
    data: z.array(recordSchemas(contactRecord).resource as z.ZodType<RecordJson>),
    nextCursor: z
      .string()
      .nullable()
      .meta({ description: 'pass as cursor for the next page; null on the last', examples: ['MDE5M2E1YjItN2M0ZQ'] }),
  });
  return [
    defineRoute({
      method: 'get',
      path: '/companies/:id/hierarchy',
      operationId: 'getCompanyHierarchy',
      summary: 'Get a company’s hierarchy',
      description:
        'The company, its ancestors up to the root (nearest first) and its subsidiaries as a tree down to depth levels; live companies of the ' +
        'caller’s organization only. At most 1,000 subsidiaries (then truncated is true).',
      tag: 'companies',
      roles: READ_ROLES,
      params: recordParams,
      query: hierarchyQuery,
      response: json(companyHierarchySchema, { description: 'the hierarchy', example: HIERARCHY_EXAMPLE }),
      problems: { '404': 'not found (or another organization’s)' },
      handler: async ({ params, query }) => {
        const h = await callUnary(companies, companies.getCompanyHierarchy, { id: params.id, depth: query.depth ?? 0 }, { deadlineMs });
        return { ancestors: h.ancestors.map(summaryJson), company: summaryJson(h.company), subsidiaries: h.subsidiaries.map(nodeJson), truncated: h.truncated };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/contacts/:id/referrals',
      operationId: 'listContactReferrals',
      summary: 'List the contacts a contact referred',
      description: 'Contacts whose referredById is this contact, keyset-paged in creation order (at most 200 per page).',
      tag: 'contacts',
      roles: READ_ROLES,
      params: recordParams,
      query: listQueryBase,
      response: json(contactPage, { description: 'one page; pass nextCursor as cursor for the next' }),
      problems: { '404': 'not found (or another organization’s)' },
      handler: async ({ params, query }): Promise<Page<RecordJson>> => {
        const res = await callUnary(
          contacts,
          contacts.listContactReferrals,
          { id: params.id, pageSize: query.limit ?? 0, pageToken: query.cursor ?? '' },
          { deadlineMs },
        );
        return { data: res.contacts.map((c) => toJson(contactRecord, c)), nextCursor: res.nextPageToken || null };
      },
    }),
    ...tagRoutes(
      companyRecord,
      'companies',
      async (id, tagId, expectedVersion) => (await callUnary(companies, companies.assignCompanyTag, { id, tagId, expectedVersion }, { deadlineMs })).company,
      async (id, tagId, expectedVersion) => (await callUnary(companies, companies.unassignCompanyTag, { id, tagId, expectedVersion }, { deadlineMs })).company,
    ),
    ...tagRoutes(
      contactRecord,
      'contacts',
      async (id, tagId, expectedVersion) => (await callUnary(contacts, contacts.assignContactTag, { id, tagId, expectedVersion }, { deadlineMs })).contact,
      async (id, tagId, expectedVersion) => (await callUnary(contacts, contacts.unassignContactTag, { id, tagId, expectedVersion }, { deadlineMs })).contact,
    ),
  ];
}
