import { once } from 'node:events';
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express, type RequestHandler } from 'express';
import type { Registry } from 'prom-client';
import { runChecks, type ReadinessCheck } from '@crm/platform';

/** The detailed readiness document (`GET /readyz` on the ops port). */
export interface ReadinessReport {
  /** `ready` when this instance can serve: not shutting down and its database answers. */
  status: 'ready' | 'not ready';
  /** Every dependency: `database` decides; the backends (by name) are reported only. */
  checks: Record<string, boolean>;
  /** Why it is not ready when the checks do not say (shutting down). */
  detail?: string;
}

/**
 * Readiness of one gateway instance: "this instance can serve", i.e. not shutting down and its own
 * database answers. Backends are reported but never decide: one backend down must not take every
 * gateway pod out of its Service (its routes answer 503 on their own).
 */
export class Readiness {
  readonly #database: ReadinessCheck;
  readonly #backends: Record<string, ReadinessCheck>;
  readonly #shuttingDown: () => boolean;

  constructor(options: { database: ReadinessCheck; backends: Record<string, ReadinessCheck>; shuttingDown: () => boolean }) {
    this.#database = options.database;
    this.#backends = options.backends;
    this.#shuttingDown = options.shuttingDown;
  }

  /** The minimal answer: ready or not, nothing about the dependencies. */
  async ready(): Promise<boolean> {
    if (this.#shuttingDown()) return false;
    return (await runChecks({ database: this.#database }))['database'] === true;
  }

  /** The detailed answer, every check run concurrently (a throwing check counts as failed). */
  async report(): Promise<ReadinessReport> {
    const checks = await runChecks({ database: this.#database, ...this.#backends });
    if (this.#shuttingDown()) return { status: 'not ready', checks, detail: 'shutting down' };
    return { status: checks['database'] ? 'ready' : 'not ready', checks };
  }
}

const noStore: RequestHandler = (_req, res, next) => {
  res.set({ 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  next();
};

/** `GET /healthz`: 200 `{ "status": "ok" }` while the process runs (liveness). */
export const healthz: RequestHandler = (_req, res) => {
  res.json({ status: 'ok' });
};

/** `GET /readyz`, minimal: 200 `{ "status": "ready" }` or 503 `{ "status": "not ready" }`. */
export function minimalReadyz(readiness: Readiness): RequestHandler {
  return async (_req, res) => {
    const ok = await readiness.ready();
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not ready' });
  };
}

/** `GET /readyz`, detailed: the {@link ReadinessReport}, 200 when ready, else 503. */
export function detailedReadyz(readiness: Readiness): RequestHandler {
  return async (_req, res) => {
    const report = await readiness.report();
    res.status(report.status === 'ready' ? 200 : 503).json(report);
  };
}

/** `GET /metrics`: the registry in Prometheus text format. */
export function metrics(registry: Registry): RequestHandler {
  return async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  };
}

/**
 * The ops app (its own port, like the services' ops server): `/healthz`, the detailed `/readyz`
 * and `/metrics`; anything else 404. Not the platform's `startOpsServer`, whose readiness fails
 * on any failing check and so could not report backends without failing for them.
 */
export function opsApp(readiness: Readiness, registry: Registry): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(noStore);
  app.get('/healthz', healthz);
  app.get('/readyz', detailedReadyz(readiness));
  app.get('/metrics', metrics(registry));
  app.use((_req, res) => {
    res.status(404).json({ status: 'not found' });
  });
  return app;
}

/** Starts `app` on `host:port` (0 = a free port); rejects on a listen error such as EADDRINUSE. */
export async function listen(app: Express, port: number, host: string): Promise<{ server: Server; port: number }> {
  const server = app.listen(port, host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]: unknown[]) => Promise.reject(error))]);
  return { server, port: (server.address() as AddressInfo).port };
}

/**
 * In-flight requests of a server, and its graceful shutdown. Mount {@link middleware} first.
 */
export class Drain {
  readonly #inFlight = new Set<ServerResponse>();
  #draining = false;
  #idle: PromiseWithResolvers<void> | undefined;

  /** True once {@link close} has begun. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Requests received and not yet answered (or abandoned). */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Counts each request until its response closes; while draining, answers carry `Connection: close`. */
  middleware(): RequestHandler {
    return (_req, res, next) => {
      this.#inFlight.add(res);
      if (this.#draining) res.set('Connection', 'close');
      res.once('close', () => {
        this.#inFlight.delete(res);
        if (this.#inFlight.size === 0) this.#idle?.resolve();
      });
      next();
    };
  }

  /**
   * Graceful close of `server`: stops accepting connections, closes idle keep-alive connections,
   * tells the in-flight requests' clients the connection ends with their answer (`Connection:
   * close`), waits for those requests up to `timeoutMs`, then cuts whatever is left. Resolves
   * with how many requests were cut, once the server has closed.
   */
  async close(server: Server, timeoutMs: number): Promise<{ cut: number }> {
    this.#draining = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const res of this.#inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
    server.closeIdleConnections();
    if (this.#inFlight.size > 0) {
      this.#idle = Promise.withResolvers<void>();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.#idle.promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    }
    const cut = this.#inFlight.size;
    server.closeAllConnections();
    await closed;
    return { cut };
  }
}
