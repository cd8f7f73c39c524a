import { AsyncResource } from 'node:async_hooks';
import { pipeline } from 'node:stream/promises';
import type { Request, RequestHandler, Response, Router } from 'express';
import { DomainError, type RequestContext, type Role } from '@crm/platform';
import { z } from 'zod';
import { requireRole } from '../auth/tenant.ts';
import {
  COMMON_PROBLEMS,
  commonResponseHeaders,
  headerRef,
  parametersOf,
  PROBLEM_STATUSES,
  problemResponse,
  schemaOf,
  shapeOf,
  type JsonObject,
  type ProblemStatus,
} from '../openapi/openapi.ts';
import { etagOf, expectedVersion } from './etag.ts';
import { problem, sendProblem, validationProblem, type Problem } from './problem.ts';

/**
 * Typed routes: one declaration gives the Express handlers (roles, validation, Idempotency-Key,
 * If-Match, the response) and the OpenAPI operation. {@link defineRoute} checks the handler
 * against the declared schemas, then erases the types into a {@link Route}, so routes of every
 * shape sit in one list.
 */

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** A mounted operation: what the router and the OpenAPI document need, nothing typed. */
export interface Route {
  readonly method: HttpMethod;
  /** Express path under `/api/v1`, e.g. `/companies/:id/tags/:tagId`. */
  readonly path: string;
  readonly operationId: string;
  /** Role check, then the kind's own middleware (Idempotency-Key), then the handler. */
  readonly handlers: readonly RequestHandler[];
  /** The OpenAPI 3.1 operation object (placed under the path's `{param}` form and the method). */
  readonly operation: JsonObject;
  /**
   * The route moves a file (a multipart upload or a streamed download): it may hold its slot for
   * minutes, so load shedding admits it to its backend's separate transfer pool, never to the
   * slots the backend's short requests use.
   */
  readonly transfer: boolean;
}

/**
 * A problem to send as is. Thrown by request readers (validation, 413, 415) and caught by the
 * route itself, because the app's errorHandler knows only domain and zod errors.
 */
export class ProblemError extends Error {
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail ?? problem.title);
    this.name = 'ProblemError';
    this.problem = problem;
  }
}

/**
 * How a request body is read: JSON through a zod schema, or multipart (see multipart.ts). `read`
 * calls `use` with the valid body and resolves with its result; it rejects with a
 * {@link ProblemError} for a body it refuses.
 */
export interface BodySpec<B> {
  /** `json`: parsed by express.json before the route (so Idempotency-Key can hash it); `multipart`: streamed by the route. */
  readonly kind: 'json' | 'multipart';
  /** The OpenAPI `requestBody`. */
  readonly requestBody: JsonObject;
  /** Problem statuses this body kind can answer (OpenAPI), e.g. `{ '413': '…' }`. */
  readonly problems: Readonly<Partial<Record<ProblemStatus, string>>>;
  read<T>(req: Request, use: (body: B) => Promise<T>): Promise<T>;
}

/** How a handler's result becomes the response: {@link json}, {@link noContent} or {@link download}. */
export interface ResponseSpec<R> {
  /** OpenAPI `responses` entries for success, keyed by status. */
  readonly responses: Readonly<Record<string, JsonObject>>;
  /** Sends `result`. Rejects before anything was sent (→ problem) or after (→ connection aborted). */
  send(res: Response, result: R): Promise<void>;
  /** True for a streamed file (see {@link Route.transfer}); {@link download} sets it. */
  readonly transfer?: boolean;
}

/** What a handler gets: validated params, query and body, the If-Match version and the caller. */
export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  /** If-Match version as proto int64 (string); undefined without the header, for `*`, or when the route has no `ifMatch`. */
  expectedVersion: string | undefined;
  /** Tenant, user, roles and request id (also the current async context, so gRPC calls carry it). */
  ctx: RequestContext;
}

/**
 * Problem statuses a route documents beyond those every route gets (value: when it happens): the
 * common ones ({@link COMMON_PROBLEMS}), 404 with `params`, 412 with `ifMatch`, 409/422 with
 * `idempotency`, and those of its body kind (413/415).
 */
export type DocumentedProblems = Partial<Record<'404' | '409' | '412' | '413' | '415' | '422' | '503', string>>;

/**
 * A route declaration. `P`, `Q`, `B` are inferred from the `params`, `query` and `body` schemas
 * (absent: raw path params as strings, no query, no body) and `R` from `response`; the handler is
 * checked against them.
 */
export interface RouteDefinition<P, Q, B, R> {
  method: HttpMethod;
  /** Express path under `/api/v1`; actions and child resources are sub-paths (`/leads/:id/convert`). */
  path: string;
  /** Unique, camelCase (`convertLead`): client generators name methods after it. */
  operationId: string;
  summary: string;
  description?: string;
  /** OpenAPI tag grouping the operation, usually the resource's plural. */
  tag: string;
  /** Realm roles allowed (READ_ROLES or WRITE_ROLES from auth/tenant.ts); others get 403. */
  roles: readonly Role[];
  /** Path parameters; a failure answers 404 (a malformed id names no record, as the services answer). */
  params?: z.ZodType<P>;
  /** Query string; a failure answers 400 naming the fields. Without it the query is ignored. */
  query?: z.ZodType<Q>;
  /** A zod schema (JSON body; failures → 400 naming every field, unknown fields included with strict objects) or `multipart(...)`. */
  body?: z.ZodType<B> | BodySpec<B>;
  response: ResponseSpec<R>;
  /** The gateway's IdempotencyStore, for a POST that creates: retries with the same key replay the first response. Not with multipart. */
  idempotency?: { middleware(): RequestHandler };
  /** Reads `If-Match` into `expectedVersion`; a malformed tag answers 412 like a stale one. */
  ifMatch?: boolean;
  /** Problem statuses the handler's errors can produce, documented in OpenAPI (e.g. `{ '404': 'no such lead' }`). */
  problems?: DocumentedProblems;
  /** The operation; its result goes to `response`. Errors: throw DomainError (→ its problem status). */
  handler: (input: RouteInput<P, Q, B>) => Promise<NoInfer<R>>;
}

/**
 * A JSON body (parsed by express.json) validated by `schema`: a failure answers 400 naming every
 * field (unknown ones too, with strict objects); `check` may then refuse the whole body with a
 * message (reported as field `body`). A bare zod schema as a route's `body` means `jsonBody(schema)`.
 */
export function jsonBody<B>(schema: z.ZodType<B>, check?: (body: B) => string | undefined): BodySpec<B> {
  return {
    kind: 'json',
    requestBody: { required: true, content: { 'application/json': { schema: schemaOf(schema) } } },
    problems: { '413': 'body larger than 1 MB', '415': 'body not JSON in UTF-8' },
    read: (req, use) => {
      const result = schema.safeParse(req.body);
      if (!result.success) throw new ProblemError(validationProblem(result.error, 'body'));
      const refusal = check?.(result.data);
      if (refusal !== undefined) {
        throw new ProblemError(validationProblem(new z.ZodError([{ code: 'custom', path: [], message: refusal, input: result.data }]), 'body'));
      }
      return use(result.data);
    },
  };
}

function parse<T>(schema: z.ZodType<T>, value: unknown, where: 'path' | 'query', req: Request): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  // a malformed id names no record: 404, as the services answer for one
  if (where === 'path') throw new ProblemError(problem(404, 'not-found', 'Not found', { detail: 'no such record', instance: req.originalUrl }));
  throw new ProblemError(validationProblem(result.error, 'query'));
}

/** The If-Match version as proto int64 (string); a tag that can never match is 412 (RFC 9110 §13.1.1). */
function ifMatchVersion(req: Request): string | undefined {
  const v = expectedVersion(req.get('if-match') ?? undefined);
  if (v === null) throw new DomainError('precondition_failed', 'VERSION_MISMATCH', 'If-Match does not match the current ETag');
  return v === undefined ? undefined : String(v);
}

const IDEMPOTENCY_KEY = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$', examples: ['7f1c2a9e-create-initech'] },
  description: 'retries with the same key and body replay the first response (for 24 hours)',
};
const IF_MATCH = {
  name: 'If-Match',
  in: 'header',
  required: false,
  schema: { type: 'string', examples: ['"3"'] },
  description: 'ETag from a previous read; a stale one answers 412 (without it the change applies to any version)',
};
const ORGANIZATION = { $ref: '#/components/parameters/X-Organization-Id' };
/** Problems of the Idempotency-Key store. */
const IDEMPOTENCY_PROBLEMS: Partial<Record<ProblemStatus, string>> = {
  '409': 'a request with this Idempotency-Key is still in progress',
  '422': 'Idempotency-Key reused with another body',
};

/** Problem responses by status, in status order; several causes of one status are joined. */
function problemResponses(...sources: Partial<Record<ProblemStatus, string>>[]): [ProblemStatus, JsonObject][] {
  return PROBLEM_STATUSES.flatMap((status) => {
    const causes = [...new Set(sources.map((s) => s[status]).filter((d) => d !== undefined))];
    return causes.length ? [[status, problemResponse(status, causes.join('; '))]] : [];
  });
}

/** A `:name` path parameter; an escaped colon (`/companies\:batch`, Express' literal `:`) is none. */
const PATH_PARAM = /(?<!\\):(\w+)/g;

/** Path parameters of the OpenAPI operation: from the schema, else every `:name` of the path as a string. */
function pathParameters(path: string, schema: z.ZodType | undefined): JsonObject[] {
  if (schema) return parametersOf(schema, 'path');
  return [...path.matchAll(PATH_PARAM)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
}

/**
 * Declares a route. Request order: role (403) → Idempotency-Key → params (404) → query (400) →
 * body (400/413/415) → If-Match (412) → handler → response. The handler's errors go to the app's
 * errorHandler (DomainError → its problem). Throws at declaration when a multipart route asks for
 * Idempotency-Key (the store binds the key to the JSON body, which an upload has not) or when a
 * `:param` of the path is missing from the `params` schema.
 */
export function defineRoute<P = Record<string, string>, Q = Record<string, never>, B = undefined, R = void>(def: RouteDefinition<P, Q, B, R>): Route {
  const body: BodySpec<B> | undefined = def.body === undefined ? undefined : 'requestBody' in def.body ? def.body : jsonBody(def.body);
  if (def.idempotency && body?.kind === 'multipart') throw new Error(`${def.operationId}: Idempotency-Key cannot cover a streamed upload`);
  const declared = Object.keys(shapeOf(def.params));
  const missing = def.params ? [...def.path.matchAll(PATH_PARAM)].map((m) => m[1] ?? '').filter((name) => !declared.includes(name)) : [];
  if (missing.length) throw new Error(`${def.operationId}: path parameters without a schema field: ${missing.join(', ')}`);

  const run: RequestHandler = async (req, res) => {
    try {
      // absent schemas: the defaults of P and Q (raw path params, no query)
      const params = def.params ? parse(def.params, req.params, 'path', req) : (req.params as P);
      const query = def.query ? parse(def.query, req.query, 'query', req) : ({} as Q);
      const ctx = res.locals['ctx'] as RequestContext;
      // async: an If-Match failure must reject, also when a multipart reader calls this from an event
      const handle = async (b: B): Promise<R> => def.handler({ params, query, body: b, expectedVersion: def.ifMatch ? ifMatchVersion(req) : undefined, ctx });
      // absent body: B is its default, undefined
      const result = body ? await body.read(req, handle) : await handle(undefined as B);
      await def.response.send(res, result);
    } catch (error) {
      if (error instanceof ProblemError && !res.headersSent) return sendProblem(res, error.problem);
      throw error;
    }
  };

  // the route's own causes first, then those of its parts
  const problems = problemResponses(
    def.problems ?? {},
    body?.problems ?? {},
    def.ifMatch ? { '412': 'If-Match is stale or malformed' } : {},
    def.idempotency ? IDEMPOTENCY_PROBLEMS : {},
    { ...COMMON_PROBLEMS, ...(def.params && !def.problems?.['404'] ? { '404': 'no such record (a malformed id names none)' } : {}) },
  );
  const parameters = [
    ...pathParameters(def.path, def.params),
    ...parametersOf(def.query, 'query'),
    ORGANIZATION,
    ...(def.idempotency ? [IDEMPOTENCY_KEY] : []),
    ...(def.ifMatch ? [IF_MATCH] : []),
  ];
  // success responses also carry the headers of every API answer (and the replay marker with Idempotency-Key)
  const successes = Object.entries(def.response.responses).map(([status, response]) => {
    const own = typeof response['headers'] === 'object' ? response['headers'] : {};
    const replayed = def.idempotency ? { 'Idempotent-Replayed': headerRef('Idempotent-Replayed') } : {};
    return [status, { ...response, headers: { ...commonResponseHeaders(), ...replayed, ...own } }];
  });
  const operation: JsonObject = {
    operationId: def.operationId,
    tags: [def.tag],
    summary: def.summary,
    ...(def.description ? { description: def.description } : {}),
    parameters,
    ...(body ? { requestBody: body.requestBody } : {}),
    responses: {
      ...Object.fromEntries(successes),
      ...Object.fromEntries(problems),
    },
  };
  return {
    method: def.method,
    path: def.path,
    operationId: def.operationId,
    handlers: [requireRole(...def.roles), ...(def.idempotency ? [def.idempotency.middleware()] : []), run],
    operation,
    transfer: body?.kind === 'multipart' || def.response.transfer === true,
  };
}

/**
 * A JSON response of `schema` (documentation only: results are the handler's, not re-validated).
 * `etag` gives the record version for `ETag`; `location` the absolute path of a created record
 * (required with status 201). The OpenAPI example is composed from the schema's examples unless
 * `example` is given.
 */
export function json<R>(
  schema: z.ZodType<R>,
  options: { status?: 200 | 201 | 202; description?: string; etag?: (result: R) => number; location?: (result: R) => string; example?: R } = {},
): ResponseSpec<R> {
  const status = options.status ?? 200;
  if (status === 201 && !options.location) throw new Error('a 201 response needs a location (RFC 9110 §15.3.2)');
  const headers: JsonObject = {
    ...(options.etag ? { ETag: headerRef('ETag') } : {}),
    ...(options.location ? { Location: headerRef('Location') } : {}),
  };
  return {
    responses: {
      [String(status)]: {
        description: options.description ?? (status === 201 ? 'created' : 'ok'),
        content: { 'application/json': { schema: schemaOf(schema), ...(options.example === undefined ? {} : { example: options.example }) } },
        ...(Object.keys(headers).length ? { headers } : {}),
      },
    },
    send: async (res, result) => {
      res.status(status);
      if (options.location) res.location(options.location(result));
      if (options.etag) res.set('ETag', etagOf(options.etag(result)));
      // res.json, not res.send: the Idempotency-Key store records the response through it
      res.json(result);
    },
  };
}

/** `204 No Content` (deletes, child-resource PUT/DELETE, actions without a result). */
export function noContent(description = 'done'): ResponseSpec<void> {
  return {
    responses: { '204': { description } },
    send: async (res) => {
      res.status(204).end();
    },
  };
}

/** A file a download handler returns. */
export interface Download {
  /** Media type, e.g. `text/csv; charset=utf-8`. */
  contentType: string;
  /** Suggested file name for `Content-Disposition` (untrusted characters are encoded by Express). */
  filename?: string;
  /** The content, pulled chunk by chunk as the client reads (backpressure). */
  body: AsyncIterable<Uint8Array | string>;
}

/**
 * A streamed `200` download (`Content-Disposition: attachment`, so a browser never renders
 * user-supplied content inline). An error before the first chunk is an ordinary error (→ problem);
 * after it the status is gone, so the connection is aborted and the client sees a truncated body.
 * The iterable is pulled in the request's async context (tenant metadata on gRPC calls).
 */
export function download(options: { contentTypes: readonly string[]; description?: string; example?: string }): ResponseSpec<Download> {
  return {
    transfer: true,
    responses: {
      '200': {
        description: options.description ?? 'the file',
        headers: {
          'Content-Disposition': {
            schema: { type: 'string', examples: ['attachment; filename="companies.csv"'] },
            description: 'attachment; filename of the file',
          },
        },
        content: Object.fromEntries(
          options.contentTypes.map((type) => [type, { schema: { type: 'string' }, ...(options.example === undefined ? {} : { example: options.example }) }]),
        ),
      },
    },
    send: async (res, file) => {
      const iterator = file.body[Symbol.asyncIterator]();
      // stream callbacks (drain) run outside the request's async context; pull in the request's
      const pull = AsyncResource.bind(() => iterator.next());
      const release = AsyncResource.bind(async () => {
        await iterator.return?.();
      });
      const first = await pull();
      res.status(200).attachment(file.filename).type(file.contentType).set('X-Content-Type-Options', 'nosniff');
      async function* chunks(): AsyncGenerator<Uint8Array | string> {
        try {
          for (let r = first; !r.done; r = await pull()) yield r.value;
        } finally {
          await release();
        }
      }
      try {
        await pipeline(chunks(), res);
      } catch (error) {
        // the client went away: nothing to answer, nothing to log
        if (error instanceof Error && 'code' in error && error.code === 'ERR_STREAM_PREMATURE_CLOSE') return;
        throw error;
      }
    },
  };
}

/** Express path segments, static before parameters, so `/companies/export` is not taken by `/companies/:id`. */
function specificity(path: string): number[] {
  return path.split('/').map((segment) => (segment.startsWith(':') ? 1 : 0));
}

function compareSpecificity(a: Route, b: Route): number {
  const x = specificity(a.path);
  const y = specificity(b.path);
  // over the longer path, a missing segment counting as static: a consistent order for Array.sort
  // (comparing only the common prefix left `/contacts/export` behind `/contacts/:id` when `/contacts` sat between them)
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}

/** Mounts routes on a router at `/api/v1`, static segments before parameters (otherwise in list order). */
export function mountRoutes(router: Router, routes: readonly Route[]): void {
  for (const route of [...routes].sort(compareSpecificity)) router[route.method](route.path, ...route.handlers);
}
