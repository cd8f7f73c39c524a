import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import express from 'express';
import swaggerUi from 'swagger-ui-express';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { createLogger, loadConfig, runChecks, runMigrations } from '@crm/platform';
import { createTokenVerifier } from './auth/keycloak.auth.ts';
import { BACKENDS, connectBackends } from './backends.ts';
import { configSchema, type GatewayConfig } from './config.ts';

export { configSchema, type GatewayConfig };
import { apiRouter } from './http/api.router.ts';
import { IdempotencyKey } from './http/idempotency.entity.ts';
import { IdempotencyStore } from './http/idempotency.ts';
import { migrations } from './migrations/index.ts';
import { errorHandler, problem, sendProblem } from './http/problem.ts';
import { buildOpenApi } from './openapi/openapi.ts';

/** A running gateway: its base URL and an orderly `close()`. */
export interface GatewayHandle {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Schema `gateway`: the idempotency-key table's entity and the committed migrations that create
 * it; the schema test holds the two to agreement.
 */
export const gatewaySchema = { schema: 'gateway', entities: [IdempotencyKey], migrations };

/**
 * Composition root of the gateway: config → migrations of schema `gateway` (the services' runner,
 * no ORM kept open) → idempotency store → backends (backends.ts: a gRPC channel and routes each)
 * → Express app (request id, metrics, /api/v1: auth, rate limit, tenant, routes; problems) → listen.
 */
export async function createGateway(config: GatewayConfig = loadConfig(configSchema)): Promise<GatewayHandle> {
  const logger = createLogger('gateway', config.LOG_LEVEL);
  await runMigrations({ clientUrl: config.DATABASE_URL, ...gatewaySchema, logger });
  const idempotency = new IdempotencyStore(config.DATABASE_URL);

  const backends = connectBackends(BACKENDS, config, { deadlineMs: config.GRPC_DEADLINE_MS, idempotency });
  const routes = backends.flatMap((b) => b.routes);
  const issuerUrl = `${config.KEYCLOAK_URL.replace(/\/$/, '')}/realms/${config.KEYCLOAK_REALM}`;
  const openapi = buildOpenApi(routes, issuerUrl);
  const verifier = createTokenVerifier({
    authServerUrl: config.KEYCLOAK_URL.replace(/\/$/, ''),
    realm: config.KEYCLOAK_REALM,
    clientId: config.KEYCLOAK_CLIENT_ID,
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
  const rejectedTokens = new Counter({ name: 'auth_rejected_tokens_total', help: 'bearer tokens refused', registers: [registry] });

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false); // ETags are record versions, set by the resources
  app.set('trust proxy', 'loopback, linklocal, uniquelocal');
  app.use((req, res, next) => {
    const requestId = /^[\w.-]{1,100}$/.test(req.get('x-request-id') ?? '') ? String(req.get('x-request-id')) : randomUUID();
    res.locals['requestId'] = requestId;
    res.set('X-Request-Id', requestId);
    const end = httpDuration.startTimer({ method: req.method });
    res.on('finish', () =>
      end({
        route: (req.route as { path?: string } | undefined)?.path ? `${req.baseUrl}${(req.route as { path: string }).path}` : 'unmatched',
        status: String(res.statusCode),
      }),
    );
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const checks = await runChecks({
      database: () => idempotency.ping(),
      ...Object.fromEntries(backends.map((b) => [b.name, () => b.ready()])),
    });
    const ok = Object.values(checks).every(Boolean);
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not ready', checks });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
  app.get('/api/v1/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  app.use('/api/docs', swaggerUi.serve, swaggerUi.setup(undefined, { swaggerOptions: { url: '/api/v1/openapi.json' }, customSiteTitle: 'CRM API' }));

  app.use(
    '/api/v1',
    apiRouter({
      routes,
      verifier,
      realm: config.KEYCLOAK_REALM,
      rateLimitPerMinute: config.RATE_LIMIT_PER_MINUTE,
      logger,
      onInvalidToken: (reason) => {
        rejectedTokens.inc();
        logger.info({ reason }, 'access token refused');
      },
    }),
  );
  app.use((req, res) => sendProblem(res, problem(404, 'not-found', 'Not found', { detail: `no route ${req.method} ${req.originalUrl}` })));
  app.use(errorHandler(logger));

  const server = app.listen(config.PORT, config.HOST);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${port}`;
  logger.info({ url }, 'gateway listening');
  return {
    url,
    port,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      for (const b of backends) b.close();
      await idempotency.close();
    },
  };
}
