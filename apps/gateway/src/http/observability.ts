import { context, trace } from '@opentelemetry/api';
import { getRPCMetadata, RPCType } from '@opentelemetry/core';
import type { Request, RequestHandler, Response } from 'express';
import { traceFields, type Logger, type RequestContext, type TraceFields } from '@crm/platform';
import { isOpsRequest } from '@crm/platform/telemetry';

/**
 * Per-request observability of the gateway: the route label of metrics, spans and the access log
 * (always a route template, never a raw path), and the access log itself.
 */

/** Label of a request no route matched (unknown path or method). */
export const UNMATCHED = 'unmatched';

/** A route as mounted: method and full Express path (`/api/v1/companies/:id`). */
export interface RouteTemplate {
  method: string;
  path: string;
}

interface CompiledTemplate {
  method: string;
  path: string;
  pattern: RegExp;
  /** Per segment: 0 static, 1 parameter; compared like mountRoutes orders them (static first). */
  specificity: number[];
}

/** Plain `/static/:param` paths only; anything else (optional groups, splats, regexps) is left to the router. */
const SIMPLE_PATH = /^(\/(:[A-Za-z_$][\w$]*|[\w.~-]+))+\/?$/;

/**
 * Compiles `route` to a matcher of request paths, as Express matches it (case-insensitive, an
 * optional trailing slash, a parameter is one non-empty segment). Undefined for a path beyond
 * `/static/:param` segments.
 */
export function compileTemplate(route: RouteTemplate): CompiledTemplate | undefined {
  if (!SIMPLE_PATH.test(route.path)) return undefined;
  const segments = route.path.replace(/\/$/, '').split('/').slice(1);
  const source = segments.map((s) => (s.startsWith(':') ? '/[^/]+' : `/${s.replace(/\./g, '\\.')}`)).join('');
  return {
    method: route.method.toUpperCase(),
    path: route.path,
    pattern: new RegExp(`^${source}/?$`, 'i'),
    specificity: segments.map((s) => (s.startsWith(':') ? 1 : 0)),
  };
}

function moreSpecificFirst(a: CompiledTemplate, b: CompiledTemplate): number {
  for (let i = 0; i < Math.min(a.specificity.length, b.specificity.length); i++) {
    const d = (a.specificity[i] ?? 0) - (b.specificity[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Compiles `routes` ({@link compileTemplate}; those beyond it are left out) in matching order: static segments before parameters. */
export function compileTemplates(routes: readonly RouteTemplate[]): CompiledTemplate[] {
  return routes
    .map(compileTemplate)
    .filter((t): t is CompiledTemplate => t !== undefined)
    .sort(moreSpecificFirst);
}

/** The template of the first of `templates` (static segments before parameters) that `method path` matches. */
export function matchTemplate(templates: readonly CompiledTemplate[], method: string, path: string): string | undefined {
  const m = method.toUpperCase() === 'HEAD' ? ['HEAD', 'GET'] : [method.toUpperCase()];
  return templates.find((t) => m.includes(t.method) && t.pattern.test(path))?.path;
}

/** Route template of a request, once known: the route that handled it, else the one it was headed for. */
const handledBy = new WeakMap<Response, string>();
const headedFor = new WeakMap<Response, string>();

/**
 * The route label of a request: the template of the route that handled it (`/api/v1/companies/:id`,
 * with every mount path before it, also for routers mounted in routers), else the template of the
 * API route it was headed for when it was refused before routing (401, 403, 429, 413, 415), else
 * {@link UNMATCHED}. Never the raw path: bounded cardinality, and one label per resource.
 */
export function routeLabel(res: Response): string {
  return handledBy.get(res) ?? headedFor.get(res) ?? UNMATCHED;
}

/**
 * Middleware (mount first) that records each request's route template for {@link routeLabel}:
 * - when a route takes the request: Express sets `req.route` at that moment, while `req.baseUrl`
 *   is still the full mount path — later, after an error left the router, it is not — so the
 *   template is `req.baseUrl` + the route's path, captured right then;
 * - beforehand, the method and path are matched against `templates` (the API's routes, full
 *   paths), so a request refused before routing carries the route it was for. Also names the
 *   HTTP server span after it (`http.route`) when tracing is on.
 */
export function routeLabels(templates: readonly RouteTemplate[]): RequestHandler {
  const compiled = compileTemplates(templates);
  return function routeLabels(req, res, next) {
    const template = matchTemplate(compiled, req.method, req.path);
    if (template) {
      headedFor.set(res, template);
      const rpc = getRPCMetadata(context.active());
      if (rpc?.type === RPCType.HTTP) rpc.route = template;
    }
    let route: unknown;
    Object.defineProperty(req, 'route', {
      configurable: true,
      enumerable: true,
      get: () => route,
      set: (value: unknown) => {
        route = value;
        const path = (value as { path?: unknown } | undefined)?.path;
        if (typeof path === 'string') handledBy.set(res, path === '/' && req.baseUrl ? req.baseUrl : `${req.baseUrl}${path}`);
      },
    });
    next();
  };
}

/**
 * Middleware giving the requests of a mount without routes (static files such as the API docs)
 * the label `template` (e.g. `/api/docs/*`) unless a route takes them.
 */
export function nameRoute(template: string): RequestHandler {
  return function nameRoute(_req, res, next) {
    headedFor.set(res, template);
    next();
  };
}

/** Options of {@link accessLog}. */
export interface AccessLogOptions {
  /** Off: no access log at all (`ACCESS_LOG=false`). */
  enabled: boolean;
  /** Also log `/healthz`, `/readyz` and `/metrics` (`ACCESS_LOG_OPS_ENDPOINTS`); default off: probes and scrapes. */
  opsEndpoints: boolean;
}

/** Counts the body bytes written to `res` (what `write` and `end` are given). */
function countBodyBytes(res: Response): () => number {
  let bytes = 0;
  const count = (chunk: unknown, encoding: unknown): void => {
    if (typeof chunk === 'string') bytes += Buffer.byteLength(chunk, Buffer.isEncoding(String(encoding)) ? (encoding as BufferEncoding) : 'utf8');
    else if (chunk instanceof Uint8Array) bytes += chunk.byteLength;
  };
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => Response;
  res.write = (...args: unknown[]) => {
    count(args[0], args[1]);
    return write(...args);
  };
  res.end = (...args: unknown[]) => {
    if (typeof args[0] !== 'function') count(args[0], args[1]);
    return end(...args);
  };
  return () => bytes;
}

/** The fields of one access-log line. */
export interface AccessLogLine {
  method: string;
  /** {@link routeLabel}: the route template, never the raw path. */
  route: string;
  /** The answer's status; 499 when the client went away before an answer started. */
  status: number;
  /** Set when the connection closed before the answer was complete. */
  aborted?: true;
  durationMs: number;
  /** Body bytes sent (0 for HEAD). */
  bytes: number;
  requestId?: string;
  organizationId?: string;
  /** The token's subject. */
  userId?: string;
  remoteAddress?: string;
}

/**
 * The access log: one JSON line per request at info level (`msg` `request completed`) with the
 * {@link AccessLogLine} fields and the trace ids of the request's span; logged when the response
 * closes, so also for requests the client abandoned. No query string, no raw path, no headers.
 * `/healthz`, `/readyz` and `/metrics` are left out unless `opsEndpoints`. Mount after the request
 * id is assigned.
 */
export function accessLog(logger: Logger, options: AccessLogOptions): RequestHandler {
  return function accessLog(req: Request, res: Response, next) {
    if (!options.enabled || (!options.opsEndpoints && isOpsRequest(req.originalUrl))) return next();
    const started = performance.now();
    // the request's HTTP server span (not this middleware's span) when tracing is on
    const active = context.active();
    const span = (getRPCMetadata(active)?.span ?? trace.getSpan(active))?.spanContext();
    const bytes = countBodyBytes(res);
    res.once('close', () => {
      const ctx = res.locals['ctx'] as RequestContext | undefined;
      const claims = res.locals['claims'] as { sub?: unknown } | undefined;
      const line: AccessLogLine = {
        method: req.method,
        route: routeLabel(res),
        status: res.headersSent ? res.statusCode : 499,
        ...(res.writableFinished ? {} : { aborted: true as const }),
        durationMs: Math.round((performance.now() - started) * 10) / 10,
        bytes: req.method === 'HEAD' ? 0 : bytes(),
        requestId: typeof res.locals['requestId'] === 'string' ? res.locals['requestId'] : undefined,
        organizationId: ctx?.organizationId,
        userId: ctx?.userId ?? (typeof claims?.sub === 'string' ? claims.sub : undefined),
        remoteAddress: req.ip,
      };
      // explicit trace fields (undefined without a span): the close event may run outside the request's context
      const ids: Partial<TraceFields> = traceFields(span);
      logger.info({ trace_id: ids.trace_id, span_id: ids.span_id, trace_flags: ids.trace_flags, ...line }, 'request completed');
    });
    next();
  };
}
