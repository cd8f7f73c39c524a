import { DomainError, isUuid, notFound, requestEntityManager, requireContext, type Orm } from '@crm/platform';

/** Levels of subsidiaries a hierarchy shows: 1..10, 3 unless asked. */
export const HIERARCHY_DEPTH = { default: 3, min: 1, max: 10 } as const;

/** Most subsidiaries one hierarchy holds; beyond them it is `truncated`. */
export const HIERARCHY_MAX_NODES = 1000;

/** Ancestor levels followed at most: the same defensive bound as the hierarchy rules' `ancestorsOf`. */
const MAX_ANCESTOR_LEVELS = 64;

/** What a hierarchy shows of a company, in the REST value shape (enum names, null when empty). */
export interface CompanySummary {
  id: string;
  name: string;
  domain: string | null;
  accountType: string | null;
  status: string | null;
  parentCompanyId: string | null;
}

/** A subsidiary with its own subsidiaries (empty at the depth asked for). */
export interface CompanyHierarchyNode {
  company: CompanySummary;
  subsidiaries: CompanyHierarchyNode[];
}

/**
 * A company's place in its hierarchy: its ancestors nearest first (parent … root), itself, and
 * its subsidiaries as a tree down to `depth` levels (siblings by name, then id). `truncated` when
 * there were more than {@link HIERARCHY_MAX_NODES} subsidiaries within `depth`: the tree then holds
 * whole levels and part of the deepest one, never a subsidiary without its parent.
 */
export interface CompanyHierarchy {
  ancestors: CompanySummary[];
  company: CompanySummary;
  subsidiaries: CompanyHierarchyNode[];
  truncated: boolean;
}

interface Row {
  side: 'up' | 'down';
  depth: number;
  id: string;
  name: string;
  domain: string | null;
  account_type: string | null;
  status: string | null;
  parent_company_id: string | null;
}

/**
 * The hierarchy of company `id` (see {@link CompanyHierarchy}) in one statement, so one snapshot:
 * a recursive CTE up through `parent_company_id` and one down through the subsidiaries, each step
 * scoped by the caller's organization and live companies only (a deleted or foreign company ends
 * a branch), bounded by level ({@link MAX_ANCESTOR_LEVELS} up, `depth` down) and guarded against
 * cycles by the path walked (the hierarchy rules forbid them; data written around them must still
 * not loop). The way down stops after {@link HIERARCHY_MAX_NODES} + 1 rows: Postgres evaluates a
 * recursive CTE level by level and only as far as the outer query reads, so a huge tree costs no
 * more than the cap. `depth` 0 means the default. Errors: NOT_FOUND (also another organization's
 * id), INVALID_ARGUMENT `INVALID_DEPTH`.
 */
export async function companyHierarchy(orm: Orm, id: string, depth = 0): Promise<CompanyHierarchy> {
  const levels = depth === 0 ? HIERARCHY_DEPTH.default : depth;
  if (!Number.isInteger(levels) || levels < HIERARCHY_DEPTH.min || levels > HIERARCHY_DEPTH.max) {
    throw new DomainError('invalid_argument', 'INVALID_DEPTH', `depth must be ${HIERARCHY_DEPTH.min}..${HIERARCHY_DEPTH.max}`, [
      { field: 'depth', message: `must be between ${HIERARCHY_DEPTH.min} and ${HIERARCHY_DEPTH.max}` },
    ]);
  }
  if (!isUuid(id)) throw notFound('company', id);
  const org = requireContext().organizationId;
  const columns = 'c.id, c.name, c.domain, c.account_type, c.status, c.parent_company_id';
  const rows = await requestEntityManager(orm).execute<Row[]>(
    `with recursive
       up(id, name, domain, account_type, status, parent_company_id, depth, path) as (
         select ${columns}, 0, array[c.id]
           from contacts.company c where c.id = ? and c.organization_id = ? and c.deleted_at is null
         union all
         select ${columns}, up.depth + 1, up.path || c.id
           from up join contacts.company c on c.id = up.parent_company_id
          where c.organization_id = ? and c.deleted_at is null and up.depth < ? and c.id <> all(up.path)
       ),
       down(id, name, domain, account_type, status, parent_company_id, depth, path) as (
         select id, name, domain, account_type, status, parent_company_id, depth, path from up where depth = 0
         union all
         select ${columns}, down.depth + 1, down.path || c.id
           from down join contacts.company c on c.parent_company_id = down.id
          where c.organization_id = ? and c.deleted_at is null and down.depth < ? and c.id <> all(down.path)
       )
     select 'up' as side, depth, id, name, domain, account_type, status, parent_company_id from up
     union all
     (select 'down' as side, depth, id, name, domain, account_type, status, parent_company_id from down where depth > 0 limit ?)`,
    [id, org, org, MAX_ANCESTOR_LEVELS, org, levels, HIERARCHY_MAX_NODES + 1],
  );
  const up = rows.filter((r) => r.side === 'up').sort((a, b) => a.depth - b.depth);
  const self = up[0];
  if (!self) throw notFound('company', id);
  const down = rows.filter((r) => r.side === 'down');
  const truncated = down.length > HIERARCHY_MAX_NODES;
  // rows come level by level: the one past the cap is of the deepest level read, so dropping it orphans nothing
  const kept = truncated ? down.slice(0, HIERARCHY_MAX_NODES) : down;
  return { ancestors: up.slice(1).map(summary), company: summary(self), subsidiaries: tree(self.id, kept), truncated };
}

function summary(row: Row): CompanySummary {
  return {
    id: row.id,
    name: row.name,
    domain: row.domain || null,
    accountType: row.account_type || null,
    status: row.status || null,
    parentCompanyId: row.parent_company_id,
  };
}

/** The subsidiaries of `rootId` among `rows` as a tree, siblings by name then id. */
function tree(rootId: string, rows: readonly Row[]): CompanyHierarchyNode[] {
  const children = new Map<string, Row[]>();
  for (const row of rows) {
    const parent = row.parent_company_id ?? '';
    const siblings = children.get(parent);
    if (siblings) siblings.push(row);
    else children.set(parent, [row]);
  }
  const nodes = (parentId: string): CompanyHierarchyNode[] =>
    (children.get(parentId) ?? [])
      .sort((a, b) => (a.name === b.name ? (a.id < b.id ? -1 : 1) : a.name < b.name ? -1 : 1))
      .map((row) => ({ company: summary(row), subsidiaries: nodes(row.id) }));
  return nodes(rootId);
}
