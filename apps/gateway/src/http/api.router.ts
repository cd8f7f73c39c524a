import { Router, type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import { match } from 'path-to-regexp';
import { rateLimit, ipKeyGenerator, type Store } from 'express-rate-limit';
import type { Logger, RequestContext } from '@crm/platform';
import { authenticate, type TokenVerifier } from '../auth/keycloak.auth.ts';
import { tenantContext } from '../auth/tenant.ts';
import { problem, sendProblem } from './problem.ts';
import { closeIfBodyUnread, utf8JsonBody } from './request-body.ts';
import { utf8Query } from './query-string.ts';
import { mountRoutes, type Route } from './route.ts';
import type { LoadShedder } from './shedding.ts';

/** Largest JSON request body, as body-parser counts it. */
export const JSON_BODY_LIMIT = '1mb';

export interface ApiRouterOptions {
  /** Every operation of the API (backends.ts). */
  routes: readonly Route[];
  verifier: TokenVerifier;
  /** Keycloak realm, named in `WWW-Authenticate`. */
  realm: string;
  /** Requests per minute per tenant and user, after authentication. */
  rateLimitPerMinute: number;
  /** Requests per minute per client IP (IPv6: per /56), before authentication; default `rateLimitPerMinute`. */
  rateLimitPerIpPerMinute?: number;
  /**
   * The counters' store for limiter `name` (`ip`, `user`), e.g. a `PostgresRateLimitStore`
   * shared by every replica; default one in-memory store each (this process only).
   */
  rateLimitStore?: (name: 'ip' | 'user') => Store;
  logger: Logger;
  /** Called for each refused token (metrics), with why (logged, never sent). */
  onInvalidToken(reason: string): void;
  /** Called when a token cannot be checked because the realm's keys cannot be loaded (503). */
  onKeysUnavailable?(reason: string): void;
  /**
   * Load shedding (http/shedding.ts): `shedder` guards the event loop and admits each backend's
   * routes (`backends`: their names and routes, the same routes as `routes`). Default none.
   */
  shedding?: { shedder: LoadShedder; backends: readonly { name: string; routes: readonly Route[] }[] };
}

/**
 * `companies` of `/companies/:id`: the segment naming the resource, up to a colon — so a custom
 * method (request `/companies:batch`, route `/companies\:batch`) is admitted as its resource.
 */
// lower-cased: Express matches paths case-insensitively, so /COMPANIES must be admitted like /companies
const firstSegment = (path: string): string => ((path.split('/', 2)[1] ?? '').split(/\\?:/, 1)[0] ?? '').toLowerCase();

/** Headers of every API response: personal data is never stored by caches nor content-sniffed. */
const apiHeaders: RequestHandler = (_req, res, next) => {
  res.set({ 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  next();
};

/**
 * The `/api/v1` router, cheapest refusals first: `Cache-Control: no-store` and `nosniff` on every
 * answer → load shedding, when configured (503 with `Retry-After` while the event loop lags, or
 * when the request's backend has no slot free within the short queue wait) → rate limit per
 * client IP (429) → bearer-token authentication (401, before any body is
 * read) → tenant context (400/403) → rate limit per tenant and user (429) → query string of UTF-8 text without NUL (400) → UTF-8 JSON body
 * (1 MB; 400/413/415) → the routes → 404 problem for anything else. A 429 carries `Retry-After`
 * (seconds to the end of the window) and RateLimit headers (draft-ietf-httpapi-ratelimit-headers-08).
 * Errors not handled here go to the app's errorHandler — except those after a response has
 * started (a streamed download), which can no longer become a problem: the connection is aborted
 * (the client sees a truncated body) and the error logged.
 */
export function apiRouter(options: ApiRouterOptions): Router {
  const api = Router();
  const limit = (name: 'ip' | 'user', perMinute: number, key: (req: Request, res: Response) => string): RequestHandler =>
    rateLimit({
      windowMs: 60_000,
      limit: perMinute,
      identifier: name,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      keyGenerator: key,
      ...(options.rateLimitStore ? { store: options.rateLimitStore(name) } : {}),
      // a store failure (database down) lets requests through rather than failing them all
      passOnStoreError: true,
      logger: {
        error: (error, message) => options.logger.error({ err: error, limiter: name }, message ?? 'rate limiter error'),
        warn: (error, message) => options.logger.warn({ err: error, limiter: name }, message ?? 'rate limiter warning'),
      },
      handler: (req, res) => {
        closeIfBodyUnread(req, res);
        sendProblem(
          res,
          problem(429, 'rate-limited', 'Too many requests', {
            detail: `the limit is ${perMinute} requests per minute per ${name === 'ip' ? 'client address' : 'user'}`,
          }),
        );
      },
    });

  api.use(apiHeaders);
  if (options.shedding) {
    const { shedder, backends } = options.shedding;
    api.use(shedder.guardEventLoop());
    // admission ahead of everything that costs, by the first path segment (one map lookup rather
    // than matching every route twice): `/companies/…` → the backend owning `/companies`; the few
    // file transfers are matched first, each to its backend's transfer pool
    const admitters = new Map<string, RequestHandler>();
    const transfers: { method: string; matches: (path: string) => boolean; admit: RequestHandler }[] = [];
    for (const b of backends) {
      const admit = shedder.admit(b.name);
      const admitTransfer = shedder.admitTransfer(b.name);
      for (const route of b.routes) {
        const segment = firstSegment(route.path);
        const owner = admitters.get(segment);
        if (owner && owner !== admit) throw new Error(`path segment /${segment} belongs to two backends: routes of one resource must have one backend`);
        admitters.set(segment, admit);
        if (route.transfer) {
          const matcher = match(route.path, { decode: false });
          transfers.push({ method: route.method.toUpperCase(), matches: (path) => matcher(path) !== false, admit: admitTransfer });
        }
      }
    }
    api.use((req, res, next) => {
      // HEAD runs the GET route (Express): it is admitted as that route is
      const method = req.method === 'HEAD' ? 'GET' : req.method;
      const transfer = transfers.length > 0 ? transfers.find((t) => t.method === method && t.matches(req.path)) : undefined;
      const admit = transfer?.admit ?? admitters.get(firstSegment(req.path));
      if (admit) admit(req, res, next);
      else next();
    });
  }
  api.use(limit('ip', options.rateLimitPerIpPerMinute ?? options.rateLimitPerMinute, (req) => ipKeyGenerator(req.ip ?? '')));
  api.use(authenticate(options.verifier, options.realm, options.onInvalidToken, options.onKeysUnavailable));
  api.use(tenantContext());
  api.use(
    limit('user', options.rateLimitPerMinute, (_req, res) => {
      const ctx = res.locals['ctx'] as RequestContext;
      return `${ctx.organizationId}:${ctx.userId}`;
    }),
  );
  api.use(utf8Query());
  api.use(utf8JsonBody(JSON_BODY_LIMIT));
  mountRoutes(api, options.routes);
  api.use((req, res) => sendProblem(res, problem(404, 'not-found', 'Not found', { detail: `no route ${req.method} ${req.originalUrl}` })));
  const abortStarted: ErrorRequestHandler = (error: unknown, req, res, next) => {
    if (!res.headersSent) return next(error);
    options.logger.warn({ err: error, url: req.originalUrl }, 'response aborted after it started');
    res.destroy();
  };
  api.use(abortStarted);
  return api;
}
