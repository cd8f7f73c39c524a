import express, { Router, type ErrorRequestHandler } from 'express';
import { rateLimit, ipKeyGenerator } from 'express-rate-limit';
import type { Logger } from '@crm/platform';
import { authenticate, type AccessTokenClaims, type TokenVerifier } from '../auth/keycloak.auth.ts';
import { tenantContext } from '../auth/tenant.ts';
import { problem, sendProblem } from './problem.ts';
import { mountRoutes, type Route } from './route.ts';

export interface ApiRouterOptions {
  /** Every operation of the API (backends.ts). */
  routes: readonly Route[];
  verifier: TokenVerifier;
  /** Keycloak realm, named in `WWW-Authenticate`. */
  realm: string;
  /** Requests per minute per user (per IP before authentication). */
  rateLimitPerMinute: number;
  logger: Logger;
  /** Called for each refused token (metrics), with why (logged, never sent). */
  onInvalidToken(reason: string): void;
}

/**
 * The `/api/v1` router: JSON bodies (1 MB), bearer-token authentication (401), rate limit (429),
 * tenant context (400/403), the routes, 404 problem for anything else. Errors not handled here go
 * to the app's errorHandler — except those after a response has started (a streamed download),
 * which can no longer become a problem: the connection is aborted (the client sees a truncated
 * body) and the error logged.
 */
export function apiRouter(options: ApiRouterOptions): Router {
  const api = Router();
  api.use(express.json({ limit: '1mb', type: ['application/json', 'application/*+json'] }));
  api.use(authenticate(options.verifier, options.realm, options.onInvalidToken));
  api.use(
    rateLimit({
      windowMs: 60_000,
      limit: options.rateLimitPerMinute,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      keyGenerator: (req, res) => (res.locals['claims'] as AccessTokenClaims | undefined)?.sub ?? ipKeyGenerator(req.ip ?? ''),
      handler: (_req, res, _next, limits) => {
        sendProblem(res, problem(429, 'rate-limited', 'Too many requests', { detail: `limit is ${String(limits.limit)} requests per minute` }), {
          'Retry-After': String(Math.ceil(limits.windowMs / 1000)),
        });
      },
    }),
  );
  api.use(tenantContext());
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
