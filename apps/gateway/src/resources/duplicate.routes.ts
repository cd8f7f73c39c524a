import {
  companyRecord,
  contactRecord,
  contactsV1,
  contactV1,
  duplicateV1,
  EXAMPLE_RECORD_ID,
  pascalCase,
  valuesMessage,
  type RecordDeclaration,
} from '@crm/contracts';
import { callUnary, DomainError, isDomainError, type Role } from '@crm/platform';
import { z } from 'zod';
import { READ_ROLES, WRITE_ROLES } from '../auth/tenant.ts';
import type { BackendContext } from '../backends.ts';
import { listQueryBase } from '../http/crud.router.ts';
import { problem, problemOf, type Problem } from '../http/problem.ts';
import { defineRoute, json, ProblemError, type Route } from '../http/route.ts';
import { recordRoutes, recordSchemas, toJson, type RecordJson } from './record.resource.ts';

/**
 * Duplicate detection over REST (contacts-svc `DuplicateService` and `MergeService.GetMergedRecord`):
 *
 * - `POST /companies` and `POST /contacts` check for likely duplicates: a draft whose best candidate
 *   scores at least the organization's threshold is not created — 409 `DUPLICATE_CANDIDATES` with
 *   `threshold` and `candidates` (`[{ id, score, reasons: [{ rule, weight }] }]`) in the problem —
 *   unless `?allowDuplicate=true`. (The batch endpoints check too; their problems name the
 *   matching fields, without the candidates list.)
 * - `GET /companies/{id}` and `/contacts/{id}` of a merged record: 404 `COMPANY_MERGED` /
 *   `CONTACT_MERGED` with `mergedIntoId` (the live record it ended up in) and `mergeId` in the problem.
 * - `GET /companies/duplicates`, `/contacts/duplicates`: likely duplicate pairs, highest score first.
 * - `POST /companies:findDuplicates`, `/contacts:findDuplicates`: candidates for a draft (no write).
 * - `GET` / `PUT /duplicate-settings`: the organization's threshold (PUT: crm-admin).
 */

type CustomerObjectName = 'company' | 'contact';
const RECORDS: Record<CustomerObjectName, RecordDeclaration> = { company: companyRecord, contact: contactRecord };
const PROTO_OBJECT: Record<CustomerObjectName, duplicateV1.CustomerObject> = {
  company: duplicateV1.CustomerObject.CUSTOMER_OBJECT_COMPANY,
  contact: duplicateV1.CustomerObject.CUSTOMER_OBJECT_CONTACT,
};

const reasonSchema = z
  .object({
    rule: z.enum(['email', 'phone', 'domain', 'name']).meta({ description: 'the matching rule that fired', examples: ['email'] }),
    weight: z
      .int()
      .min(1)
      .max(100)
      .meta({ description: 'points it gave the score', examples: [80] }),
  })
  .meta({ id: 'DuplicateReason', description: 'a matching rule that fired and its weight' });

const candidateSchema = z
  .object({
    id: z.uuid().meta({ description: 'the existing record', examples: [EXAMPLE_RECORD_ID] }),
    score: z
      .int()
      .min(0)
      .max(100)
      .meta({ description: 'sum of the reasons’ weights, capped at 100', examples: [100] }),
    reasons: z.array(reasonSchema),
  })
  .meta({ id: 'DuplicateCandidate', description: 'an existing record likely the same as the draft' });

type CandidateJson = z.infer<typeof candidateSchema>;

const candidatesSchema = z
  .object({
    minScore: z
      .int()
      .min(1)
      .max(100)
      .meta({ description: 'the least score asked for (default: the organization’s threshold)', examples: [80] }),
    candidates: z.array(candidateSchema).meta({ description: 'best first (at most 50)' }),
  })
  .meta({ id: 'DuplicateCandidates', description: 'likely duplicates of a draft' });

const settingsSchema = z
  .object({
    threshold: z
      .int()
      .min(1)
      .max(100)
      .meta({ description: 'a pair scoring at least this is a likely duplicate (default 80)', examples: [80] }),
    updatedAt: z.iso.datetime().nullable().meta({ description: 'when an admin last set it; null while the default applies' }),
    updatedBy: z.string().nullable().meta({ description: 'Keycloak user id of that admin' }),
  })
  .meta({ id: 'DuplicateSettings', description: 'the organization’s duplicate detection settings' });

const settingsBody = z
  .strictObject({
    threshold: z
      .int()
      .min(1)
      .max(100)
      .meta({ description: 'a pair scoring at least this is a likely duplicate', examples: [75] }),
  })
  .meta({ id: 'DuplicateSettingsUpdate', description: 'new duplicate detection settings' });

const minScore = z.coerce
  .number()
  .int()
  .min(1)
  .max(100)
  .optional()
  .meta({ description: 'least score 1..100 (default: the organization’s threshold)', examples: [80] });

const createQuery = z.strictObject({
  allowDuplicate: z
    .stringbool()
    .optional()
    .meta({ description: 'true: create even when likely duplicates exist (default false: 409 with the candidates)', examples: [true] }),
});

const id = z.string().meta({ format: 'uuid', description: 'record id (UUIDv7)', examples: [EXAMPLE_RECORD_ID] });

type ReasonJson = z.infer<typeof reasonSchema>;

function reasonJson(r: duplicateV1.DuplicateReason): ReasonJson {
  return { rule: r.rule as ReasonJson['rule'], weight: r.weight };
}

function candidateJson(c: duplicateV1.DuplicateCandidate): CandidateJson {
  return { id: c.recordId, score: c.score, reasons: c.reasons.map(reasonJson) };
}

function settingsJson(s: duplicateV1.DuplicateSettings | undefined): z.infer<typeof settingsSchema> {
  return { threshold: s?.threshold ?? 80, updatedAt: s?.updateTime ? s.updateTime.toISOString() : null, updatedBy: s?.updatedBy || null };
}

/**
 * The record routes of companies or contacts (recordRoutes) with their create and get replaced
 * by the duplicate-aware ones (see the module comment): same operation ids, paths, schemas and
 * conventions, plus `allowDuplicate` and the problems' extra members.
 */
export function duplicateAwareRecordRoutes(object: CustomerObjectName, backend: BackendContext): Route[] {
  const record = RECORDS[object];
  // mountRoutes puts the static paths (/<plural>/duplicates, /<plural>/export) before /<plural>/{id}
  const replaced = new Map([createRoute(object, backend), getRoute(object, backend)].map((r) => [r.operationId, r]));
  return recordRoutes(record, backend).map((r) => replaced.get(r.operationId) ?? r);
}

function createRoute(object: CustomerObjectName, backend: BackendContext): Route {
  const record = RECORDS[object];
  const client = backend.client(duplicateV1.DuplicateServiceClient);
  const schemas = recordSchemas(record);
  const plural = record.plural;
  return defineRoute({
    method: 'post',
    path: `/${plural}`,
    operationId: `create${pascalCase(record.name)}`,
    summary: `Create a ${record.name}`,
    description:
      'Answers 201 with Location and ETag. Unknown fields are refused (400). Retry-safe with Idempotency-Key. ' +
      `A likely duplicate of an existing ${record.name} (score at least the organization’s threshold, see /api/v1/duplicate-settings) is not created: ` +
      '409 `DUPLICATE_CANDIDATES` whose problem lists `threshold` and `candidates` (`id`, `score`, `reasons`); send `allowDuplicate=true` to create it anyway.',
    tag: plural,
    roles: (record.writeRoles ?? WRITE_ROLES) as readonly Role[],
    idempotency: backend.idempotency,
    query: createQuery,
    body: schemas.create as z.ZodType<Record<string, unknown>>,
    response: json(schemas.resource as z.ZodType<RecordJson>, { status: 201, etag: (r) => r.version, location: (r) => `/api/v1/${plural}/${r.id}` }),
    problems: {
      '409': 'a unique field is taken, or a likely duplicate exists (DUPLICATE_CANDIDATES with the candidates; allowDuplicate=true creates it anyway)',
      '422': 'business rule violated (e.g. a reference to no record of the organization)',
    },
    handler: async ({ query, body }) => {
      const message = { id: '', ...valuesMessage(record, body) };
      const allowDuplicate = query.allowDuplicate === true;
      const opts = { deadlineMs: backend.deadlineMs };
      const res =
        object === 'company'
          ? await callUnary(client, client.createCompanyWithDuplicateCheck, { company: message as never, allowDuplicate }, opts).then((r) => ({
              ...r,
              created: r.company,
            }))
          : await callUnary(client, client.createContactWithDuplicateCheck, { contact: message as never, allowDuplicate }, opts).then((r) => ({
              ...r,
              created: r.contact,
            }));
      if (res.created) return toJson(record, res.created);
      const conflict: Problem & { threshold: number; candidates: CandidateJson[] } = {
        ...problem(409, 'conflict', 'Conflict', {
          code: 'DUPLICATE_CANDIDATES',
          detail: `likely a duplicate of ${res.candidates.length} existing ${plural} (score ≥ ${res.threshold}); repeat with allowDuplicate=true to create it anyway`,
          instance: `/api/v1/${plural}`,
        }),
        threshold: res.threshold,
        candidates: res.candidates.map(candidateJson),
      };
      throw new ProblemError(conflict);
    },
  });
}

function getRoute(object: CustomerObjectName, backend: BackendContext): Route {
  const record = RECORDS[object];
  const merges = backend.client(duplicateV1.MergeServiceClient);
  const companies = backend.client(contactsV1.CompanyServiceClient);
  const contacts = backend.client(contactV1.ContactServiceClient);
  const schemas = recordSchemas(record);
  const plural = record.plural;
  const deadlineMs = backend.deadlineMs;
  const code = `${object.toUpperCase()}_MERGED`;
  return defineRoute({
    method: 'get',
    path: `/${plural}/:id`,
    operationId: `get${pascalCase(record.name)}`,
    summary: `Get a ${record.name}`,
    description:
      'The ETag is the version; send it back as If-Match when changing the record. Another organization’s record is 404. ' +
      `A ${record.name} merged into another is 404 \`${code}\` with \`mergedIntoId\` (the live record it went into) and \`mergeId\` in the problem.`,
    tag: plural,
    roles: READ_ROLES,
    params: z.strictObject({ id }),
    response: json(schemas.resource as z.ZodType<RecordJson>, { description: 'found', etag: (r) => r.version }),
    problems: { '404': `not found (or another organization’s; or merged: ${code} with mergedIntoId)` },
    handler: async ({ params }) => {
      try {
        const found =
          object === 'company'
            ? (await callUnary(companies, companies.getCompany, { id: params.id }, { deadlineMs })).company
            : (await callUnary(contacts, contacts.getContact, { id: params.id }, { deadlineMs })).contact;
        return toJson(record, found);
      } catch (error) {
        if (!isDomainError(error) || error.kind !== 'not_found') throw error;
        // only the 404 path asks where a merged record went
        const merged = await callUnary(merges, merges.getMergedRecord, { object: PROTO_OBJECT[object], id: params.id }, { deadlineMs }).catch((e: unknown) => {
          if (isDomainError(e) && e.kind === 'not_found') return undefined;
          throw e;
        });
        if (!merged) throw error;
        const detail = `${object} ${params.id} was merged into ${merged.mergedIntoId || 'a record that is gone too'}`;
        const gone: Problem & { mergedIntoId: string | null; mergeId: string | null } = {
          ...problemOf(new DomainError('not_found', code, detail), `/api/v1/${plural}/${params.id}`),
          mergedIntoId: merged.mergedIntoId || null,
          mergeId: merged.mergeId || null,
        };
        throw new ProblemError(gone);
      }
    },
  });
}

/**
 * `GET /<plural>/duplicates`, `POST /<plural>:findDuplicates` (companies and contacts) and
 * `GET`/`PUT /duplicate-settings`.
 */
export function duplicateRoutes(backend: BackendContext): Route[] {
  const client = backend.client(duplicateV1.DuplicateServiceClient);
  const deadlineMs = backend.deadlineMs;
  const perObject = (object: CustomerObjectName): Route[] => {
    const record = RECORDS[object];
    const plural = record.plural;
    const one = pascalCase(record.name);
    const resource = recordSchemas(record).resource as z.ZodType<RecordJson>;
    const pairSchema = z
      .object({
        score: z
          .int()
          .min(1)
          .max(100)
          .meta({ description: 'sum of the reasons’ weights, capped at 100', examples: [90] }),
        reasons: z.array(reasonSchema),
        records: z
          .array(resource)
          .length(2)
          .meta({ description: `the two ${plural}, as their endpoint serves them (lower id first)` }),
      })
      .meta({ id: `${one}DuplicatePair`, description: `two ${plural} likely the same` });
    const page = z.object({
      data: z.array(pairSchema),
      nextCursor: z
        .string()
        .nullable()
        .meta({ description: 'pass as cursor for the next page; null on the last', examples: ['eyJzIjoiOTAifQ'] }),
      minScore: z.int().meta({ description: 'the least score applied', examples: [80] }),
    });
    return [
      defineRoute({
        method: 'get',
        path: `/${plural}/duplicates`,
        operationId: `list${one}Duplicates`,
        summary: `List likely duplicate ${plural}`,
        description:
          `Pairs of live ${plural} scoring at least minScore (default: the organization’s threshold), highest score first, keyset-paged (at most 200 per page). ` +
          'Rules, weights and scores: see the README. Kept by a background scan: a change shows within about a second.',
        tag: plural,
        roles: READ_ROLES,
        query: listQueryBase.extend({ minScore }),
        response: json(page, { description: 'one page; pass nextCursor as cursor for the next' }),
        handler: async ({ query }) => {
          const res = await callUnary(
            client,
            client.listDuplicatePairs,
            { object: PROTO_OBJECT[object], minScore: query.minScore ?? 0, pageSize: query.limit ?? 0, pageToken: query.cursor ?? '' },
            { deadlineMs },
          );
          const byId = new Map((object === 'company' ? res.companies : res.contacts).map((m) => [(m as { id: string }).id, toJson(record, m)]));
          return {
            data: res.pairs.flatMap((p) => {
              const [a, b] = [byId.get(p.recordId), byId.get(p.duplicateId)];
              return a && b ? [{ score: p.score, reasons: p.reasons.map(reasonJson), records: [a, b] }] : [];
            }),
            nextCursor: res.nextPageToken || null,
            minScore: res.minScore,
          };
        },
      }),
      defineRoute({
        method: 'post',
        path: `/${plural}\\:findDuplicates`,
        operationId: `find${one}Duplicates`,
        summary: `Find likely duplicates of a draft ${record.name}`,
        description:
          `Live ${plural} likely the same as the ${record.name} in the body (the fields of a create, all optional), best first, scoring at least minScore ` +
          '(default: the organization’s threshold). Nothing is written. The same check a create runs.',
        tag: plural,
        roles: READ_ROLES,
        query: z.strictObject({ minScore }),
        body: recordSchemas(record).patch as z.ZodType<Record<string, unknown>>,
        response: json(candidatesSchema, { description: 'the candidates' }),
        handler: async ({ query, body }) => {
          const message = { id: '', ...valuesMessage(record, body) };
          const opts = { deadlineMs };
          const res =
            object === 'company'
              ? await callUnary(client, client.findCompanyDuplicates, { company: message as never, minScore: query.minScore ?? 0 }, opts)
              : await callUnary(client, client.findContactDuplicates, { contact: message as never, minScore: query.minScore ?? 0 }, opts);
          return { minScore: res.minScore, candidates: res.candidates.map(candidateJson) };
        },
      }),
    ];
  };
  return [
    ...perObject('company'),
    ...perObject('contact'),
    defineRoute({
      method: 'get',
      path: '/duplicate-settings',
      operationId: 'getDuplicateSettings',
      summary: 'Get the duplicate detection settings',
      description: 'The organization’s likely-duplicate threshold (80 until an admin sets one).',
      tag: 'duplicates',
      roles: READ_ROLES,
      response: json(settingsSchema, { description: 'the settings' }),
      handler: async () => settingsJson((await callUnary(client, client.getDuplicateSettings, {}, { deadlineMs })).settings),
    }),
    defineRoute({
      method: 'put',
      path: '/duplicate-settings',
      operationId: 'updateDuplicateSettings',
      summary: 'Set the duplicate detection settings',
      description: 'crm-admin only. Creates refuse likely duplicates scoring at least the threshold; duplicate lists default to it.',
      tag: 'duplicates',
      roles: ['crm-admin'],
      body: settingsBody,
      response: json(settingsSchema, { description: 'the settings now' }),
      handler: async ({ body }) =>
        settingsJson(
          (await callUnary(client, client.updateDuplicateSettings, { settings: { threshold: body.threshold, updatedBy: '' } }, { deadlineMs })).settings,
        ),
    }),
  ];
}
