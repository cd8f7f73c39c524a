import { EXAMPLE_RECORD_ID } from '@crm/contracts';
import { DomainError } from '@crm/platform';
import { sample } from 'openapi-sampler';
import { z } from 'zod';
import { problem, problemOf, type Problem } from '../http/problem.ts';
import type { Route } from '../http/route.ts';

/** A JSON object of the OpenAPI document (operation, response, schema…). */
export type JsonObject = { [key: string]: unknown };

/** RFC 9457 problem details, the body of every error response (component `Problem`). */
export const problemSchema = z
  .object({
    type: z.string().describe('stable problem type URI, e.g. urn:crm:problem:validation-error'),
    title: z.string().describe('short summary of the problem type'),
    status: z.int().min(400).max(599).describe('the HTTP status'),
    detail: z.string().optional().describe('what went wrong in this request'),
    instance: z.string().optional().describe('the request path'),
    code: z.string().optional().describe('stable machine code, e.g. COMPANY_HIERARCHY_CYCLE'),
    errors: z
      .array(z.object({ field: z.string().describe('dotted camelCase path into the request, or a header name'), message: z.string() }))
      .optional()
      .describe('field-level problems'),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details' });

const COMPONENTS = '#/components/schemas/';
const ref = (id: string): JsonObject => ({ $ref: `${COMPONENTS}${id}` });

/** Problem statuses the API documents, in order. */
export const PROBLEM_STATUSES = ['400', '401', '403', '404', '409', '412', '413', '415', '422', '429', '500', '503'] as const;
export type ProblemStatus = (typeof PROBLEM_STATUSES)[number];

/**
 * An example of each problem as the gateway sends it: built with the same functions that build the
 * real answers (domain errors through the one kind → status mapping).
 */
const PROBLEM_EXAMPLES: Record<ProblemStatus, Problem> = {
  '400': problem(400, 'validation-error', 'Invalid request', {
    detail: 'the request body is not valid',
    code: 'VALIDATION_FAILED',
    errors: [
      { field: 'name', message: 'is required' },
      { field: 'isAdmin', message: 'unknown field' },
    ],
  }),
  '401': problem(401, 'unauthenticated', 'Authentication required', { detail: 'send an access token as Authorization: Bearer <token>' }),
  '403': problem(403, 'forbidden', 'Not allowed', { detail: 'requires one of the roles crm-admin, crm-manager, crm-rep' }),
  '404': problemOf(new DomainError('not_found', 'COMPANY_NOT_FOUND', `company ${EXAMPLE_RECORD_ID} not found`), `/api/v1/companies/${EXAMPLE_RECORD_ID}`),
  '409': problemOf(new DomainError('conflict', 'CONTACT_EMAIL_TAKEN', 'another contact has this e-mail', [{ field: 'email', message: 'is taken' }])),
  '412': problemOf(new DomainError('precondition_failed', 'VERSION_MISMATCH', 'company is at version 4, not 3')),
  '413': problem(413, 'payload-too-large', 'Content too large', { detail: 'the body is larger than 1mb' }),
  '415': problem(415, 'unsupported-media-type', 'Unsupported media type', {
    detail: 'send the body as application/json',
    errors: [{ field: 'Content-Type', message: 'send the body as application/json' }],
  }),
  '422': problemOf(
    new DomainError('rule_violation', 'COMPANY_HIERARCHY_CYCLE', 'a company cannot be its own ancestor', [
      { field: 'parentCompanyId', message: 'would make a cycle' },
    ]),
  ),
  '429': problem(429, 'rate-limited', 'Too many requests', { detail: 'the limit is 600 requests per minute per user' }),
  '500': problem(500, 'internal', 'Internal error'),
  '503': problemOf(new DomainError('unavailable', 'UNAVAILABLE', 'the service is unavailable; retry later')),
};

/** Response headers of the API, as `components.headers` (referenced by the responses that carry them). */
export const HEADERS = {
  ETag: {
    description: 'the record version as a strong entity tag; send it back in If-Match',
    required: true,
    schema: { type: 'string', pattern: '^"\\d+"$', examples: ['"3"'] },
  },
  Location: {
    description: 'path of the created resource',
    required: true,
    schema: { type: 'string', format: 'uri-reference', examples: [`/api/v1/companies/${EXAMPLE_RECORD_ID}`] },
  },
  'Retry-After': {
    description: 'seconds to wait before retrying',
    schema: { type: 'integer', minimum: 0, examples: [30] },
  },
  RateLimit: {
    description: 'remaining quota (r) and seconds to its reset (t) of each policy (draft-ietf-httpapi-ratelimit-headers-08)',
    schema: { type: 'string', examples: ['"ip"; r=2994; t=42, "user"; r=596; t=42'] },
  },
  'RateLimit-Policy': {
    description: 'quota (q) per window (w, seconds) and partition key (pk) of each policy: per client address, and per tenant and user',
    schema: { type: 'string', examples: ['"ip"; q=3000; w=60; pk=:MTJjYTE3YjQ5YWYy:, "user"; q=600; w=60; pk=:YjFhNzA1NjI0NDEy:'] },
  },
  'X-Request-Id': {
    description: 'the request id (the client’s X-Request-Id when valid, else generated); quote it when reporting a problem',
    schema: { type: 'string', examples: ['5b0f0b7e-4a36-4c5e-9d3b-5e2f7c1a9d20'] },
  },
  'WWW-Authenticate': {
    description: 'the bearer-token challenge (RFC 6750), with error="invalid_token" for a refused token',
    required: true,
    schema: { type: 'string', examples: ['Bearer realm="crm", error="invalid_token"'] },
  },
  'Idempotent-Replayed': {
    description: '`true` when this is the stored response of an earlier request with the same Idempotency-Key',
    schema: { type: 'string', enum: ['true'] },
  },
} as const;

export type HeaderName = keyof typeof HEADERS;

/** A reference to a response header of {@link HEADERS}. */
export function headerRef(name: HeaderName): JsonObject {
  return { $ref: `#/components/headers/${name}` };
}

/** Headers of every API response: the rate-limit state and the request id. */
export function commonResponseHeaders(): JsonObject {
  return { RateLimit: headerRef('RateLimit'), 'RateLimit-Policy': headerRef('RateLimit-Policy'), 'X-Request-Id': headerRef('X-Request-Id') };
}

/** Headers a problem of `status` carries beyond the common ones. */
const PROBLEM_HEADERS: Partial<Record<ProblemStatus, HeaderName[]>> = {
  '401': ['WWW-Authenticate'],
  '429': ['Retry-After'],
  '503': ['Retry-After'],
};

/** A response entry carrying problem details: the Problem schema, an example and its headers. */
export function problemResponse(status: ProblemStatus, description: string): JsonObject {
  const own = PROBLEM_HEADERS[status] ?? [];
  return {
    description,
    headers: { ...commonResponseHeaders(), ...Object.fromEntries(own.map((h) => [h, headerRef(h)])) },
    content: { 'application/problem+json': { schema: ref('Problem'), example: PROBLEM_EXAMPLES[status] } },
  };
}

/**
 * Problems every API operation may answer: the tenant, authentication, roles and the rate limits
 * run before any route; 500 and 503 can happen anywhere (503: a backend or the realm keys are
 * unavailable).
 */
export const COMMON_PROBLEMS: Readonly<Partial<Record<ProblemStatus, string>>> = {
  '400': 'invalid request (field errors listed)',
  '401': 'missing or invalid access token',
  '403': 'role does not allow it, or X-Organization-Id names another organization',
  '429': 'rate limit exceeded (see Retry-After)',
  '500': 'unexpected error (logged with the request id)',
  '503': 'a backend or the token keys are unavailable; retry later',
};

/** `X-Organization-Id`, a parameter of every operation (`components.parameters`). */
export const ORGANIZATION_PARAMETER = {
  name: 'X-Organization-Id',
  in: 'header',
  required: false,
  description: 'the organization to act in, for members of several (else their only one)',
  schema: { type: 'string', examples: ['0193a5b1-0c2d-7e4f-8a6b-1c2d3e4f5a6b'] },
};

/**
 * zod → JSON Schema 2020-12 (OpenAPI 3.1's dialect), input side (what clients send; the
 * representations are declared with output schemas). zod drops `examples` of schemas that
 * transform in input mode (they could be outputs); the gateway's examples are written as inputs
 * and tested against the schemas, so they are kept.
 */
const JSON_SCHEMA_OPTIONS = {
  target: 'draft-2020-12',
  io: 'input',
  unrepresentable: 'any',
  override: ({ zodSchema, jsonSchema }) => {
    const examples = z.globalRegistry.get(zodSchema)?.examples;
    if (Array.isArray(examples) && jsonSchema.examples === undefined) jsonSchema.examples = examples;
  },
} satisfies z.core.ToJSONSchemaParams;

/**
 * A JSON Schema without `$schema` and `$id`. zod gives registry schemas `$id: "#/components/…"`,
 * which JSON Schema 2020-12 forbids (an `$id` has no fragment), and a component needs neither: the
 * document's dialect is 2020-12 and components are referenced by JSON pointer.
 */
function withoutIdentifiers(schema: object): JsonObject {
  const { $schema: _dialect, $id: _id, ...rest } = schema as JsonObject;
  return rest;
}

/**
 * JSON Schema of a zod schema, inline, without the `$schema` dialect marker. Sub-schemas with a
 * meta id become `$ref`s to the document's components (zod lifts them into `$defs`; the document
 * carries every registered schema as a component, so the refs are rewritten there).
 */
export function inlineSchema(schema: z.ZodType): JsonObject {
  const { $defs, ...rest } = withoutIdentifiers(z.toJSONSchema(schema, JSON_SCHEMA_OPTIONS));
  const json = JSON.stringify(rest);
  return JSON.parse($defs ? json.replaceAll('"#/$defs/', `"${COMPONENTS}`) : json) as JsonObject;
}

/** A `$ref` to the component when the schema has a meta id, else the schema inline. */
export function schemaOf(schema: z.ZodType): JsonObject {
  const id = z.globalRegistry.get(schema)?.id;
  return id ? ref(id) : inlineSchema(schema);
}

/** The fields of an object schema (empty for anything else). */
export function shapeOf(schema: z.ZodType | undefined): Record<string, z.ZodType> {
  return schema instanceof z.ZodObject ? (schema.shape as Record<string, z.ZodType>) : {};
}

/** Parameter objects for the fields of an object schema; `in: 'path'` ones are always required. */
export function parametersOf(schema: z.ZodType | undefined, location: 'path' | 'query'): JsonObject[] {
  return Object.entries(shapeOf(schema)).map(([name, s]) => {
    const { description, ...parameterSchema } = inlineSchema(s);
    return {
      name,
      in: location,
      required: location === 'path' || !s.safeParse(undefined).success,
      ...(typeof description === 'string' ? { description } : {}),
      schema: parameterSchema,
    };
  });
}

/** `/companies/:id` (Express, under /api/v1) → `/api/v1/companies/{id}` (OpenAPI); an escaped colon is literal (`/companies\:batch` → `/api/v1/companies:batch`). */
export function openApiPath(expressPath: string): string {
  return `/api/v1${expressPath.replace(/\\:|:(\w+)/g, (_escaped, name?: string) => (name ? `{${name}}` : ':'))}`;
}

/** Every `$ref` in a JSON value. */
function refsIn(value: unknown, out: Set<string> = new Set()): Set<string> {
  if (Array.isArray(value)) for (const v of value) refsIn(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string') out.add(v);
      else refsIn(v, out);
    }
  }
  return out;
}

/** True for a non-array object. */
function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value a local reference (`#/components/…`, RFC 6901 pointer) names in `doc`, or undefined. */
function resolvePointer(doc: unknown, reference: string): unknown {
  if (!reference.startsWith('#/')) return undefined;
  let node: unknown = doc;
  for (const token of reference.slice(2).split('/')) {
    const key = decodeURIComponent(token).replaceAll('~1', '/').replaceAll('~0', '~');
    node = isObject(node) && Object.hasOwn(node, key) ? node[key] : undefined;
  }
  return node;
}

/** The JSON media types of an operation (request body and responses). */
function jsonMediaTypes(operation: JsonObject): JsonObject[] {
  const bodies = [operation['requestBody'], ...(isObject(operation['responses']) ? Object.values(operation['responses']) : [])];
  return bodies.flatMap((b) => {
    const content = isObject(b) && isObject(b['content']) ? b['content'] : {};
    return Object.entries(content)
      .filter(([type]) => type === 'application/json' || type.endsWith('+json'))
      .map(([, media]) => media)
      .filter(isObject);
  });
}

/**
 * An example of a schema of `doc`, composed from the `examples` of its parts (openapi-sampler:
 * the first example of a schema, else its `const`, `enum`, `default`, else a value of its type).
 */
function exampleOf(schema: JsonObject, doc: JsonObject): unknown {
  return sample(schema, { quiet: true }, doc);
}

/**
 * The OpenAPI 3.1 document, generated from the routes (each carries its own operation, built from
 * the zod schemas that validate its requests) and the zod schemas with a meta id (components, from
 * zod's JSON Schema 2020-12 output, OpenAPI 3.1's own dialect, without `$id`/`$schema`). JSON
 * bodies without an example get one composed from their schema's examples. Security: a Keycloak
 * access token of realm `crm` — through OpenID Connect discovery, or pasted as a bearer token.
 * Throws when two routes claim the same method and path or the same operationId, or when a `$ref`
 * names nothing — wiring mistakes that should stop the gateway at boot rather than reach clients.
 */
export function buildOpenApi(routes: readonly Route[], issuerUrl: string): JsonObject {
  const paths: Record<string, Record<string, JsonObject>> = {};
  const operationIds = new Set<string>();
  for (const route of routes) {
    const path = openApiPath(route.path);
    const item = (paths[path] ??= {});
    if (item[route.method]) throw new Error(`two routes for ${route.method.toUpperCase()} ${path}`);
    if (operationIds.has(route.operationId)) throw new Error(`two routes with operationId ${route.operationId}`);
    operationIds.add(route.operationId);
    item[route.method] = structuredClone(route.operation);
  }
  const { schemas } = z.toJSONSchema(z.globalRegistry, { ...JSON_SCHEMA_OPTIONS, uri: (id) => `${COMPONENTS}${id}` });
  const tags = [...new Set(routes.flatMap((r) => (Array.isArray(r.operation['tags']) ? r.operation['tags'] : [])))].map(String).sort();
  const doc: JsonObject = {
    openapi: '3.1.0',
    info: {
      title: 'CRM suite API',
      version: '1.0.0',
      description:
        'REST API of the CRM suite. JSON is camelCase; errors are RFC 9457 problem details (application/problem+json); lists are cursor-paged; ' +
        'writes of records answer an ETag, which If-Match sends back (a stale one answers 412); POSTs are retry-safe with Idempotency-Key. ' +
        'Authorize with a Keycloak access token of realm crm (OpenID Connect, or paste it as a bearer token).',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: '/' }],
    // either scheme: both are the same Keycloak access token
    security: [{ keycloak: [] }, { bearer: [] }],
    tags: tags.map((name) => ({ name })),
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(schemas).map(([id, s]) => [id, withoutIdentifiers(s)])),
      parameters: { 'X-Organization-Id': ORGANIZATION_PARAMETER },
      headers: HEADERS,
      securitySchemes: {
        keycloak: {
          type: 'openIdConnect',
          openIdConnectUrl: `${issuerUrl}/.well-known/openid-configuration`,
          description: 'Keycloak access token of realm crm, obtained through OpenID Connect',
        },
        bearer: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'a Keycloak access token of realm crm, pasted as is (sent as Authorization: Bearer …)',
        },
      },
    },
  };
  const dangling = [...refsIn(doc)].filter((r) => resolvePointer(doc, r) === undefined);
  if (dangling.length) throw new Error(`OpenAPI refers to missing schemas: ${dangling.join(', ')}`);
  for (const item of Object.values(paths)) {
    for (const operation of Object.values(item)) {
      for (const media of jsonMediaTypes(operation)) {
        if (media['example'] === undefined && media['examples'] === undefined && isObject(media['schema'])) media['example'] = exampleOf(media['schema'], doc);
      }
    }
  }
  return doc;
}
