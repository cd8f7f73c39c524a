import {
  DomainError,
  isUuid,
  keysetPageById,
  newId,
  notFound,
  requestEntityManager,
  requireContext,
  versionMismatch,
  type EntityManager,
  type Orm,
} from '@crm/platform';
import { CompanyEntity } from '../company/company.entity.ts';
import { assertCanWrite, containsPattern } from '../shared/record.rules.ts';
import { writeWithEvents, type WriteOutcome } from '../shared/unit-of-work.ts';
import { ContactEntity, type Contact } from './contact.entity.ts';
import { contactCreated, contactDeleted, contactUpdated } from './contact.events.ts';
import { CONTACT_FIELDS, normalizeContactFields, type ContactField, type ContactFields } from './contact.rules.ts';

/** Filters and paging of {@link ContactService.list}. */
export interface ContactListQuery {
  pageSize?: number | undefined;
  cursor?: string | undefined;
  query?: string | undefined;
  companyId?: string | undefined;
}

/** Contact use cases; same transaction/outbox and tenant rules as companies. */
export class ContactService {
  readonly #orm: Orm;

  constructor(orm: Orm) {
    this.#orm = orm;
  }

  /** Creates a contact. Errors: 400, 403, 409 email taken, 422 company missing. */
  async create(input: ContactFields): Promise<Contact> {
    const ctx = requireContext();
    const fields = normalizeContactFields(input);
    const ownerId = fields.ownerId ?? ctx.userId;
    assertCanWrite(ctx, ownerId);
    return this.#write(async (em) => {
      if (fields.companyId) await requireCompany(em, fields.companyId);
      const now = new Date();
      const contact = em.create(ContactEntity, {
        id: newId(),
        organizationId: ctx.organizationId,
        ...columnsOf(fields),
        ownerId,
        createdAt: now,
        updatedAt: now,
        createdBy: ctx.userId,
        version: 1,
        deletedAt: null,
      });
      return { result: contact, events: [() => contactCreated(contact)] };
    });
  }

  /** The live contact `id` of the caller's organization; NOT_FOUND otherwise. */
  async get(id: string): Promise<Contact> {
    const contact = isUuid(id) ? await requestEntityManager(this.#orm).findOne(ContactEntity, { id }) : null;
    if (!contact) throw notFound('contact', id);
    return contact;
  }

  /** One page of live contacts ordered by id, keyset-paged; `query` matches names and email. */
  async list(q: ContactListQuery): Promise<{ items: Contact[]; nextCursor: string | undefined }> {
    if (q.companyId && !isUuid(q.companyId)) return { items: [], nextCursor: undefined };
    const like = q.query ? containsPattern(q.query) : undefined;
    const em = requestEntityManager(this.#orm);
    return keysetPageById(q, (after, limit) =>
      em.find(
        ContactEntity,
        {
          ...(after ? { id: { $gt: after } } : {}),
          ...(like ? { $or: [{ firstName: { $ilike: like } }, { lastName: { $ilike: like } }, { email: { $ilike: like } }] } : {}),
          ...(q.companyId ? { companyId: q.companyId } : {}),
        },
        { orderBy: { id: 'asc' }, limit },
      ),
    );
  }

  /** Writes the fields in `mask`; see CompanyService.update for the version rule. */
  async update(id: string, input: ContactFields, mask: readonly ContactField[], expectedVersion?: number): Promise<Contact> {
    const ctx = requireContext();
    return this.#write(async (em) => {
      const contact = isUuid(id) ? await em.findOne(ContactEntity, { id }) : null;
      if (!contact) throw notFound('contact', id);
      if (expectedVersion !== undefined && contact.version !== expectedVersion)
        throw versionMismatch('contact', String(expectedVersion), String(contact.version));
      assertCanWrite(ctx, contact.ownerId);
      const before = normalizeContactFields(fieldsOf(contact));
      const merged = normalizeContactFields({ ...before, ...pick(input, mask) });
      merged.ownerId ??= contact.ownerId;
      if (mask.includes('ownerId')) assertCanWrite(ctx, merged.ownerId);
      if (mask.includes('companyId') && merged.companyId) await requireCompany(em, merged.companyId);
      const changed = CONTACT_FIELDS.filter((k) => before[k] !== merged[k]);
      if (changed.length === 0) return { result: contact, events: [] };
      em.assign(contact, { ...columnsOf(merged), ownerId: merged.ownerId, updatedAt: new Date() });
      return { result: contact, events: [() => contactUpdated(contact, changed)] };
    });
  }

  /** Soft-deletes the contact. */
  async delete(id: string, expectedVersion?: number): Promise<void> {
    const ctx = requireContext();
    await this.#write(async (em) => {
      const contact = isUuid(id) ? await em.findOne(ContactEntity, { id }) : null;
      if (!contact) throw notFound('contact', id);
      if (expectedVersion !== undefined && contact.version !== expectedVersion)
        throw versionMismatch('contact', String(expectedVersion), String(contact.version));
      assertCanWrite(ctx, contact.ownerId);
      contact.deletedAt = new Date();
      contact.updatedAt = contact.deletedAt;
      return { result: undefined, events: [() => contactDeleted(contact.id)] };
    });
  }

  #write<T>(work: (em: EntityManager) => Promise<WriteOutcome<T>>): Promise<T> {
    return writeWithEvents(
      this.#orm,
      work,
      () =>
        new DomainError('conflict', 'CONTACT_EMAIL_TAKEN', 'another contact already has this email', [
          { field: 'email', message: 'already used by another contact' },
        ]),
    );
  }
}

async function requireCompany(em: EntityManager, companyId: string): Promise<void> {
  if (!isUuid(companyId) || (await em.count(CompanyEntity, { id: companyId })) === 0) {
    throw new DomainError('rule_violation', 'COMPANY_NOT_FOUND', `company ${companyId} not found`, [{ field: 'companyId', message: 'no such company' }]);
  }
}

function pick(input: ContactFields, mask: readonly ContactField[]): Partial<ContactFields> {
  const out: Partial<ContactFields> = {};
  for (const key of mask) (out as Record<string, unknown>)[key] = input[key];
  return out;
}

function fieldsOf(c: Contact): ContactFields {
  return {
    firstName: c.firstName,
    lastName: c.lastName,
    email: c.email ?? undefined,
    phone: c.phone ?? undefined,
    jobTitle: c.jobTitle ?? undefined,
    companyId: c.companyId ?? undefined,
    ownerId: c.ownerId,
  };
}

function columnsOf(f: ContactFields) {
  return {
    firstName: f.firstName,
    lastName: f.lastName,
    email: f.email ?? null,
    phone: f.phone ?? null,
    jobTitle: f.jobTitle ?? null,
    companyId: f.companyId ?? null,
  };
}
