import type { MigrationObject } from '@mikro-orm/core';
import type { Options } from '@mikro-orm/postgresql';
import type { NatsConnection } from '@nats-io/transport-node';
import { createInternalTokenVerifier, type InternalTokenPublicKey } from './grpc/internal-token.ts';
import { startGrpcServer, type ServiceBinding } from './grpc/server.ts';
import { createLogger, type Logger } from './logger.ts';
import { indexEventHandlers, startEventConsumer, type EventHandlerSpec } from './messaging/consumer.ts';
import { connectNats, ensureEventStream, jetstreamManager } from './messaging/nats.ts';
import { OutboxRelay } from './messaging/relay.ts';
import { PlatformMetrics } from './metrics.ts';
import { startOpsServer } from './ops-server.ts';
import { openDatabase, type Orm } from './persistence/database.ts';

/** Settings every service reads from its environment (see config.ts `serviceEnv`). */
export interface RuntimeConfig {
  DATABASE_URL: string;
  NATS_URL: string;
  /** NATS user; default: the service's name (`spec.name`). */
  NATS_USER?: string | undefined;
  NATS_PASSWORD: string;
  /** Public keys the gRPC server accepts internal tokens from (config.ts `internalTokenPublicKeys`). */
  INTERNAL_TOKEN_PUBLIC_KEYS: readonly InternalTokenPublicKey[];
  GRPC_HOST: string;
  GRPC_PORT: number;
  OPS_HOST: string;
  OPS_PORT: number;
  LOG_LEVEL: string;
  /** JetStream stream replicas (1 locally, 3 in a cluster). */
  NATS_STREAM_REPLICAS?: number;
  /** Longest wait of a query for a database connection in ms (default 10 000). */
  DB_CONNECT_TIMEOUT_MS?: number;
  /** Consumers' retry backoff in ms: first delay (default 100) and cap (default 10 000). */
  CONSUMER_RETRY_INITIAL_MS?: number;
  CONSUMER_RETRY_MAX_MS?: number;
  /** Outbox relay: poll interval without NOTIFY (default 1000) and backoff cap (default 5000), in ms. */
  OUTBOX_POLL_INTERVAL_MS?: number;
  OUTBOX_RETRY_MAX_MS?: number;
}

/** What a service plugs into the runtime. */
export interface ServiceDefinitionSpec {
  /** Process name, e.g. `contacts-svc` (logs, metrics, CloudEvents source, durable names). */
  name: string;
  /** Postgres schema the service owns. */
  schema: string;
  entities: NonNullable<Options['entities']>;
  migrations: MigrationObject[];
  /** gRPC services, built once the ORM is open. */
  grpc: (deps: RuntimeDeps) => ServiceBinding[];
  /** Durable consumers, each with one handler per event type it applies. */
  consumers?: (deps: RuntimeDeps) => ConsumerDefinition[];
  /** Whether this service writes events (runs an outbox relay). Default true. */
  relay?: boolean;
  /**
   * Background workers (job runners, schedulers), started once gRPC and the relay run; each is
   * stopped (awaited) before the relay, NATS and the database close. A worker must be safe with
   * several replicas of the service running it (leases, `for update skip locked`, unique claims).
   */
  workers?: (deps: RuntimeDeps) => BackgroundWorker[];
}

/** A running background worker of a service: its name (logs) and how to stop it. */
export interface BackgroundWorker {
  name: string;
  /** Stops taking new work and resolves once the work in hand is finished or safely abandoned. */
  stop(): Promise<void>;
}

/**
 * One durable consumer of a service: JetStream durable `durable` (also its inbox key) on
 * `filterSubject`, dispatching by event type to `handlers` (built with `onEvent`). Two handlers
 * for one type, or none at all, fail the boot with `EventHandlerRegistrationError`.
 */
export interface ConsumerDefinition {
  durable: string;
  filterSubject: string;
  handlers: readonly EventHandlerSpec[];
}

export interface RuntimeDeps {
  orm: Orm;
  nc: NatsConnection;
  logger: Logger;
  metrics: PlatformMetrics;
}

/** A running service: bound ports and an orderly `close()` (gRPC drain, consumers, relay, NATS, DB). */
export interface ServiceHandle extends RuntimeDeps {
  grpcPort: number;
  opsPort: number;
  relay: OutboxRelay | undefined;
  close(): Promise<void>;
}

/**
 * Boots a service in the architecture's order: database (+ migrations) → NATS and the event
 * stream → gRPC server (+ health) → outbox relay → consumers → ops HTTP server. Tests call this
 * with port 0 to boot the very same service in-process.
 */
export async function startService(spec: ServiceDefinitionSpec, config: RuntimeConfig): Promise<ServiceHandle> {
  const logger = createLogger(spec.name, config.LOG_LEVEL);
  const metrics = new PlatformMetrics(spec.name);
  const orm = await openDatabase({
    clientUrl: config.DATABASE_URL,
    schema: spec.schema,
    entities: spec.entities,
    migrations: spec.migrations,
    logger,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
  });
  const nc = await connectNats(config.NATS_URL, spec.name, logger, { user: config.NATS_USER ?? spec.name, pass: config.NATS_PASSWORD });
  await ensureEventStream(await jetstreamManager(nc), config.NATS_STREAM_REPLICAS ?? 1);
  const deps: RuntimeDeps = { orm, nc, logger, metrics };
  // checked before any port opens or consumer starts, so a wiring mistake fails boot with nothing left running
  let consumerDefinitions: ConsumerDefinition[];
  try {
    consumerDefinitions = spec.consumers?.(deps) ?? [];
    for (const c of consumerDefinitions) indexEventHandlers(c.durable, c.handlers);
  } catch (err) {
    await nc.close();
    await orm.close();
    throw err;
  }

  const grpc = await startGrpcServer({
    host: config.GRPC_HOST,
    port: config.GRPC_PORT,
    services: spec.grpc(deps),
    verifier: createInternalTokenVerifier(config.INTERNAL_TOKEN_PUBLIC_KEYS),
    logger,
    metrics,
  });
  let relay: OutboxRelay | undefined;
  if (spec.relay !== false) {
    relay = new OutboxRelay({
      orm,
      nc,
      clientUrl: config.DATABASE_URL,
      logger,
      metrics,
      schema: spec.schema,
      pollIntervalMs: config.OUTBOX_POLL_INTERVAL_MS,
      maxBackoffMs: config.OUTBOX_RETRY_MAX_MS,
    });
    await relay.start();
  }
  let stopping = false;
  const consumers = await Promise.all(
    consumerDefinitions.map((c) => {
      // a consumer's own grpc.health.v1 key: NOT_SERVING while its events fail for a transient
      // reason (e.g. its database is down); '' stays as is, so callers of the read API are unaffected
      const healthKey = `consumer:${c.durable}`;
      grpc.health.setStatus(healthKey, 'SERVING');
      return startEventConsumer({
        orm,
        nc,
        logger,
        metrics,
        schema: spec.schema,
        durable: c.durable,
        filterSubject: c.filterSubject,
        handlers: c.handlers,
        retry: { initialDelayMs: config.CONSUMER_RETRY_INITIAL_MS, maxDelayMs: config.CONSUMER_RETRY_MAX_MS },
        onHealthChange: (healthy) => {
          if (!stopping) grpc.health.setStatus(healthKey, healthy ? 'SERVING' : 'NOT_SERVING');
        },
      });
    }),
  );
  const workers = spec.workers?.(deps) ?? [];
  const ops = await startOpsServer({
    host: config.OPS_HOST,
    port: config.OPS_PORT,
    registry: metrics.registry,
    checks: {
      // a real round trip: isConnected() stays false until the pool's first query
      database: async () => (await orm.em.fork().execute('select 1')).length === 1,
      nats: async () => !nc.isClosed() && nc.info !== undefined && !nc.isDraining(),
      ...Object.fromEntries(consumers.map((c) => [`consumer:${c.durable}`, async () => c.healthy()])),
    },
  });
  logger.info({ grpcPort: grpc.port, opsPort: ops.port }, `${spec.name} started`);

  let closing: Promise<void> | undefined;
  return {
    ...deps,
    grpcPort: grpc.port,
    opsPort: ops.port,
    relay,
    close: () => {
      closing ??= (async () => {
        stopping = true;
        await grpc.close();
        for (const w of workers) await w.stop();
        for (const c of consumers) await c.stop();
        await relay?.stop();
        await ops.close();
        await nc.drain().catch(() => nc.close());
        await orm.close();
        logger.info(`${spec.name} stopped`);
      })();
      return closing;
    },
  };
}

/**
 * `main.ts` helper: boots the service and closes it on SIGINT/SIGTERM (exit code 0), or logs and
 * exits 1 when boot fails.
 */
export async function runUntilSignal(start: () => Promise<{ close(): Promise<void> }>, name: string): Promise<void> {
  // fixed level: LOG_LEVEL itself may be the invalid setting this logger has to report
  const logger = createLogger(name, 'info');
  try {
    const handle = await start();
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      handle.close().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  } catch (err) {
    logger.fatal({ err }, `${name} failed to start`);
    process.exit(1);
  }
}
