import { z } from 'zod';
import type { Route } from '../http/route.ts';

/** A JSON object of the OpenAPI document (operation, response, schema…). */
export type JsonObject = { [key: string]: unknown };

/** RFC 9457 problem details, the body of every error response (component `Problem`). */
export const problemSchema = z
  .object({
    type: z.string().describe('stable problem type URI, e.g. urn:crm:problem:validation-error'),
    title: z.string(),
    status: z.int(),
    detail: z.string().optional(),
    instance: z.string().optional(),
    code: z.string().optional().describe('stable machine code, e.g. COMPANY_HIERARCHY_CYCLE'),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details' });

const COMPONENTS = '#/components/schemas/';
const ref = (id: string): JsonObject => ({ $ref: `${COMPONENTS}${id}` });

/** A response entry carrying problem details. */
export function problemResponse(description: string): JsonObject {
  return { description, content: { 'application/problem+json': { schema: ref('Problem') } } };
}

/** Problems every API operation may answer (authentication, roles and the rate limit run before any route). */
export const COMMON_PROBLEMS: Readonly<Record<string, string>> = {
  '400': 'invalid request (field errors listed)',
  '401': 'missing or invalid access token',
  '403': 'role does not allow it',
  '429': 'rate limit exceeded (see Retry-After)',
};

/**
 * JSON Schema of a zod schema, inline, without the `$schema` dialect marker. Sub-schemas with a
 * meta id become `$ref`s to the document's components (zod lifts them into `$defs`; the document
 * carries every registered schema as a component, so the refs are rewritten there).
 */
export function inlineSchema(schema: z.ZodType): JsonObject {
  const { $schema: _dialect, $defs, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' });
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
  return Object.entries(shapeOf(schema)).map(([name, s]) => ({
    name,
    in: location,
    required: location === 'path' || !s.safeParse(undefined).success,
    schema: inlineSchema(s),
  }));
}

/** `/companies/:id` (Express, under /api/v1) → `/api/v1/companies/{id}` (OpenAPI). */
export function openApiPath(expressPath: string): string {
  return `/api/v1${expressPath.replace(/:(\w+)/g, '{$1}')}`;
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

/**
 * The OpenAPI 3.1 document, generated from the routes (each carries its own operation, built from
 * the zod schemas that validate its requests) and the zod schemas with a meta id (components, from
 * zod's JSON Schema 2020-12 output, OpenAPI 3.1's own dialect). Security: Keycloak OpenID Connect
 * bearer tokens of realm `crm`. Throws when two routes claim the same method and path or the same
 * operationId, or when an operation refers to a schema that is not a component — wiring mistakes
 * that should stop the gateway at boot rather than reach clients.
 */
export function buildOpenApi(routes: readonly Route[], issuerUrl: string): object {
  const paths: Record<string, Record<string, JsonObject>> = {};
  const operationIds = new Set<string>();
  for (const route of routes) {
    const path = openApiPath(route.path);
    const item = (paths[path] ??= {});
    if (item[route.method]) throw new Error(`two routes for ${route.method.toUpperCase()} ${path}`);
    if (operationIds.has(route.operationId)) throw new Error(`two routes with operationId ${route.operationId}`);
    operationIds.add(route.operationId);
    item[route.method] = route.operation;
  }
  const { schemas } = z.toJSONSchema(z.globalRegistry, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `${COMPONENTS}${id}`,
  });
  const components = Object.fromEntries(Object.entries(schemas).map(([id, s]) => [id, stripDialect(s)]));
  const dangling = [...refsIn(paths)].filter((r) => !(r.startsWith(COMPONENTS) && r.slice(COMPONENTS.length) in components));
  if (dangling.length) throw new Error(`OpenAPI refers to missing schemas: ${dangling.join(', ')}`);
  return {
    openapi: '3.1.0',
    info: {
      title: 'CRM suite API',
      version: '1.0.0',
      description: 'REST API of the CRM suite. JSON is camelCase; errors are RFC 9457 problem details; lists are cursor-paged.',
    },
    servers: [{ url: '/' }],
    security: [{ keycloak: [] }],
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        keycloak: {
          type: 'openIdConnect',
          openIdConnectUrl: `${issuerUrl}/.well-known/openid-configuration`,
          description: 'Keycloak access token (Authorization: Bearer …)',
        },
      },
    },
  };
}

function stripDialect(schema: object): object {
  const { $schema: _dialect, ...rest } = schema as Record<string, unknown>;
  return rest;
}
