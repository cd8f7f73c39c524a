import { z } from 'zod';
import type { CrudSpec } from '../http/crud.router.ts';
import { overviewSchema } from '../resources/analytics.ts';

const problemSchema = z
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

type AnySpec = CrudSpec<{ id: string; version: number }, unknown, unknown, unknown>;

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const idOf = (schema: z.ZodType): string => {
  const id = z.globalRegistry.get(schema)?.id;
  if (!id) throw new Error('schema without a meta id');
  return id;
};
const problemResponse = (description: string) => ({ description, content: { 'application/problem+json': { schema: ref('Problem') } } });
const errors = {
  '400': problemResponse('invalid request (field errors listed)'),
  '401': problemResponse('missing or invalid access token'),
  '403': problemResponse('role does not allow it'),
  '429': problemResponse('rate limit exceeded (see Retry-After)'),
};

function queryParameters(schema: z.ZodType): object[] {
  const shape = schema instanceof z.ZodObject ? (schema.shape as Record<string, z.ZodType>) : {};
  return Object.entries(shape).map(([name, s]) => ({ name, in: 'query', required: false, schema: z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) }));
}

function crudPaths(spec: AnySpec): Record<string, object> {
  const tag = spec.plural;
  const resource = idOf(spec.schemas.resource);
  const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } };
  const ifMatch = {
    name: 'If-Match',
    in: 'header',
    required: false,
    schema: { type: 'string' },
    description: 'ETag from a previous read; a stale one answers 412',
  };
  const etag = { ETag: { schema: { type: 'string' }, description: 'quoted record version' } };
  const one = { content: { 'application/json': { schema: ref(resource) } }, headers: etag };
  return {
    [`/api/v1/${spec.plural}`]: {
      get: {
        tags: [tag],
        summary: `List ${spec.plural}`,
        parameters: queryParameters(spec.schemas.query),
        responses: {
          '200': {
            description: 'one page; pass nextCursor as cursor for the next',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['data', 'nextCursor'],
                  properties: { data: { type: 'array', items: ref(resource) }, nextCursor: { type: ['string', 'null'] } },
                },
              },
            },
          },
          ...errors,
        },
      },
      post: {
        tags: [tag],
        summary: `Create a ${spec.singular}`,
        parameters: [
          {
            name: 'Idempotency-Key',
            in: 'header',
            required: false,
            schema: { type: 'string', maxLength: 255 },
            description: 'retries with the same key and body replay the first response',
          },
        ],
        requestBody: { required: true, content: { 'application/json': { schema: ref(idOf(spec.schemas.create)) } } },
        responses: {
          '201': { description: 'created', ...one },
          ...errors,
          '409': problemResponse('duplicate'),
          '422': problemResponse('business rule violated'),
        },
      },
    },
    [`/api/v1/${spec.plural}/{id}`]: {
      parameters: [idParam],
      get: {
        tags: [tag],
        summary: `Get a ${spec.singular}`,
        responses: { '200': { description: 'found', ...one }, ...errors, '404': problemResponse('not found (or another organization’s)') },
      },
      patch: {
        tags: [tag],
        summary: `Change a ${spec.singular}`,
        parameters: [ifMatch],
        requestBody: { required: true, content: { 'application/json': { schema: ref(idOf(spec.schemas.patch)) } } },
        responses: {
          '200': { description: 'changed', ...one },
          ...errors,
          '404': problemResponse('not found'),
          '409': problemResponse('duplicate'),
          '412': problemResponse('stale If-Match'),
          '422': problemResponse('business rule violated'),
        },
      },
      delete: {
        tags: [tag],
        summary: `Delete a ${spec.singular} (soft delete)`,
        parameters: [ifMatch],
        responses: {
          '204': { description: 'deleted' },
          ...errors,
          '404': problemResponse('not found'),
          '412': problemResponse('stale If-Match'),
          '422': problemResponse('business rule violated'),
        },
      },
    },
  };
}

/**
 * The OpenAPI 3.1 document, generated from the zod schemas that validate requests (components
 * come from zod's JSON Schema 2020-12 output, OpenAPI 3.1's own dialect). Security: Keycloak
 * OpenID Connect bearer tokens of realm `crm`.
 */
export function buildOpenApi(resources: AnySpec[], issuerUrl: string): object {
  // touch the schemas so their ids are registered before the registry is exported
  void [problemSchema, overviewSchema];
  const { schemas } = z.toJSONSchema(z.globalRegistry, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  });
  return {
    openapi: '3.1.0',
    info: {
      title: 'CRM suite API',
      version: '1.0.0',
      description: 'REST API of the CRM suite. JSON is camelCase; errors are RFC 9457 problem details; lists are cursor-paged.',
    },
    servers: [{ url: '/' }],
    security: [{ keycloak: [] }],
    paths: {
      ...Object.assign({}, ...resources.map(crudPaths)),
      '/api/v1/analytics/overview': {
        get: {
          tags: ['analytics'],
          summary: 'Counts of companies and contacts (by industry)',
          responses: { '200': { description: 'overview', content: { 'application/json': { schema: ref('AnalyticsOverview') } } }, ...errors },
        },
      },
    },
    components: {
      schemas: Object.fromEntries(Object.entries(schemas).map(([id, s]) => [id, stripDialect(s)])),
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
