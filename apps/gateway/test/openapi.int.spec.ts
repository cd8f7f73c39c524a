import { Channel } from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from '@jest/globals';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { companyRecord, contactRecord, type RecordDeclaration } from '@crm/contracts';
import { channelOptions, insecure } from '@crm/platform';
import { BACKENDS } from '../src/backends.ts';
import { IdempotencyStore } from '../src/http/idempotency.ts';
import { buildOpenApi, type JsonObject } from '../src/openapi/openapi.ts';

/**
 * The OpenAPI document of the gateway's real routes (every backend of backends.ts), built without
 * booting anything: gRPC channels connect lazily and the idempotency pool on first use, so
 * neither is ever opened here.
 */

const ISSUER = 'https://login.crm.example/realms/crm';
const idempotency = new IdempotencyStore('postgres://unused@127.0.0.1:1/unused');
const channel = new Channel('127.0.0.1:1', insecure(), channelOptions());
const routes = BACKENDS.flatMap((backend) =>
  backend.routes({ deadlineMs: 1000, idempotency, client: (Client) => new Client('127.0.0.1:1', insecure(), { channelOverride: channel }) }),
);
const doc = buildOpenApi(routes, ISSUER);

afterAll(async () => {
  channel.close();
  await idempotency.close();
});

const METHODS = ['get', 'put', 'post', 'patch', 'delete'] as const;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function objectAt(value: unknown, ...keys: string[]): JsonObject {
  let node = value;
  for (const key of keys) node = isObject(node) ? node[key] : undefined;
  if (!isObject(node)) throw new Error(`no object at ${keys.join('.')}`);
  return node;
}

interface Operation {
  path: string;
  method: string;
  op: JsonObject;
}

const operations: Operation[] = Object.entries(objectAt(doc, 'paths')).flatMap(([path, item]) =>
  METHODS.flatMap((method) => (isObject(item) && isObject(item[method]) ? [{ path, method, op: item[method] }] : [])),
);
const byId = (operationId: string): JsonObject => {
  const found = operations.find((o) => o.op['operationId'] === operationId);
  if (!found) throw new Error(`no operation ${operationId}`);
  return found.op;
};

/** Follows a local `$ref` (components) to what it names. */
function deref(value: unknown): unknown {
  if (!isObject(value) || typeof value['$ref'] !== 'string') return value;
  const path = value['$ref'].replace(/^#\//, '').split('/');
  return objectAt(doc, ...path);
}

const responsesOf = (op: JsonObject): Record<string, JsonObject> => objectAt(op, 'responses') as Record<string, JsonObject>;
const statusesOf = (op: JsonObject): string[] => Object.keys(responsesOf(op)).sort();
const headersOf = (response: JsonObject): string[] => Object.keys(isObject(response['headers']) ? response['headers'] : {});

/** Every key of a JSON value, at any depth, with its path. */
function keysIn(value: unknown, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => keysIn(v, `${path}/${i}`));
  if (!isObject(value)) return [];
  return Object.entries(value).flatMap(([k, v]) => [`${path}/${k}`, ...keysIn(v, `${path}/${k}`)]);
}

/** ajv for JSON Schema 2020-12 (OpenAPI 3.1's dialect) with the document loaded, so its `$ref`s resolve. */
function ajvWithDocument(): Ajv2020 {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  ajv.addSchema({ ...doc, $id: 'urn:crm:openapi' });
  return ajv;
}

const pointer = (...keys: string[]): string => `urn:crm:openapi#/${keys.map((k) => k.replaceAll('~', '~0').replaceAll('/', '~1')).join('/')}`;

describe('the OpenAPI document of the gateway', () => {
  it('is a valid OpenAPI 3.1 document (@seriousme/openapi-schema-validator), with every $ref resolved', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc));
    expect(result).toEqual({ valid: true });
    expect(validator.version).toBe('3.1');
    expect(() => validator.resolveRefs()).not.toThrow();
  });

  it('is refused by the same validator when broken, so the check above means something', async () => {
    const missingDescription = structuredClone(doc);
    delete objectAt(missingDescription, 'paths', '/api/v1/companies', 'get', 'responses', '200')['description'];
    expect((await new Validator().validate(missingDescription)).valid).toBe(false);
    const dangling = structuredClone(doc);
    objectAt(dangling, 'paths', '/api/v1/companies', 'post', 'requestBody', 'content', 'application/json')['schema'] = { $ref: '#/components/schemas/Nothing' };
    expect((await new Validator().validate(dangling)).valid).toBe(false);
  });

  it('has component schemas that are valid JSON Schema 2020-12, without $id or $schema, and compile with their references', () => {
    const schemas = objectAt(doc, 'components', 'schemas');
    expect(Object.keys(schemas)).toEqual(expect.arrayContaining(['Company', 'CompanyCreate', 'CompanyPatch', 'Contact', 'Problem', 'Money', 'PostalAddress']));
    expect(keysIn(schemas).filter((k) => /\/\$(id|schema)$/.test(k))).toEqual([]);
    const metaSchema = new Ajv2020({ strict: false });
    for (const [name, schema] of Object.entries(schemas)) {
      expect({ name, valid: metaSchema.validateSchema(isObject(schema) ? schema : {}), errors: metaSchema.errors ?? null }).toEqual({
        name,
        valid: true,
        errors: null,
      });
    }
    const ajv = ajvWithDocument();
    for (const name of Object.keys(schemas)) expect(() => ajv.getSchema(pointer('components', 'schemas', name))).not.toThrow();
  });

  it('names every operation uniquely (camelCase operationId) and summarises it', () => {
    expect(operations.length).toBe(routes.length);
    const ids = operations.map((o) => o.op['operationId']);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { path, method, op } of operations) {
      expect({ path, method, operationId: op['operationId'] }).toEqual({ path, method, operationId: expect.stringMatching(/^[a-z][A-Za-z0-9]+$/) });
      expect({ path, method, summary: op['summary'] }).toEqual({ path, method, summary: expect.stringMatching(/\S/) });
    }
    expect(ids).toEqual(
      expect.arrayContaining(['listCompanies', 'createCompany', 'getCompany', 'updateCompany', 'deleteCompany', 'listContacts', 'getAnalyticsOverview']),
    );
  });

  it('gives every JSON request body and response an example that its schema accepts', () => {
    const ajv = ajvWithDocument();
    let checked = 0;
    for (const { path, method, op } of operations) {
      const bodies: [string[], unknown][] = [
        [['requestBody'], op['requestBody']],
        ...Object.entries(responsesOf(op)).map(([status, r]): [string[], unknown] => [['responses', status], r]),
      ];
      for (const [at, body] of bodies) {
        // a 204 has no content
        if (!isObject(body) || !isObject(body['content'])) continue;
        for (const [type, media] of Object.entries(body['content'])) {
          const where = `${method.toUpperCase()} ${path} ${at.join(' ')} ${type}`;
          expect({ where, example: isObject(media) && media['example'] !== undefined }).toEqual({ where, example: true });
          const validate = ajv.getSchema(pointer('paths', path, method, ...at, 'content', type, 'schema'));
          const example = objectAt(body, 'content', type)['example'];
          expect({ where, valid: validate?.(example), errors: validate?.errors ?? null }).toEqual({ where, valid: true, errors: null });
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(operations.length * 5);
  });

  it('derives sensible record examples from the field kinds', () => {
    const created = objectAt(byId('createCompany'), 'requestBody', 'content', 'application/json', 'example');
    expect(created).toMatchObject({ name: expect.any(String), domain: 'acme.com', annualRevenue: { amount: '1250.00', currency: 'EUR' }, employees: 120 });
    const contact = objectAt(byId('createContact'), 'requestBody', 'content', 'application/json', 'example');
    expect(contact).toMatchObject({ email: 'ada.lovelace@example.com', phone: '+14155550100', companyId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    // a PATCH example changes a few fields, not the whole record
    const patch = objectAt(byId('updateCompany'), 'requestBody', 'content', 'application/json', 'example');
    expect(Object.keys(patch)).toEqual(['name', 'legalName']);
    const got = objectAt(byId('getCompany'), 'responses', '200', 'content', 'application/json', 'example');
    expect(got).toMatchObject({ id: expect.any(String), version: 3, createdAt: '2026-11-21T09:30:00.000Z' });
  });

  it('documents Location on every 201, ETag on record reads and writes, Retry-After on 429 and 503, rate-limit headers on every answer', () => {
    for (const { path, method, op } of operations) {
      for (const [status, response] of Object.entries(responsesOf(op))) {
        const where = `${method.toUpperCase()} ${path} ${status}`;
        const headers = headersOf(response);
        expect({ where, headers }).toEqual({ where, headers: expect.arrayContaining(['RateLimit', 'RateLimit-Policy', 'X-Request-Id']) });
        if (status === '201') expect({ where, headers }).toEqual({ where, headers: expect.arrayContaining(['Location']) });
        if (status === '429' || status === '503') expect({ where, headers }).toEqual({ where, headers: expect.arrayContaining(['Retry-After']) });
        if (status === '401') expect({ where, headers }).toEqual({ where, headers: expect.arrayContaining(['WWW-Authenticate']) });
      }
    }
    for (const [id, status] of [
      ['createCompany', '201'],
      ['getCompany', '200'],
      ['updateCompany', '200'],
      ['createContact', '201'],
      ['getContact', '200'],
      ['updateContact', '200'],
    ] as const) {
      const response = objectAt(byId(id), 'responses', status);
      expect({ id, headers: headersOf(response) }).toEqual({ id, headers: expect.arrayContaining(['ETag']) });
      expect(deref(objectAt(response, 'headers', 'ETag'))).toMatchObject({ required: true, schema: { type: 'string' } });
    }
    expect(headersOf(objectAt(byId('createCompany'), 'responses', '201'))).toContain('Idempotent-Replayed');
    expect(headersOf(objectAt(byId('listCompanies'), 'responses', '200'))).not.toContain('ETag');
  });

  it('documents the problems each operation can answer, all as application/problem+json with the Problem schema', () => {
    const common = ['400', '401', '403', '429', '500', '503'];
    const expected: Record<string, string[]> = {
      listCompanies: [...common],
      createCompany: [...common, '409', '413', '415', '422'],
      getCompany: [...common, '404'],
      updateCompany: [...common, '404', '409', '412', '413', '415', '422'],
      deleteCompany: [...common, '404', '412', '422'],
      getAnalyticsOverview: [...common],
    };
    for (const [id, statuses] of Object.entries(expected)) {
      const problems = statusesOf(byId(id)).filter((s) => Number(s) >= 400);
      expect({ id, problems }).toEqual({ id, problems: [...statuses].sort() });
    }
    for (const { path, method, op } of operations) {
      for (const [status, response] of Object.entries(responsesOf(op)).filter(([s]) => Number(s) >= 400)) {
        const where = `${method.toUpperCase()} ${path} ${status}`;
        expect({ where, content: response['content'] }).toEqual({
          where,
          content: {
            'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' }, example: expect.objectContaining({ status: Number(status) }) },
          },
        });
      }
    }
  });

  it('lists the fields of each record resource in its schemas', () => {
    const schemas = objectAt(doc, 'components', 'schemas');
    const records: [string, RecordDeclaration][] = [
      ['Company', companyRecord],
      ['Contact', contactRecord],
    ];
    for (const [name, record] of records) {
      const fields = Object.keys(record.fields);
      const required = Object.entries(record.fields)
        .filter(([, spec]) => spec.kind === 'text' && spec.required)
        .map(([key]) => key);
      expect(Object.keys(objectAt(schemas, name, 'properties'))).toEqual(['id', ...fields, 'createdBy', 'createdAt', 'updatedAt', 'version']);
      expect(objectAt(schemas, `${name}Create`)).toMatchObject({ additionalProperties: false });
      expect(objectAt(schemas, `${name}Create`)['required'] ?? []).toEqual(required);
      expect(Object.keys(objectAt(schemas, `${name}Create`, 'properties'))).toEqual(fields);
      expect(Object.keys(objectAt(schemas, `${name}Patch`, 'properties'))).toEqual(fields);
      expect(objectAt(schemas, `${name}Patch`)['required']).toBeUndefined();
    }
    expect(objectAt(schemas, 'Company', 'properties', 'annualRevenue')).toMatchObject({ anyOf: [{ $ref: '#/components/schemas/Money' }, { type: 'null' }] });
  });

  it('offers both the Keycloak OpenID Connect scheme and a pasted bearer token, either accepted', () => {
    expect(objectAt(doc, 'components', 'securitySchemes')).toEqual({
      keycloak: { type: 'openIdConnect', openIdConnectUrl: `${ISSUER}/.well-known/openid-configuration`, description: expect.any(String) },
      bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: expect.any(String) },
    });
    expect(doc['security']).toEqual([{ keycloak: [] }, { bearer: [] }]);
    for (const { op } of operations) expect(op['security']).toBeUndefined();
  });

  it('refuses to build a document whose references name nothing', () => {
    const [first] = routes;
    if (!first) throw new Error('no routes');
    const broken = { ...first, operation: { ...first.operation, responses: { '200': { $ref: '#/components/responses/Nothing' } } } };
    expect(() => buildOpenApi([broken], ISSUER)).toThrow(/#\/components\/responses\/Nothing/);
  });
});
