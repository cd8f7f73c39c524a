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
import { assertCanWrite, containsPattern, formatAmount } from '../shared/record.rules.ts';
import { writeWithEvents, type WriteOutcome } from '../shared/unit-of-work.ts';
import { CompanyEntity, type Company } from './company.entity.ts';
import { companyCreated, companyDeleted, companyUpdated } from './company.events.ts';
import { assertNoHierarchyCycle, COMPANY_FIELDS, normalizeCompanyFields, type CompanyField, type CompanyFields } from './company.rules.ts';

/** Filters and paging of {@link CompanyService.list}. */
export interface CompanyListQuery {
  pageSize?: number | undefined;
  cursor?: string | undefined;
  query?: string | undefined;
  industry?: string | undefined;
  parentCompanyId?: string | undefined;
}

/**
 * Company use cases. Each write runs in one transaction that stores the change and its event in
 * the outbox (architecture: "Every state change and the event describing it commit in one
 * transaction"). All reads and writes are scoped to the caller's organization by the tenant
 * filter; another tenant's id is simply not found.
 */
export class CompanyService {
  readonly #orm: Orm;

  constructor(orm: Orm) {
    this.#orm = orm;
  }

  /** Creates a company owned by `ownerId` (default: the caller). Errors: 400, 403, 409 domain taken, 422 parent missing. */
  async create(input: CompanyFields): Promise<Company> {
    const ctx = requireContext();
    const fields = normalizeCompanyFields(input);
    const ownerId = fields.ownerId ?? ctx.userId;
    assertCanWrite(ctx, ownerId);
    return this.#write(async (em) => {
      if (fields.parentCompanyId) await this.#requireParent(em, fields.parentCompanyId);
      const now = new Date();
      const company = em.create(CompanyEntity, {
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
      return { result: company, events: [() => companyCreated(company)] };
    });
  }

  /** The live company `id` of the caller's organization; NOT_FOUND otherwise. */
  async get(id: string): Promise<Company> {
    const company = isUuid(id) ? await requestEntityManager(this.#orm).findOne(CompanyEntity, { id }) : null;
    if (!company) throw notFound('company', id);
    return company;
  }

  /** One page of live companies ordered by id (creation order), keyset-paged. */
  async list(q: CompanyListQuery): Promise<{ items: Company[]; nextCursor: string | undefined }> {
    if (q.parentCompanyId && !isUuid(q.parentCompanyId)) return { items: [], nextCursor: undefined };
    const em = requestEntityManager(this.#orm);
    return keysetPageById(q, (after, limit) =>
      em.find(
        CompanyEntity,
        {
          ...(after ? { id: { $gt: after } } : {}),
          ...(q.query ? { name: { $ilike: containsPattern(q.query) } } : {}),
          ...(q.industry ? { industry: q.industry } : {}),
          ...(q.parentCompanyId ? { parentCompanyId: q.parentCompanyId } : {}),
        },
        { orderBy: { id: 'asc' }, limit },
      ),
    );
  }

  /**
   * Writes the fields named in `mask` (others untouched; absent value = cleared). With
   * `expectedVersion` a stale version fails with VERSION_MISMATCH (412). Emits
   * `crm.contacts.company.updated` with the changed fields, or nothing when nothing changed.
   */
  async update(id: string, input: CompanyFields, mask: readonly CompanyField[], expectedVersion?: number): Promise<Company> {
    const ctx = requireContext();
    return this.#write(async (em) => {
      const company = isUuid(id) ? await em.findOne(CompanyEntity, { id }) : null;
      if (!company) throw notFound('company', id);
      if (expectedVersion !== undefined && company.version !== expectedVersion)
        throw versionMismatch('company', String(expectedVersion), String(company.version));
      assertCanWrite(ctx, company.ownerId);
      const before = normalizeCompanyFields(fieldsOf(company));
      const merged = normalizeCompanyFields({ ...before, ...pick(input, mask) });
      merged.ownerId ??= company.ownerId;
      if (mask.includes('ownerId')) assertCanWrite(ctx, merged.ownerId);
      if (mask.includes('parentCompanyId') && merged.parentCompanyId) {
        await this.#requireParent(em, merged.parentCompanyId);
        assertNoHierarchyCycle(company.id, await ancestorsOf(em, merged.parentCompanyId));
      }
      const changed = COMPANY_FIELDS.filter((k) => JSON.stringify(before[k]) !== JSON.stringify(merged[k]));
      if (changed.length === 0) return { result: company, events: [] };
      em.assign(company, { ...columnsOf(merged), ownerId: merged.ownerId, updatedAt: new Date() });
      return { result: company, events: [() => companyUpdated(company, changed)] };
    });
  }

  /** Soft-deletes; refuses (422 COMPANY_HAS_SUBSIDIARIES) while live subsidiaries point at it. */
  async delete(id: string, expectedVersion?: number): Promise<void> {
    const ctx = requireContext();
    await this.#write(async (em) => {
      const company = isUuid(id) ? await em.findOne(CompanyEntity, { id }) : null;
      if (!company) throw notFound('company', id);
      if (expectedVersion !== undefined && company.version !== expectedVersion)
        throw versionMismatch('company', String(expectedVersion), String(company.version));
      assertCanWrite(ctx, company.ownerId);
      if ((await em.count(CompanyEntity, { parentCompanyId: id })) > 0) {
        throw new DomainError('rule_violation', 'COMPANY_HAS_SUBSIDIARIES', 'delete or re-parent its subsidiaries first');
      }
      company.deletedAt = new Date();
      company.updatedAt = company.deletedAt;
      return { result: undefined, events: [() => companyDeleted(company.id)] };
    });
  }

  async #requireParent(em: EntityManager, parentId: string): Promise<void> {
    if (!isUuid(parentId) || (await em.count(CompanyEntity, { id: parentId })) === 0) {
      throw new DomainError('rule_violation', 'PARENT_COMPANY_NOT_FOUND', `parent company ${parentId} not found`, [
        { field: 'parentCompanyId', message: 'no such company' },
      ]);
    }
  }

  #write<T>(work: (em: EntityManager) => Promise<WriteOutcome<T>>): Promise<T> {
    return writeWithEvents(
      this.#orm,
      work,
      () =>
        new DomainError('conflict', 'COMPANY_DOMAIN_TAKEN', 'another company already has this domain', [
          { field: 'domain', message: 'already used by another company' },
        ]),
    );
  }
}

/** Ids of `companyId` and its ancestors, nearest first (bounded at 64 levels). */
async function ancestorsOf(em: EntityManager, companyId: string): Promise<string[]> {
  const rows = await em.execute<{ id: string }[]>(
    `with recursive up(id, parent, depth) as (
       select id, parent_company_id, 0 from contacts.company where id = ? and organization_id = ?
       union all
       select c.id, c.parent_company_id, up.depth + 1 from contacts.company c join up on c.id = up.parent where up.depth < 64 and c.organization_id = ?
     ) select id from up order by depth`,
    [companyId, requireContext().organizationId, requireContext().organizationId],
  );
  return rows.map((r) => r.id);
}

function pick(input: CompanyFields, mask: readonly CompanyField[]): Partial<CompanyFields> {
  const out: Partial<CompanyFields> = {};
  for (const key of mask) (out as Record<string, unknown>)[key] = input[key];
  return out;
}

/** Entity → field view. */
export function fieldsOf(c: Company): CompanyFields {
  return {
    name: c.name,
    domain: c.domain ?? undefined,
    industry: c.industry ?? undefined,
    parentCompanyId: c.parentCompanyId ?? undefined,
    employees: c.employees ?? undefined,
    annualRevenue:
      c.annualRevenueAmount && c.annualRevenueCurrency ? { amount: formatAmount(c.annualRevenueAmount), currency: c.annualRevenueCurrency } : undefined,
    address: {
      street: c.addressStreet ?? undefined,
      city: c.addressCity ?? undefined,
      region: c.addressRegion ?? undefined,
      postalCode: c.addressPostalCode ?? undefined,
      country: c.addressCountry ?? undefined,
    },
    ownerId: c.ownerId,
  };
}

/** Field view → column values (null for cleared). */
function columnsOf(f: CompanyFields) {
  return {
    name: f.name,
    domain: f.domain ?? null,
    industry: f.industry ?? null,
    parentCompanyId: f.parentCompanyId ?? null,
    employees: f.employees ?? null,
    annualRevenueAmount: f.annualRevenue?.amount ?? null,
    annualRevenueCurrency: f.annualRevenue?.currency ?? null,
    addressStreet: f.address?.street ?? null,
    addressCity: f.address?.city ?? null,
    addressRegion: f.address?.region ?? null,
    addressPostalCode: f.address?.postalCode ?? null,
    addressCountry: f.address?.country ?? null,
  };
}
