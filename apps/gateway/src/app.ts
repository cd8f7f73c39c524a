import { randomUUID } from 'node:crypto';
import express, { type RequestHandler } from 'express';
import swaggerUi from 'swagger-ui-express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DestinationStream } from 'pino';
import { createInternalTokenSigner, createLogger, loadConfig, runMigrations } from '@crm/platform';
import { createTokenVerifier } from './auth/keycloak.auth.ts';
import { BACKENDS, connectBackends } from './backends.ts';
import { configSchema, type GatewayConfig } from './config.ts';

export { configSchema, type GatewayConfig };
import { apiRouter } from './http/api.router.ts';
import { IdempotencyKey } from './http/idempotency.entity.ts';
import { IdempotencyStore } from './http/idempotency.ts';
import { PostgresRateLimitStore, RateLimitDatabase } from './http/rate-limit.ts';
import { RateLimitCounter } from './http/rate-limit.entity.ts';
import { migrations } from './migrations/index.ts';
import { errorHandler, problem, sendProblem } from './http/problem.ts';
import { LoadShedder } from './http/shedding.ts';
import { accessLog, nameRoute, routeLabel, routeLabels } from './http/observability.ts';
import { buildOpenApi } from './openapi/openapi.ts';
import { Drain, Readiness, detailedReadyz, healthz, listen, metrics, minimalReadyz, opsApp } from './ops.ts';

/** A running gateway: its public and ops URLs and an orderly `close()`. */
export interface GatewayHandle {
  /** Public API base URL, e.g. `http://127.0.0.1:3000`. */
  url: string;
  port: number;
  /** Ops base URL (`/healthz`, detailed `/readyz`, `/metrics`), e.g. `http://127.0.0.1:9400`. */
  opsUrl: string;
  opsPort: number;
  /**
   * Graceful shutdown: stops accepting, reports not ready, lets in-flight requests finish (at most
   * `SHUTDOWN_TIMEOUT_MS`, then cuts them), then closes backends, pools and the ops server.
   * Idempotent: later calls return the first call's promise.
   */
  close(): Promise<void>;
}

/**
 * Schema `gateway`: the entities of the idempotency-key and rate-limit tables and the committed
 * migrations that create them; the schema test holds the two to agreement.
 */
export const gatewaySchema = { schema: 'gateway', entities: [IdempotencyKey, RateLimitCounter], migrations };

/**
 * Content-Security-Policy of the API docs page (Swagger UI): scripts and styles from the gateway
 * only (Swagger UI needs inline styles: its page has `<style>` blocks and React sets `style`
 * attributes), images from the gateway or `data:` URLs, requests to the gateway and to Keycloak
 * (`issuerOrigin`: OpenID discovery and the token endpoint of the Authorize dialog), no framing.
 */
export function docsContentSecurityPolicy(issuerOrigin: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    `connect-src 'self' ${issuerOrigin}`,
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const origin = (url: string): string => new URL(url).origin;

/** Options of {@link createGateway} beyond its configuration. */
export interface GatewayOptions {
  /** Where log lines go (default stdout); tests read the access log here. */
  logDestination?: DestinationStream;
}

/**
 * Composition root of the gateway: config → migrations of schema `gateway` (the services' runner,
 * no ORM kept open) → idempotency store and rate-limit counters → backends (backends.ts: a gRPC
 * channel and routes each) → token verifier (keys from `KEYCLOAK_URL`, `iss` under
 * `KEYCLOAK_PUBLIC_URL`) → public app (route labels, request id, metrics, access log, `/healthz`,
 * minimal `/readyz`, docs, /api/v1: rate limit per IP, auth, tenant, rate limit per user, JSON
 * body, routes; problems) and ops app (`/healthz`, detailed `/readyz`, `/metrics`) → listen.
 */
export async function createGateway(config: GatewayConfig = loadConfig(configSchema), options: GatewayOptions = {}): Promise<GatewayHandle> {
  const logger = createLogger('gateway', config.LOG_LEVEL, options.logDestination);
  await runMigrations({ clientUrl: config.DATABASE_URL, ...gatewaySchema, logger });
  const idempotency = new IdempotencyStore(config.DATABASE_URL);
  const rateLimits = new RateLimitDatabase(config.DATABASE_URL);

  const backends = connectBackends(BACKENDS, config, {
    deadlineMs: config.GRPC_DEADLINE_MS,
    idempotency,
    signer: createInternalTokenSigner(config.INTERNAL_TOKEN_PRIVATE_KEY),
    logger,
  });
  const routes = backends.flatMap((b) => b.routes);
  const keycloakUrl = config.KEYCLOAK_URL.replace(/\/+$/, '');
  const publicKeycloakUrl = (config.KEYCLOAK_PUBLIC_URL ?? config.KEYCLOAK_URL).replace(/\/+$/, '');
  const openapi = buildOpenApi(routes, `${publicKeycloakUrl}/realms/${config.KEYCLOAK_REALM}`);
  const verifier = createTokenVerifier({
    authServerUrl: keycloakUrl,
    issuerBaseUrl: publicKeycloakUrl,
    realm: config.KEYCLOAK_REALM,
    clientId: config.KEYCLOAK_CLIENT_ID,
  });

  const drain = new Drain();
  const readiness = new Readiness({
    database: () => idempotency.ping(),
    backends: Object.fromEntries(backends.map((b) => [b.name, () => b.ready()])),
    shuttingDown: () => drain.draining,
  });

  const registry = new Registry();
  registry.setDefaultLabels({ service: 'gateway' });
  collectDefaultMetrics({ register: registry });
  const httpDuration = new Histogram({
    name: 'http_server_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  new Gauge({
    name: 'http_server_requests_in_flight',
    help: 'requests of the public port received and not yet answered',
    registers: [registry],
    collect() {
      this.set(drain.inFlight);
    },
  });
  const rejectedTokens = new Counter({ name: 'auth_rejected_tokens_total', help: 'bearer tokens refused', registers: [registry] });
  const keysUnavailable = new Counter({
    name: 'auth_keys_unavailable_total',
    help: 'bearer tokens not checked because the realm keys could not be loaded (503)',
    registers: [registry],
  });
  const reported = { cached: 0, verified: 0, refused: 0 };
  new Counter({
    name: 'auth_token_checks_total',
    help: 'bearer-token checks by result: cached (verified before, still valid), verified, refused',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      for (const result of ['cached', 'verified', 'refused'] as const) {
        this.inc({ result }, verifier.stats[result] - reported[result]);
        reported[result] = verifier.stats[result];
      }
    },
  });

  // load shedding of /api/v1 (http/shedding.ts): per-backend slots and queues, event-loop guard
  const shedRequests = new Counter({
    name: 'http_requests_shed_total',
    help: 'API requests answered 503 by load shedding, by reason (queue_full, queue_timeout, event_loop) and backend (all: event loop)',
    labelNames: ['reason', 'backend'],
    registers: [registry],
  });
  const shedder = new LoadShedder(
    {
      maxInFlight: config.SHED_MAX_IN_FLIGHT,
      maxQueue: config.SHED_MAX_QUEUE,
      maxQueueWaitMs: config.SHED_MAX_QUEUE_WAIT_MS,
      maxTransfers: config.SHED_MAX_TRANSFERS,
      maxEventLoopDelayMs: config.SHED_MAX_EVENT_LOOP_DELAY_MS,
      retryAfterSeconds: config.SHED_RETRY_AFTER_SECONDS,
    },
    { onShed: (reason, backend) => shedRequests.inc({ reason, backend: backend ?? 'all' }) },
  );
  new Gauge({
    name: 'http_backend_requests',
    help: 'API requests per backend: admitted and not yet answered (state in_flight), waiting for a slot (state queued)',
    labelNames: ['backend', 'state'],
    registers: [registry],
    collect() {
      for (const load of shedder.load()) {
        this.set({ backend: load.backend, state: 'in_flight' }, load.inFlight);
        this.set({ backend: load.backend, state: 'queued' }, load.queued);
      }
    },
  });

  const requestIdAndMetrics: RequestHandler = (req, res, next) => {
    const requestId = /^[\w.-]{1,100}$/.test(req.get('x-request-id') ?? '') ? String(req.get('x-request-id')) : randomUUID();
    res.locals['requestId'] = requestId;
    res.set({ 'X-Request-Id': requestId, 'X-Content-Type-Options': 'nosniff' });
    const end = httpDuration.startTimer({ method: req.method });
    // the route template (http/observability.ts), never the raw path
    res.on('finish', () => end({ route: routeLabel(res), status: String(res.statusCode) }));
    next();
  };

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false); // ETags are record versions, set by the resources
  app.set('trust proxy', 'loopback, linklocal, uniquelocal');
  app.use(drain.middleware());
  app.use(routeLabels(routes.map((r) => ({ method: r.method, path: `/api/v1${r.path}` }))));
  app.use(requestIdAndMetrics);
  app.use(accessLog(logger, { enabled: config.ACCESS_LOG, opsEndpoints: config.ACCESS_LOG_OPS_ENDPOINTS }));

  app.get('/healthz', healthz);
  if (config.PUBLIC_OPS_ENDPOINTS) {
    // opt-in (local tools, tests): production scrapes and probes the ops port only
    app.get('/readyz', detailedReadyz(readiness));
    app.get('/metrics', metrics(registry));
  } else {
    app.get('/readyz', minimalReadyz(readiness));
  }
  app.get('/api/v1/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  const csp = docsContentSecurityPolicy(origin(publicKeycloakUrl));
  app.use('/api/docs', nameRoute('/api/docs/*'), (_req, res, next) => {
    res.set('Content-Security-Policy', csp);
    next();
  });
  app.use(
    '/api/docs',
    swaggerUi.serve,
    swaggerUi.setup(undefined, {
      // no validator badge: it would load an image from validator.swagger.io, which the CSP forbids
      swaggerOptions: { url: '/api/v1/openapi.json', validatorUrl: null },
      customSiteTitle: 'CRM API',
    }),
  );

  app.use(
    '/api/v1',
    apiRouter({
      routes,
      verifier,
      realm: config.KEYCLOAK_REALM,
      rateLimitPerMinute: config.RATE_LIMIT_PER_MINUTE,
      rateLimitPerIpPerMinute: config.RATE_LIMIT_PER_IP_PER_MINUTE,
      rateLimitStore: (name) => new PostgresRateLimitStore(rateLimits, `${name}:`),
      shedding: { shedder, backends },
      logger,
      onInvalidToken: (reason) => {
        rejectedTokens.inc();
        logger.info({ reason }, 'access token refused');
      },
      onKeysUnavailable: (reason) => {
        keysUnavailable.inc();
        logger.warn({ reason }, 'realm keys unavailable: access token not checked');
      },
    }),
  );
  app.use((req, res) => sendProblem(res, problem(404, 'not-found', 'Not found', { detail: `no route ${req.method} ${req.originalUrl}` })));
  app.use(errorHandler(logger));

  const release = async (): Promise<void> => {
    shedder.close();
    for (const b of backends) b.close();
    await rateLimits.close();
    await idempotency.close();
  };
  const ops = await listen(opsApp(readiness, registry), config.OPS_PORT, config.OPS_HOST).catch(async (error: unknown) => {
    await release();
    throw error;
  });
  const api = await listen(app, config.PORT, config.HOST).catch(async (error: unknown) => {
    ops.server.close();
    await release();
    throw error;
  });
  const local = (host: string) => (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host);
  const url = `http://${local(config.HOST)}:${api.port}`;
  const opsUrl = `http://${local(config.OPS_HOST)}:${ops.port}`;
  logger.info({ url, opsUrl }, 'gateway listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    port: api.port,
    opsUrl,
    opsPort: ops.port,
    close: () => {
      closing ??= (async () => {
        const { cut } = await drain.close(api.server, config.SHUTDOWN_TIMEOUT_MS);
        if (cut > 0) logger.warn({ cut }, 'requests still running at the shutdown deadline were cut');
        await release();
        ops.server.closeAllConnections();
        await new Promise<void>((resolve) => ops.server.close(() => resolve()));
        logger.info('gateway stopped');
      })();
      return closing;
    },
  };
}
