import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createDatabase, dropDatabase, ensurePostgres } from '@crm/dev/infra';
import { createLogger, runMigrations } from '@crm/platform';
import { POSTGRES_ADMIN_URL, waitFor } from '@crm/testing';
import { gatewaySchema } from '../src/app.ts';
import { LOCAL_SHARE, RateLimitDatabase } from '../src/http/rate-limit.ts';

// Two RateLimitDatabase instances on one private database stand for two gateway replicas.
const name = `crm_rate_${randomBytes(6).toString('hex')}`;
let url: string;
let admin: pg.Client;
const open: RateLimitDatabase[] = [];
const replica = (): RateLimitDatabase => {
  const db = new RateLimitDatabase(url);
  open.push(db);
  return db;
};
const stored = async (key: string): Promise<number | undefined> =>
  (await admin.query<{ hits: number }>('select hits from gateway.rate_limit where key = $1', [key])).rows[0]?.hits;
const MINUTE = 60_000;

beforeAll(async () => {
  await ensurePostgres(POSTGRES_ADMIN_URL);
  url = await createDatabase(POSTGRES_ADMIN_URL, name);
  await runMigrations({ clientUrl: url, ...gatewaySchema, logger: createLogger('rate-limit-spec', 'silent') });
  admin = new pg.Client({ connectionString: url });
  await admin.connect();
});

afterAll(async () => {
  for (const db of open) await db.close();
  await admin?.end();
  await dropDatabase(POSTGRES_ADMIN_URL, name);
});

describe('rate-limit counting shared by replicas', () => {
  it('counts every hit of two replicas exactly when the limit is small (each hit waits for the stored total)', async () => {
    const [a, b] = [replica(), replica()];
    const totals = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).increment('user:small', MINUTE, 3)));
    expect(totals.map((t) => t.totalHits).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(await stored('user:small')).toBe(10);
  });

  it('admits in memory far from the limit, sends those hits in the background, and counts exactly again from half the limit', async () => {
    const a = replica();
    const b = replica();
    const limit = 100;
    await a.increment('user:big', MINUTE, limit); // the first hit of a key always asks Postgres
    expect(await stored('user:big')).toBe(1);
    let statements = 0;
    const query = a.pool.query.bind(a.pool);
    // counting statements only (the occasional clean-up of ended windows is another one)
    a.pool.query = ((...args: Parameters<typeof query>) => {
      const [config] = args as unknown[];
      if (typeof config === 'object' && config !== null && (config as { name?: unknown }).name === 'rate-limit-increment') statements += 1;
      return query(...args);
    }) as typeof a.pool.query;
    const local = [];
    for (let i = 0; i < 20; i++) local.push((await a.increment('user:big', MINUTE, limit)).totalHits);
    expect(local).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    expect(statements).toBe(0); // no round trip per hit
    // sent within the sync interval, never lost
    await waitFor('the in-memory hits stored', async () => (await stored('user:big')) === 21);
    expect(statements).toBe(1); // all 20 in one statement
    // the other replica's first hit learns the shared total
    expect((await b.increment('user:big', MINUTE, limit)).totalHits).toBe(22);
    // both push the total to the limit; every hit from half the limit on is counted in Postgres
    const rest = await Promise.all(Array.from({ length: 78 }, (_, i) => (i % 2 ? a : b).increment('user:big', MINUTE, limit)));
    await waitFor('100 hits stored', async () => (await stored('user:big')) === 100);
    const exact = rest.map((r) => r.totalHits).filter((t) => t >= limit * LOCAL_SHARE);
    // no two hits in the exact zone share a total: the refusal at the limit is exact
    expect(new Set(exact).size).toBe(exact.length);
    expect((await a.increment('user:big', MINUTE, limit)).totalHits).toBe(101);
    expect((await b.increment('user:big', MINUTE, limit)).totalHits).toBe(102);
  });

  it('sends hits counted in memory when it closes', async () => {
    const a = new RateLimitDatabase(url);
    await a.increment('user:closing', MINUTE, 1000);
    for (let i = 0; i < 5; i++) await a.increment('user:closing', MINUTE, 1000);
    await a.close();
    expect(await stored('user:closing')).toBe(6);
  });

  it('always asks Postgres when the limit is not a fixed number (0)', async () => {
    const a = replica();
    for (let i = 1; i <= 5; i++) expect((await a.increment('user:dynamic', MINUTE, 0)).totalHits).toBe(i);
    expect(await stored('user:dynamic')).toBe(5);
  });
});
