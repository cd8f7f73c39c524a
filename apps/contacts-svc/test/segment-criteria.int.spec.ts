import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type pg from 'pg';
import { newId, type ServiceHandle } from '@crm/platform';
import { organizationId, serviceEnv, startTestInfra, type TestInfra } from '@crm/testing';
import { configSchema, createContactsService } from '../src/app.ts';
import { binder, checkCriteria, compileCriteria } from '../src/segment/segment.criteria.ts';
import { ARBITRARY_DEFINITIONS, criteriaArbitrary } from './support/segment-criteria.arbitrary.ts';

/**
 * Compiled criteria against the real schema: random valid criteria (segment-criteria.arbitrary.ts)
 * compile to SQL that Postgres runs without an error, over rows whose custom field values include
 * values of the wrong JSON type (left behind when a definition is re-created with another type).
 * A private database (startTestInfra), migrated by booting contacts-svc.
 */
let infra: TestInfra;
let contacts: ServiceHandle;
let pool: pg.Pool;
const org = organizationId('acme');

const STRAY_CUSTOM_FIELDS = [
  { t_text: 'Gold tier', t_number: 12.5, t_decimal: '1250.00', t_date: '2026-11-21', t_boolean: true, t_select: 'gold', t_multiselect: ['x', 'y'] },
  { t_text: 42, t_number: 'twelve', t_decimal: 1.5, t_date: '2026-02-30', t_boolean: 'yes', t_select: ['gold'], t_multiselect: 'x', t_url: { a: 1 } },
  { t_number: null, t_decimal: '12abc', t_date: 20261121, t_multiselect: [1, null] },
];

beforeAll(async () => {
  infra = await startTestInfra();
  contacts = await createContactsService(configSchema.parse(serviceEnv(infra)));
  pool = (await contacts.orm.em.getConnection().getNativeClient()) as pg.Pool;
  const now = new Date();
  for (const [i, cf] of [...STRAY_CUSTOM_FIELDS, null].entries()) {
    const common = [newId(), org, now, now, 'seed', JSON.stringify(cf), [newId()]];
    await pool.query(
      `insert into contacts.company (id, organization_id, created_at, updated_at, created_by, custom_fields, tags, name, owner_id, industry, status, address_country, last_contacted_at)
       values ($1, $2, $3, $4, $5, $6, $7, $8, 'owner', 'Software', 'active', 'DE', $9)`,
      [...common, `Company ${i}`, i % 2 ? now : null],
    );
    await pool.query(
      `insert into contacts.contact (id, organization_id, created_at, updated_at, created_by, custom_fields, tags, first_name, last_name, owner_id, source)
       values ($1, $2, $3, $4, $5, $6, $7, 'Ada', $8, 'owner', 'referral')`,
      [...common, `Lovelace ${i}`],
    );
  }
});

afterAll(async () => {
  await contacts?.close();
  await infra?.close();
});

describe('compiled segment criteria', () => {
  it('run on Postgres without an error for any valid criteria (property)', async () => {
    for (const object of ['company', 'contact'] as const) {
      await fc.assert(
        fc.asyncProperty(criteriaArbitrary(object), async (criteria) => {
          const checked = checkCriteria(criteria, { object, definitions: ARBITRARY_DEFINITIONS });
          if (!('criteria' in checked)) throw new Error(`valid criteria refused: ${JSON.stringify(checked.errors)}`);
          const { values, bind } = binder(org);
          const where = compileCriteria(checked.criteria, bind);
          const { rows } = await pool.query<{ n: number }>(
            `select count(*)::int as n from contacts.${object} r where r.organization_id = $1 and r.deleted_at is null and ${where}`,
            values,
          );
          expect(rows[0]!.n).toBeGreaterThanOrEqual(0);
        }),
        { numRuns: 250 },
      );
    }
  });

  it('match what they say on the seeded rows', async () => {
    const count = async (object: 'company' | 'contact', criteria: unknown): Promise<number> => {
      const checked = checkCriteria(criteria, { object, definitions: ARBITRARY_DEFINITIONS });
      if (!('criteria' in checked)) throw new Error(JSON.stringify(checked.errors));
      const { values, bind } = binder(org);
      const { rows } = await pool.query<{ n: number }>(
        `select count(*)::int as n from contacts.${object} r where r.organization_id = $1 and ${compileCriteria(checked.criteria, bind)}`,
        values,
      );
      return rows[0]!.n;
    };
    expect(await count('company', { all: [{ field: 'cf.t_number', op: 'gt', value: 10 }] })).toBe(1);
    // dates compare as YYYY-MM-DD text (never cast): a stray '2026-02-30' is in range, and no error
    expect(await count('company', { all: [{ field: 'cf.t_date', op: 'between', value: ['2026-01-01', '2026-12-31'] }] })).toBe(2);
    expect(await count('company', { all: [{ field: 'cf.t_multiselect', op: 'in', value: ['y', 'z{,}'] }] })).toBe(1);
    expect(await count('company', { all: [{ field: 'cf.t_text', op: 'contains', value: 'GOLD' }] })).toBe(1);
    expect(await count('company', { all: [{ field: 'cf.t_url', op: 'is_empty', value: true }] })).toBe(3);
    expect(await count('company', { all: [{ field: 'lastContactedAt', op: 'not_within_days', value: 1 }] })).toBe(2);
    expect(
      await count('company', {
        all: [
          { field: 'country', op: 'eq', value: 'de' },
          { field: 'industry', op: 'in', value: ['software'] },
        ],
      }),
    ).toBe(4);
    expect(await count('contact', { any: [{ field: 'source', op: 'not_in', value: ['referral'] }] })).toBe(0);
  });
});
