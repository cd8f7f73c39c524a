import { companyRecord, contactRecord } from '@crm/contracts';
import {
  decodeCursor,
  DomainError,
  encodeCursor,
  invalidCursor,
  isUuid,
  pageSize,
  RecordService,
  requestEntityManager,
  requireContext,
  type Orm,
  type RecordRow,
} from '@crm/platform';
import { CompanyEntity } from '../company/company.service.ts';
import { ContactEntity } from '../contact/contact.service.ts';
import type { DuplicateObject, DuplicateReason } from './duplicate.rules.ts';
import { duplicateThreshold } from './duplicate.settings.ts';

/** A stored pair of live records (recordId < duplicateId) with its score and reasons. */
export interface DuplicatePair {
  recordId: string;
  duplicateId: string;
  score: number;
  reasons: DuplicateReason[];
}

/** One page of pairs with the proto messages of their records (by id). */
export interface DuplicatePairPage {
  pairs: DuplicatePair[];
  records: Map<string, Record<string, unknown>>;
  nextCursor: string | undefined;
  minScore: number;
}

const TABLES: Record<DuplicateObject, string> = { company: 'contacts.company', contact: 'contacts.contact' };

/**
 * The pairs lists (`GET /companies/duplicates`, `/contacts/duplicates`): pairs of live records of
 * the caller's organization scoring at least `minScore` (default: the organization's threshold),
 * highest score first, then by the pair's ids (descending) — keyset-paged on (score, record id,
 * duplicate id) through `duplicate_pair_score_idx`, so a page costs the same at any depth. Pairs
 * come from the duplicate scan (duplicate.scan.ts), so a write shows within about a second; a
 * pair whose record was deleted or merged since is left out at once. The scan stores pairs scoring
 * at least 50 (duplicate.candidates.ts `PAIR_FLOOR`): a lower `minScore` lists from 50. Errors: INVALID_PAGE_SIZE,
 * INVALID_CURSOR, INVALID_ARGUMENT naming `minScore` (not 1..100).
 */
export class DuplicatePairs {
  readonly #orm: Orm;
  readonly #services: Record<DuplicateObject, RecordService<typeof companyRecord.fields> | RecordService<typeof contactRecord.fields>>;

  constructor(orm: Orm) {
    this.#orm = orm;
    // only their proto mapping is used: records are served as their own services serve them
    this.#services = { company: new RecordService(orm, companyRecord, CompanyEntity), contact: new RecordService(orm, contactRecord, ContactEntity) };
  }

  async list(
    object: DuplicateObject,
    q: { minScore?: number | undefined; pageSize?: number | undefined; cursor?: string | undefined },
  ): Promise<DuplicatePairPage> {
    const ctx = requireContext();
    const em = requestEntityManager(this.#orm);
    if (q.minScore !== undefined && (!Number.isInteger(q.minScore) || q.minScore < 1 || q.minScore > 100)) {
      throw new DomainError('invalid_argument', 'INVALID_LIST_QUERY', 'minScore must be a whole number 1..100', [
        { field: 'minScore', message: 'a whole number 1..100' },
      ]);
    }
    const minScore = q.minScore ?? (await duplicateThreshold(em, ctx.organizationId));
    const limit = pageSize(q.pageSize);
    const after = q.cursor ? decodePairCursor(q.cursor) : undefined;
    const table = TABLES[object];
    const rows = await em.execute<{ record_id: string; duplicate_id: string; score: number; reasons: DuplicateReason[] }[]>(
      `select p.record_id, p.duplicate_id, p.score, p.reasons from contacts.duplicate_pair p
       join ${table} a on a.id = p.record_id and a.organization_id = p.organization_id and a.deleted_at is null
       join ${table} b on b.id = p.duplicate_id and b.organization_id = p.organization_id and b.deleted_at is null
       where p.organization_id = ? and p.object = ? and p.score >= ?${after ? ' and (p.score, p.record_id, p.duplicate_id) < (?, ?::uuid, ?::uuid)' : ''}
       order by p.score desc, p.record_id desc, p.duplicate_id desc limit ?`,
      [ctx.organizationId, object, minScore, ...(after ? [after.score, after.recordId, after.duplicateId] : []), limit + 1],
    );
    const more = rows.length > limit;
    const pairs = rows.slice(0, limit).map((r) => ({ recordId: r.record_id, duplicateId: r.duplicate_id, score: r.score, reasons: r.reasons }));
    const last = pairs[pairs.length - 1];
    const ids = [...new Set(pairs.flatMap((p) => [p.recordId, p.duplicateId]))];
    const entity = object === 'company' ? CompanyEntity : ContactEntity;
    const found = ids.length ? await em.find(entity, { id: { $in: ids } }) : [];
    const service = this.#services[object];
    const records = new Map(found.map((row) => [row.id, service.toMessage(row as RecordRow<never>)]));
    return {
      pairs: pairs.filter((p) => records.has(p.recordId) && records.has(p.duplicateId)),
      records,
      nextCursor: more && last ? encodeCursor({ s: String(last.score), r: last.recordId, d: last.duplicateId }) : undefined,
      minScore,
    };
  }
}

/**
 * A pairs cursor `{ s, r, d }`: a score written as a whole number 0..100 (digits only, so neither
 * "1e2" nor "10000000000" reaches Postgres) and two UUIDs; anything else — tampered, another
 * list's — is INVALID_ARGUMENT `INVALID_CURSOR` (400).
 */
function decodePairCursor(token: string): { score: number; recordId: string; duplicateId: string } {
  const c = decodeCursor(token, ['s', 'r', 'd']);
  const score = /^\d{1,3}$/.test(String(c.s)) ? Number(c.s) : NaN;
  if (!Number.isInteger(score) || score < 0 || score > 100 || !isUuid(c.r) || !isUuid(c.d)) throw invalidCursor();
  return { score, recordId: c.r, duplicateId: c.d };
}
