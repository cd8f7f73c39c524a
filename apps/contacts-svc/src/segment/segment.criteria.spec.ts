import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ARBITRARY_DEFINITIONS, criteriaArbitrary } from '../../test/support/segment-criteria.arbitrary.ts';
import { binder, checkCriteria, compileCriteria, MAX_CONDITIONS, type CriteriaScope } from './segment.criteria.ts';

const companies: CriteriaScope = { object: 'company', definitions: ARBITRARY_DEFINITIONS };
const contacts: CriteriaScope = { object: 'contact', definitions: ARBITRARY_DEFINITIONS };
const TAG = '0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f10';

function compile(input: unknown, scope: CriteriaScope = companies): { sql: string; values: unknown[] } {
  const checked = checkCriteria(input, scope);
  if (!('criteria' in checked)) throw new Error(JSON.stringify(checked.errors));
  const { values, bind } = binder('org');
  return { sql: compileCriteria(checked.criteria, bind), values };
}

function errorsOf(input: unknown, scope: CriteriaScope = companies): string[] {
  const checked = checkCriteria(input, scope);
  return 'errors' in checked ? checked.errors.map((e) => e.field) : [];
}

describe('compileCriteria', () => {
  it('binds every value and names columns from the registry only', () => {
    const { sql, values } = compile({
      all: [
        { field: 'tags', op: 'any', value: [TAG.toUpperCase()] },
        {
          any: [
            { field: 'status', op: 'eq', value: 'active' },
            { field: 'lastContactedAt', op: 'within_days', value: 30 },
          ],
        },
      ],
    });
    expect(sql).toBe('((r.tags && $2::uuid[]) and ((r.status = $3) or (r.last_contacted_at >= now() - make_interval(days => $4::int))))');
    expect(values).toEqual(['org', [TAG], 'active', 30]);
  });

  it('matches text case-insensitively and escapes LIKE wildcards in contains', () => {
    const { sql, values } = compile({
      any: [
        { field: 'industry', op: 'contains', value: "50%_off\\'" },
        { field: 'country', op: 'in', value: ['DE', 'fr'] },
      ],
    });
    expect(sql).toBe('((r.industry ilike $2) or (lower(r.address_country) = any(select lower(x) from unnest($3::text[]) x)))');
    expect(values.slice(1)).toEqual(["%50\\%\\_off\\\\'%", ['DE', 'fr']]);
  });

  it('keeps records without a value in not_in and not_within_days', () => {
    expect(compile({ all: [{ field: 'rating', op: 'not_in', value: ['cold'] }] }).sql).toBe('((r.rating is null or r.rating <> all($2::text[])))');
    expect(compile({ all: [{ field: 'createdAt', op: 'not_within_days', value: 7 }] }).sql).toContain('r.created_at is null or');
  });

  it('binds a custom field key and casts only values of the right JSON type', () => {
    const { sql, values } = compile({ all: [{ field: 'cf.t_number', op: 'gt', value: 10 }] });
    expect(sql).toBe(
      `(((case when jsonb_typeof((r.custom_fields -> $2::text)) = 'number' then ((r.custom_fields -> $2::text) #>> '{}')::numeric end) > $3::numeric))`,
    );
    expect(values.slice(1)).toEqual(['t_number', '10']);
  });

  it('turns instants into UTC ISO strings', () => {
    expect(compile({ all: [{ field: 'updatedAt', op: 'between', value: ['2026-01-01', '2026-06-30T12:00:00+02:00'] }] }).values.slice(1)).toEqual([
      '2026-01-01T00:00:00.000Z',
      '2026-06-30T10:00:00.000Z',
    ]);
  });

  it('compiles every valid criteria tree (property), with one bind value per placeholder', () => {
    for (const scope of [companies, contacts]) {
      fc.assert(
        fc.property(criteriaArbitrary(scope.object), (criteria) => {
          const { sql, values } = compile(criteria, scope);
          const placeholders = new Set([...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
          // $1 is the caller's (the organization); the criteria bind $2.. and nothing else
          expect([...placeholders].sort((a, b) => a - b)).toEqual(Array.from({ length: values.length - 1 }, (_, i) => i + 2));
        }),
        { numRuns: 300 },
      );
    }
  });
});

describe('checkCriteria', () => {
  it('names the path of each violation', () => {
    expect(errorsOf({ all: [{ field: 'status', op: 'eq', value: 'nope' }] })).toEqual(['criteria.all.0.value']);
    expect(errorsOf({ any: [{ field: 'status', op: 'eq', value: 'active' }, { all: [{ field: 'tags', op: 'eq', value: [TAG] }] }] })).toEqual([
      'criteria.any.1.all.0.op',
    ]);
    expect(errorsOf({ all: [{ field: 'nope', op: 'eq', value: 1 }] })).toEqual(['criteria.all.0.field']);
    expect(errorsOf({ all: [{ field: 'status', op: 'eq', value: 'active', extra: 1 }] })).toEqual(['criteria.all.0.extra']);
    expect(errorsOf({ all: [] })).toEqual(['criteria.all']);
    expect(errorsOf({ field: 'status', op: 'eq', value: 'active' })).toEqual(['criteria']);
    expect(errorsOf(null)).toEqual(['criteria']);
    expect(errorsOf({ all: [{ field: 'createdAt', op: 'before', value: '2026-02-30' }] })).toEqual(['criteria.all.0.value']);
  });

  it('refuses a field the object does not have, and unknown custom fields', () => {
    expect(errorsOf({ all: [{ field: 'preferredContactMethod', op: 'eq', value: 'email' }] }, companies)).toEqual(['criteria.all.0.field']);
    expect(errorsOf({ all: [{ field: 'accountType', op: 'eq', value: 'customer' }] }, contacts)).toEqual(['criteria.all.0.field']);
    expect(errorsOf({ all: [{ field: 'cf.missing', op: 'eq', value: 'x' }] })).toEqual(['criteria.all.0.field']);
    expect(errorsOf({ all: [{ field: 'cf.t_select', op: 'eq', value: 'bronze' }] })).toEqual(['criteria.all.0.value']);
    expect(errorsOf({ all: [{ field: 'cf.t_boolean', op: 'contains', value: true }] })).toEqual(['criteria.all.0.op']);
  });

  it('limits nesting to 4 groups and the tree to 50 conditions', () => {
    const condition = { field: 'status', op: 'eq', value: 'active' };
    const nest = (depth: number): unknown => (depth === 1 ? { all: [condition] } : { all: [nest(depth - 1)] });
    expect(errorsOf(nest(4))).toEqual([]);
    expect(errorsOf(nest(5))).toEqual(['criteria.all.0.all.0.all.0.all.0']);
    expect(errorsOf({ any: Array.from({ length: MAX_CONDITIONS }, () => condition) })).toEqual([]);
    expect(errorsOf({ any: Array.from({ length: MAX_CONDITIONS + 1 }, () => condition) })).toEqual(['criteria']);
  });

  it('never throws, whatever the input (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (input) => {
        checkCriteria(input, companies);
      }),
      { numRuns: 500 },
    );
  });
});
