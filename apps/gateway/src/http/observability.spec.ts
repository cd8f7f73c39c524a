import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { Router, type ErrorRequestHandler } from 'express';
import { createLogger } from '@crm/platform';
import { accessLog, compileTemplate, compileTemplates, matchTemplate, routeLabel, routeLabels, UNMATCHED } from './observability.ts';

const ID = '0192f3a4-5b6c-7d8e-9f00-112233445566';

describe('route templates', () => {
  it('match as Express does: case-insensitive, optional trailing slash, one segment per parameter, static before parameters', () => {
    // the parameter route first: compileTemplates orders them as mountRoutes mounts them
    const compiled = compileTemplates([
      { method: 'get', path: '/api/v1/companies/:id' },
      { method: 'get', path: '/api/v1/companies/export' },
      { method: 'post', path: '/api/v1/companies' },
      { method: 'get', path: '/api/v1/companies/:id/contacts/:contactId' },
    ]);
    expect(matchTemplate(compiled, 'GET', `/api/v1/companies/${ID}`)).toBe('/api/v1/companies/:id');
    expect(matchTemplate(compiled, 'HEAD', `/API/v1/Companies/${ID}/`)).toBe('/api/v1/companies/:id');
    expect(matchTemplate(compiled, 'GET', '/api/v1/companies/export')).toBe('/api/v1/companies/export');
    expect(matchTemplate(compiled, 'GET', `/api/v1/companies/${ID}/contacts/x`)).toBe('/api/v1/companies/:id/contacts/:contactId');
    expect(matchTemplate(compiled, 'DELETE', `/api/v1/companies/${ID}`)).toBeUndefined();
    expect(matchTemplate(compiled, 'GET', '/api/v1/companies//')).toBeUndefined();
    expect(compileTemplate({ method: 'get', path: '/files/*rest' })).toBeUndefined();
  });
});

/** Items as they arrive, and a promise of the first one matching (already there or still to come). */
function collector<T>(): { items: T[]; push(item: T): void; first(match: (item: T) => boolean): Promise<T> } {
  const items: T[] = [];
  const waiting = new Set<{ match: (item: T) => boolean; resolve: (item: T) => void }>();
  return {
    items,
    push(item) {
      items.push(item);
      for (const w of waiting) {
        if (!w.match(item)) continue;
        waiting.delete(w);
        w.resolve(item);
      }
    },
    first(match) {
      const found = items.find(match);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve) => waiting.add({ match, resolve }));
    },
  };
}

describe('route labels and the access log on a real Express server', () => {
  const lines = collector<Record<string, unknown>>();
  const labels = collector<{ path: string; label: string }>();
  let server: Server;
  let base: string;

  beforeAll(async () => {
    const logger = createLogger('gateway', 'info', { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
    const app = express();
    app.set('trust proxy', 'loopback');
    // what the gateway's API declares, for requests refused before routing
    app.use(routeLabels([{ method: 'get', path: '/api/v1/companies/:id' }]));
    app.use((req, res, next) => {
      // the request id is the request's path here, so each access-log line names its request
      res.locals['requestId'] = req.originalUrl;
      res.on('finish', () => labels.push({ path: req.originalUrl, label: routeLabel(res) }));
      next();
    });
    app.use(accessLog(logger, { enabled: true, opsEndpoints: false }));
    app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }));

    // resources mounted as routers in a router (a route layer), errors answered outside them
    const companies = Router();
    companies.get('/:id', (req, res, next) => {
      if (req.params['id'] === 'missing') return next(Object.assign(new Error('no such company'), { status: 404 }));
      res.locals['ctx'] = { organizationId: 'org-1', userId: 'user-1', roles: [], requestId: req.originalUrl };
      res.json({ id: req.params['id'], name: 'Initech' });
    });
    const contacts = Router();
    contacts.get('/:id', (_req, _res, next) => next(Object.assign(new Error('no such contact'), { status: 404 })));
    const api = Router();
    api.use((req, res, next) => (req.get('authorization') ? next() : void res.status(401).end()));
    api.use('/companies', companies);
    api.use('/contacts', contacts);
    app.use('/api/v1', api);
    const errors: ErrorRequestHandler = (error: { status?: number }, _req, res, _next) => void res.status(error.status ?? 500).json({ error: true });
    app.use(errors);

    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const get = (path: string, auth = true) => fetch(`${base}${path}`, auth ? { headers: { authorization: 'Bearer secret-token' } } : {});
  const labelOf = async (path: string) => (await labels.first((l) => l.path === path)).label;
  const logged = (path: string) => lines.first((l) => l['msg'] === 'request completed' && l['requestId'] === path);

  it('label every request with its full route template, per resource, also on error paths', async () => {
    for (const path of [`/api/v1/companies/${ID}`, '/api/v1/companies/missing', '/api/v1/contacts/missing', '/nowhere']) await (await get(path)).arrayBuffer();
    expect(await labelOf(`/api/v1/companies/${ID}`)).toBe('/api/v1/companies/:id');
    // the error left both routers before the answer: still the full template of each resource
    expect(await labelOf('/api/v1/companies/missing')).toBe('/api/v1/companies/:id');
    expect(await labelOf('/api/v1/contacts/missing')).toBe('/api/v1/contacts/:id');
    expect(await labelOf('/nowhere')).toBe(UNMATCHED);
  });

  it('label a request refused before routing with the route it was headed for', async () => {
    const res = await get(`/api/v1/companies/${ID}?refused`, false);
    expect(res.status).toBe(401);
    expect(await labelOf(`/api/v1/companies/${ID}?refused`)).toBe('/api/v1/companies/:id');
  });

  it('write one access-log line per request: template, status, bytes, ids, address; no raw path, id or token', async () => {
    const res = await get(`/api/v1/companies/${ID}?q=1`);
    const body = await res.arrayBuffer();
    const line = await logged(`/api/v1/companies/${ID}?q=1`);
    expect(line).toMatchObject({
      level: 30,
      service: 'gateway',
      method: 'GET',
      route: '/api/v1/companies/:id',
      status: 200,
      bytes: body.byteLength,
      organizationId: 'org-1',
      userId: 'user-1',
    });
    expect(String(line?.['remoteAddress'])).toMatch(/127\.0\.0\.1$/);
    expect(typeof line?.['durationMs']).toBe('number');
    const { requestId: _path, ...fields } = line;
    expect(JSON.stringify(fields)).not.toContain(ID);
    expect(JSON.stringify(fields)).not.toContain('secret-token');
    expect(JSON.stringify(fields)).not.toContain('q=1');
  });

  it('leave out /healthz by default', async () => {
    await (await get('/healthz')).arrayBuffer();
    await (await get('/nowhere?after-healthz')).arrayBuffer();
    // the later request's line is there, so the earlier one would be too
    expect((await logged('/nowhere?after-healthz'))['route']).toBe(UNMATCHED);
    expect(lines.items.filter((l) => l['requestId'] === '/healthz')).toEqual([]);
    expect(await labelOf('/healthz')).toBe('/healthz');
  });
});
