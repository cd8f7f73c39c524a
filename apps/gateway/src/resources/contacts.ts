import { type contactV1 } from '@crm/contracts';
import { callUnary } from '@crm/platform';
import { z } from 'zod';
import { listQueryBase, type CrudSpec } from '../http/crud.router.ts';
import { auditShape, iso } from './common.schemas.ts';

const fields = {
  firstName: z.string().trim().max(100),
  lastName: z.string().trim().max(100),
  email: z.email().max(254).nullish(),
  phone: z.string().max(30).nullish(),
  jobTitle: z.string().max(200).nullish(),
  companyId: z.uuid().nullish(),
  ownerId: z.string().min(1).max(100).nullish(),
};

export const contactCreateSchema = z
  .strictObject({ ...fields, firstName: fields.firstName.default(''), lastName: fields.lastName.default('') })
  .refine((c) => c.firstName !== '' || c.lastName !== '', { message: 'a first or last name is required', path: ['lastName'] })
  .meta({ id: 'ContactCreate' });
export const contactPatchSchema = z.strictObject(fields).partial().meta({ id: 'ContactPatch', description: 'fields to change; null clears' });
export const contactSchema = z
  .object({
    id: z.uuid(),
    firstName: z.string(),
    lastName: z.string(),
    email: z.string().nullable(),
    phone: z.string().nullable(),
    jobTitle: z.string().nullable(),
    companyId: z.uuid().nullable(),
    ...auditShape,
  })
  .meta({ id: 'Contact' });
export const contactQuerySchema = listQueryBase.extend({
  q: z.string().max(200).optional().describe('case-insensitive substring of first name, last name or email'),
  companyId: z.uuid().optional(),
});

export type ContactJson = z.infer<typeof contactSchema>;
type ContactBody = z.infer<typeof contactPatchSchema>;

const PROTO_NAME: Record<keyof typeof fields, string> = {
  firstName: 'first_name',
  lastName: 'last_name',
  email: 'email',
  phone: 'phone',
  jobTitle: 'job_title',
  companyId: 'company_id',
  ownerId: 'owner_id',
};

function toMessage(id: string, b: ContactBody): contactV1.Contact {
  return {
    id,
    firstName: b.firstName ?? '',
    lastName: b.lastName ?? '',
    email: b.email ?? '',
    phone: b.phone ?? '',
    jobTitle: b.jobTitle ?? '',
    companyId: b.companyId ?? '',
    ownerId: b.ownerId ?? '',
  };
}

/** proto message → REST representation. */
export function toContactJson(m: contactV1.Contact | undefined): ContactJson {
  if (!m) throw new Error('contacts-svc returned no contact');
  return {
    id: m.id,
    firstName: m.firstName,
    lastName: m.lastName,
    email: m.email || null,
    phone: m.phone || null,
    jobTitle: m.jobTitle || null,
    companyId: m.companyId || null,
    ownerId: m.ownerId,
    createdBy: m.audit?.createdBy ?? '',
    createdAt: iso(m.audit?.createTime),
    updatedAt: iso(m.audit?.updateTime),
    version: Number(m.audit?.version ?? 0),
  };
}

/** `/api/v1/contacts` over contacts-svc's ContactService. */
export function contactsResource(
  client: contactV1.ContactServiceClient,
  deadlineMs: number,
): CrudSpec<ContactJson, z.infer<typeof contactCreateSchema>, ContactBody, z.infer<typeof contactQuerySchema>> {
  const opts = { deadlineMs };
  return {
    plural: 'contacts',
    singular: 'contact',
    schemas: { resource: contactSchema, create: contactCreateSchema, patch: contactPatchSchema, query: contactQuerySchema },
    create: async (body) => toContactJson((await callUnary(client, client.createContact, { contact: toMessage('', body) }, opts)).contact),
    get: async (id) => toContactJson((await callUnary(client, client.getContact, { id }, opts)).contact),
    list: async (q) => {
      const res = await callUnary(
        client,
        client.listContacts,
        { pageSize: q.limit ?? 0, pageToken: q.cursor ?? '', query: q.q ?? '', companyId: q.companyId ?? '' },
        opts,
      );
      return { data: res.contacts.map(toContactJson), nextCursor: res.nextPageToken || null };
    },
    update: async (id, body, changed, expectedVersion) => {
      const updateMask = changed.map((f) => PROTO_NAME[f as keyof typeof fields]);
      const res = await callUnary(client, client.updateContact, { contact: toMessage(id, body), updateMask, expectedVersion }, opts);
      return toContactJson(res.contact);
    },
    remove: async (id, expectedVersion) => {
      await callUnary(client, client.deleteContact, { id, expectedVersion }, opts);
    },
  };
}
