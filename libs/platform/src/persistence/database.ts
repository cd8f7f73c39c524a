import { MikroORM, type EntityManager, type Options } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import type { MigrationObject } from '@mikro-orm/core';
import pg from 'pg';
import { requireContext } from '../context.ts';
import type { Logger } from '../logger.ts';

export type { EntityManager };
export type Orm = MikroORM;

/**
 * Filter every tenant-owned entity declares (`filters: tenantFilter`): enabled by default and
 * parameterised by the organization id, so a query on an entity manager without
 * `setFilterParams('tenant', …)` fails instead of reading across tenants.
 */
export const tenantFilter = {
  tenant: {
    name: 'tenant',
    cond: (args: Record<string, unknown>) => ({ organizationId: args['organizationId'] }),
    default: true,
    args: true,
  },
};

/** What {@link runMigrations} needs: where, which schema, its entities and committed migrations. */
export interface MigrationOptions {
  /** postgres:// URL. */
  clientUrl: string;
  /** Postgres schema the migrations run in (created if absent); also names the advisory lock. */
  schema: string;
  entities: NonNullable<Options['entities']>;
  /** Committed migrations in order; each runs once (recorded in `<schema>.mikro_orm_migrations`). */
  migrations: MigrationObject[];
  logger: Logger;
}

/**
 * Opens the service's database: schema `schema` (created if absent), explicit `entities`, and the
 * committed `migrations` applied at boot by {@link runMigrations}. `clientUrl` is a postgres:// URL.
 */
export async function openDatabase(options: MigrationOptions & { poolMax?: number }): Promise<Orm> {
  await runMigrations(options);
  return MikroORM.init({
    clientUrl: options.clientUrl,
    schema: options.schema,
    entities: options.entities,
    pool: { max: options.poolMax ?? 10 },
    allowGlobalContext: false,
    forceUtcTimezone: true,
    ignoreUndefinedInQuery: true,
    debug: false,
  });
}

/**
 * Applies the pending committed `migrations` to schema `schema` (created if absent) in one
 * transaction (all or nothing), under the session advisory lock `hashtext('migrate:<schema>')`
 * so several replicas may boot at once: the first migrates, the others wait and find nothing left
 * to do. Logs the names it applied. Rejects with the database error of a failing migration (none
 * of this run's migrations stay applied) or when Postgres is unreachable. Opens and closes its own
 * connections, so a process that needs no ORM for requests (the gateway) can call it alone.
 */
export async function runMigrations(options: MigrationOptions): Promise<void> {
  const lockClient = new pg.Client({ connectionString: options.clientUrl });
  await lockClient.connect();
  try {
    await lockClient.query('select pg_advisory_lock(hashtext($1))', [`migrate:${options.schema}`]);
    await lockClient.query(`create schema if not exists ${quoteIdent(options.schema)}`);
    const orm = await MikroORM.init({
      clientUrl: options.clientUrl,
      schema: options.schema,
      entities: options.entities,
      extensions: [Migrator],
      pool: { min: 0, max: 1 },
      migrations: { migrationsList: options.migrations, schema: options.schema, snapshot: false, silent: true, transactional: true, allOrNothing: true },
      debug: false,
    });
    try {
      const applied = await orm.migrator.up();
      if (applied.length > 0) options.logger.info({ schema: options.schema, migrations: applied.map((m) => m.name) }, 'migrations applied');
    } finally {
      await orm.close(true);
    }
  } finally {
    await lockClient.end();
  }
}

/** Quotes a Postgres identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * A fresh entity manager for one request, with the tenant filter bound to the caller's
 * organization (from the request context). Never use the global `orm.em` in request code.
 */
export function requestEntityManager(orm: Orm): EntityManager {
  const em = orm.em.fork();
  em.setFilterParams('tenant', { organizationId: requireContext().organizationId });
  return em;
}
