import { randomBytes } from 'node:crypto';
import type { MigrationObject } from '@mikro-orm/core';
import { MikroORM, type Options } from '@mikro-orm/postgresql';
import { createDatabase, dropDatabase, ensurePostgres } from '@crm/dev/infra';
import { createLogger, runMigrations } from '@crm/platform';
import { POSTGRES_ADMIN_URL } from './index.ts';

/** A service's schema as its composition root declares it. */
export interface SchemaDefinition {
  /** Postgres schema the service owns, e.g. `contacts`. */
  schema: string;
  /** The entity list the service boots with. */
  entities: NonNullable<Options['entities']>;
  /** The committed migrations the service applies at boot. */
  migrations: MigrationObject[];
}

/**
 * What stands between the committed migrations and the entity metadata: on a throwaway database
 * (`crm_schema_<random>`, dropped afterwards) runs `migrations` exactly as boot does
 * (`runMigrations`: advisory lock, schema created, all or nothing), then returns the SQL MikroORM's
 * schema generator would run to make `schema` match `entities` — tables, columns and their
 * types, nullability and defaults, primary keys, indexes (columns, uniqueness, partial `where`),
 * foreign keys (columns, target, rules, names), checks and triggers. `''` when they agree.
 * Rejects when a migration fails, or with install instructions when there is no Postgres.
 *
 * Limits are MikroORM's: an index or trigger declared with a raw `expression` is compared by name
 * only, so prefer `properties` + `where` for indexes. Stored functions are not compared (the
 * platform's `crm_fold` is no entity metadata).
 */
export async function schemaDrift(definition: SchemaDefinition): Promise<string> {
  await ensurePostgres(POSTGRES_ADMIN_URL);
  const name = `crm_schema_${randomBytes(6).toString('hex')}`;
  const clientUrl = await createDatabase(POSTGRES_ADMIN_URL, name);
  try {
    await runMigrations({ clientUrl, ...definition, logger: createLogger('schema-drift', 'silent') });
    // routines (the platform search migration's crm_fold) are not entity metadata: left unmanaged
    const orm = await MikroORM.init({
      clientUrl,
      schema: definition.schema,
      entities: definition.entities,
      pool: { min: 0, max: 1 },
      debug: false,
      schemaGenerator: { ignoreRoutines: true },
    });
    try {
      // wrap: false leaves out the `set names` / `set session_replication_role` preamble, so
      // agreement is the empty string rather than boilerplate
      const sql = await orm.schema.getUpdateSchemaSQL({ schema: definition.schema, wrap: false });
      return sql.trim();
    } finally {
      await orm.close(true);
    }
  } finally {
    await dropDatabase(POSTGRES_ADMIN_URL, name);
  }
}
