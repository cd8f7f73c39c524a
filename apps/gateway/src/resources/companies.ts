import { type contactsV1 } from '@crm/contracts';
import { callUnary } from '@crm/platform';
import { z } from 'zod';
import { listQueryBase, type CrudSpec } from '../http/crud.router.ts';
import { addressSchema, auditShape, iso, moneySchema } from './common.schemas.ts';

const fields = {
  name: z.string().trim().min(1).max(200),
  domain: z.string().max(253).nullish().describe('internet domain, e.g. acme.com; unique among live companies'),
  industry: z.string().max(100).nullish(),
  parentCompanyId: z.uuid().nullish().describe('the parent company (hierarchies)'),
  employees: z.int().min(0).nullish(),
  annualRevenue: moneySchema.nullish(),
  address: addressSchema.nullish(),
  ownerId: z.string().min(1).max(100).nullish().describe('Keycloak user id of the owner; default: the caller'),
};

export const companyCreateSchema = z.strictObject(fields).meta({ id: 'CompanyCreate' });
export const companyPatchSchema = z.strictObject(fields).partial().meta({ id: 'CompanyPatch', description: 'fields to change; null clears' });
export const companySchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    domain: z.string().nullable(),
    industry: z.string().nullable(),
    parentCompanyId: z.uuid().nullable(),
    employees: z.int().nullable(),
    annualRevenue: moneySchema.nullable(),
    address: addressSchema.nullable(),
    ...auditShape,
  })
  .meta({ id: 'Company' });
export const companyQuerySchema = listQueryBase.extend({
  q: z.string().max(200).optional().describe('case-insensitive substring of the name'),
  industry: z.string().max(100).optional(),
  parentCompanyId: z.uuid().optional(),
});

export type CompanyJson = z.infer<typeof companySchema>;
type CompanyBody = z.infer<typeof companyPatchSchema>;

const PROTO_NAME: Record<keyof typeof fields, string> = {
  name: 'name',
  domain: 'domain',
  industry: 'industry',
  parentCompanyId: 'parent_company_id',
  employees: 'employees',
  annualRevenue: 'annual_revenue',
  address: 'address',
  ownerId: 'owner_id',
};

/** REST body → proto message (null/absent → proto default). */
function toMessage(id: string, b: CompanyBody): contactsV1.Company {
  return {
    id,
    name: b.name ?? '',
    domain: b.domain ?? '',
    industry: b.industry ?? '',
    parentCompanyId: b.parentCompanyId ?? '',
    employees: b.employees ?? undefined,
    annualRevenue: b.annualRevenue ? { amount: b.annualRevenue.amount, currency: b.annualRevenue.currency } : undefined,
    address: b.address
      ? {
          street: b.address.street ?? '',
          city: b.address.city ?? '',
          region: b.address.region ?? '',
          postalCode: b.address.postalCode ?? '',
          country: b.address.country ?? '',
        }
      : undefined,
    ownerId: b.ownerId ?? '',
  };
}

/** proto message → REST representation. */
export function toCompanyJson(m: contactsV1.Company | undefined): CompanyJson {
  if (!m) throw new Error('contacts-svc returned no company');
  const a = m.address;
  return {
    id: m.id,
    name: m.name,
    domain: m.domain || null,
    industry: m.industry || null,
    parentCompanyId: m.parentCompanyId || null,
    employees: m.employees ?? null,
    annualRevenue: m.annualRevenue ? { amount: m.annualRevenue.amount, currency: m.annualRevenue.currency } : null,
    address: a
      ? { street: a.street || null, city: a.city || null, region: a.region || null, postalCode: a.postalCode || null, country: a.country || null }
      : null,
    ownerId: m.ownerId,
    createdBy: m.audit?.createdBy ?? '',
    createdAt: iso(m.audit?.createTime),
    updatedAt: iso(m.audit?.updateTime),
    version: Number(m.audit?.version ?? 0),
  };
}

/** `/api/v1/companies` over contacts-svc's CompanyService. */
export function companiesResource(
  client: contactsV1.CompanyServiceClient,
  deadlineMs: number,
): CrudSpec<CompanyJson, z.infer<typeof companyCreateSchema>, CompanyBody, z.infer<typeof companyQuerySchema>> {
  const opts = { deadlineMs };
  return {
    plural: 'companies',
    singular: 'company',
    schemas: { resource: companySchema, create: companyCreateSchema, patch: companyPatchSchema, query: companyQuerySchema },
    create: async (body) => toCompanyJson((await callUnary(client, client.createCompany, { company: toMessage('', body) }, opts)).company),
    get: async (id) => toCompanyJson((await callUnary(client, client.getCompany, { id }, opts)).company),
    list: async (q) => {
      const res = await callUnary(
        client,
        client.listCompanies,
        { pageSize: q.limit ?? 0, pageToken: q.cursor ?? '', query: q.q ?? '', industry: q.industry ?? '', parentCompanyId: q.parentCompanyId ?? '' },
        opts,
      );
      return { data: res.companies.map(toCompanyJson), nextCursor: res.nextPageToken || null };
    },
    update: async (id, body, changed, expectedVersion) => {
      const updateMask = changed.map((f) => PROTO_NAME[f as keyof typeof fields]);
      const res = await callUnary(client, client.updateCompany, { company: toMessage(id, body), updateMask, expectedVersion }, opts);
      return toCompanyJson(res.company);
    },
    remove: async (id, expectedVersion) => {
      await callUnary(client, client.deleteCompany, { id, expectedVersion }, opts);
    },
  };
}
