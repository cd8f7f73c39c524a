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

/** Pool settings of {@link openDatabase}; times in milliseconds. */
export interface PoolOptions {
  /** Connections at most (default 10). */
  poolMax?: number;
  /**
   * How long a query waits for a connection — a new one to connect or a busy pool to free one —
   * before it fails (default 10 000). Without a bound, an unreachable server would hang callers.
   */
  connectTimeoutMs?: number;
}

/**
 * pg client of the ORM's pool that gives its pool slot back as soon as its connection is lost
 * while checked out, so a terminated backend (`pg_terminate_backend`, failover, restart) never
 * costs a slot.
 *
 * Why: kysely ≤ 0.29.8 (MikroORM 7.2 pins 0.29.6) releases a transaction's connection only after
 * its BEGIN, COMMIT or ROLLBACK succeeded (kysely-org/kysely#1990, fixed in 0.29.9). On a dead
 * connection the ROLLBACK that follows a failed statement rejects too, so the connection was never
 * returned: each connection killed inside a transaction lost one slot for good, and after `max` of
 * them every query waited forever for a free connection. Here the client releases itself (with an
 * error, so pg-pool discards it and hands the slot to the next waiter) when its connection ends
 * while checked out; releasing is once per checkout, so the release kysely may still make later
 * is a no-op. Remove once MikroORM ships kysely ≥ 0.29.9.
 */
export class SlotReturningClient extends pg.Client {
  #release: ((err?: Error | boolean) => void) | undefined;

  constructor(config?: string | pg.ClientConfig) {
    super(config);
    this.on('end', () => this.release(new Error('PostgreSQL connection lost while checked out of the pool')));
  }

  /** Set by pg-pool on every checkout: the function that returns this client to the pool. */
  set release(fn: ((err?: Error | boolean) => void) | undefined) {
    this.#release = fn;
  }

  /** Returns the client to its pool, once per checkout (pg-pool throws on a second call). */
  get release(): (err?: Error | boolean) => void {
    return (err) => {
      const release = this.#release;
      this.#release = undefined;
      release?.(err);
    };
  }
}

/**
 * Opens the service's database: schema `schema` (created if absent), explicit `entities`, and the
 * committed `migrations` applied at boot by {@link runMigrations}. `clientUrl` is a postgres:// URL.
 * The pool survives a lost server: a dropped connection is logged and discarded (never an
 * unhandled `'error'`), never keeps its slot (see {@link SlotReturningClient}), and a query waits
 * at most `connectTimeoutMs` for a connection, so callers see errors while Postgres is away and
 * work again once it is back, with no restart.
 */
export async function openDatabase(options: MigrationOptions & PoolOptions): Promise<Orm> {
  await runMigrations(options);
  return MikroORM.init({
    clientUrl: options.clientUrl,
    schema: options.schema,
    entities: options.entities,
    pool: { max: options.poolMax ?? 10 },
    // pg-pool options: TCP keepalive notices a server that vanished without closing the socket
    driverOptions: { Client: SlotReturningClient, connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000, keepAlive: true },
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
  // a connection lost while idle emits 'error'; unhandled, it would end the process instead of
  // failing the migration run (the next query on it rejects)
  lockClient.on('error', (err) => options.logger.warn({ err, schema: options.schema }, 'migration lock connection lost'));
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
