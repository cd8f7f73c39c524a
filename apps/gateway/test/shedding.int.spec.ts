import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import express, { type Response as ExpressResponse } from 'express';
import pg from 'pg';
import { waitFor } from '@crm/testing';
import { LoadShedder, type ShedReason } from '../src/http/shedding.ts';
import { startTestSuite, type TestSuite } from './support/suite.ts';

/**
 * Load shedding (issue 6 §1): past capacity the gateway answers 503 problem+json with
 * `Retry-After` within milliseconds instead of letting requests wait; admitted requests succeed;
 * afterwards everything works again; probes are never shed. First the mechanics on a bare
 * Express app whose handler holds its answers (a backend that does not answer until told), then
 * the real gateway in front of contacts-svc made slow by a row lock held in Postgres.
 */

/** Shed answers must come back within this, ms: measured by the gateway, from arrival to answer. */
const FAST_MS = 50;

interface Answer {
  status: number;
  ms: number;
  retryAfter: string | null;
  contentType: string | null;
  code: unknown;
}

/** Sends `request`, recording the answer (and how long it took) in `into` as soon as it arrives. */
async function timed(request: () => Promise<Response>, into: Answer[]): Promise<Answer> {
  const started = performance.now();
  const res = await request();
  const text = await res.text();
  const answer = {
    status: res.status,
    ms: performance.now() - started,
    retryAfter: res.headers.get('retry-after'),
    contentType: res.headers.get('content-type'),
    code: res.headers.get('content-type')?.includes('json') ? (JSON.parse(text) as { code?: unknown }).code : undefined,
  };
  into.push(answer);
  return answer;
}

/**
 * Each answer is a 503 problem with `Retry-After: 1` and `code`, back at the client within
 * `withinMs` of sending (the client shares the test's event loop with the server, and a flood's
 * requests are handled one after the other: the last one waits for all before it).
 */
const expectShed = (answers: readonly Answer[], code: string, withinMs: number): void => {
  for (const a of answers) {
    expect(a).toMatchObject({ status: 503, retryAfter: '1', code, contentType: expect.stringMatching(/^application\/problem\+json/) });
    expect(a.ms).toBeLessThan(withinMs);
  }
};

describe('LoadShedder on a backend that holds its answers', () => {
  let server: Server;
  let url: string;
  let shedder: LoadShedder;
  const held: ExpressResponse[] = [];
  const shed: { reason: ShedReason; backend: string | undefined }[] = [];
  /** Server side: how long each 503 took from arrival to its last byte, ms. */
  const shedMs: number[] = [];

  beforeAll(async () => {
    shedder = new LoadShedder(
      { maxInFlight: 2, maxQueue: 2, maxQueueWaitMs: 10, maxEventLoopDelayMs: 0, retryAfterSeconds: 1 },
      { onShed: (reason, backend) => shed.push({ reason, backend }) },
    );
    const app = express();
    app.use((_req, res, next) => {
      const arrived = performance.now();
      res.once('finish', () => res.statusCode === 503 && shedMs.push(performance.now() - arrived));
      next();
    });
    app.get('/slow', shedder.admit('slow'), (_req, res) => void held.push(res));
    app.get('/fast', shedder.admit('fast'), (_req, res) => void res.json({ ok: true }));
    server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    shedder.close();
    for (const res of held.splice(0)) res.end();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const releaseHeld = (): void => {
    for (const res of held.splice(0)) res.json({ ok: true });
  };
  afterEach(releaseHeld);

  it('admits maxInFlight, sheds the rest within milliseconds (queue full at once, queued ones after the wait), then serves again', async () => {
    shed.length = 0;
    await Promise.all(Array.from({ length: 30 }, async () => (await fetch(`${url}/fast`)).text()));
    shed.length = 0;
    shedMs.length = 0;
    const answers: Answer[] = [];
    const flood = Array.from({ length: 30 }, () => timed(() => fetch(`${url}/slow`), answers));
    await waitFor('every request beyond the two in flight to be shed', async () => answers.length === 28, 5000, 5);
    expectShed(answers, 'BACKEND_SATURATED', 250);
    expect(shedMs).toHaveLength(28);
    expect(Math.max(...shedMs)).toBeLessThan(FAST_MS);
    expect(held).toHaveLength(2);
    expect(shedder.load()).toContainEqual({ backend: 'slow', inFlight: 2, queued: 0 });
    // at least the first two to wait gave up after the wait (more when requests arrived after others had left the queue); the rest found it full
    const waited = shed.filter((s) => s.reason === 'queue_timeout').length;
    expect({ shed: shed.length, waitedAtLeastTwo: waited >= 2, backends: [...new Set(shed.map((s) => s.backend))] }).toEqual({
      shed: 28,
      waitedAtLeastTwo: true,
      backends: ['slow'],
    });
    // another backend's routes have their own slots
    expect((await fetch(`${url}/fast`)).status).toBe(200);

    releaseHeld();
    const all = await Promise.all(flood);
    expect(all.filter((a) => a.status === 200)).toHaveLength(2);
    await waitFor('the slots to be free', async () => shedder.load().every((l) => l.inFlight === 0), 2000, 5);
    const after = fetch(`${url}/slow`);
    await waitFor('the next request to be admitted', async () => held.length === 1, 2000, 5);
    releaseHeld();
    expect((await after).status).toBe(200);
  });

  it('runs file transfers in a pool of their own: a full one sheds the next transfer at once and leaves the short requests their slots', async () => {
    const limits = { maxInFlight: 1, maxQueue: 0, maxQueueWaitMs: 10, maxTransfers: 2, maxEventLoopDelayMs: 0, retryAfterSeconds: 1 };
    const shedder = new LoadShedder(limits);
    const transfers: ExpressResponse[] = [];
    const app = express();
    app.get('/download', shedder.admitTransfer('b'), (_req, res) => void transfers.push(res));
    app.get('/short', shedder.admit('b'), (_req, res) => void res.json({ ok: true }));
    const srv = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => srv.once('listening', resolve));
    const base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    try {
      const running = [fetch(`${base}/download`), fetch(`${base}/download`)];
      await waitFor('two transfers to run', async () => transfers.length === 2, 2000, 5);
      const third = await fetch(`${base}/download`);
      expect(third.status).toBe(503);
      expect(third.headers.get('retry-after')).toBe('1');
      expect(((await third.json()) as { code: string }).code).toBe('BACKEND_SATURATED');
      // the backend's one short-request slot is untouched by the two transfers holding theirs
      expect((await fetch(`${base}/short`)).status).toBe(200);
      expect(shedder.load()).toContainEqual({ backend: 'b:transfers', inFlight: 2, queued: 0 });
      for (const res of transfers.splice(0)) res.json({ done: true });
      expect((await Promise.all(running)).map((r) => r.status)).toEqual([200, 200]);
    } finally {
      for (const res of transfers.splice(0)) res.end();
      shedder.close();
      srv.closeAllConnections();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });

  it('lets a queued request take a slot that frees within the wait', async () => {
    const patient = new LoadShedder({ maxInFlight: 1, maxQueue: 1, maxQueueWaitMs: 5000, maxEventLoopDelayMs: 0, retryAfterSeconds: 1 });
    const app = express();
    const waiting: ExpressResponse[] = [];
    app.get('/', patient.admit('b'), (_req, res) => void waiting.push(res));
    const local = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => local.once('listening', resolve));
    const base = `http://127.0.0.1:${(local.address() as AddressInfo).port}/`;
    try {
      const first = fetch(base);
      await waitFor('the first request to be admitted', async () => waiting.length === 1, 2000, 5);
      const second = fetch(base);
      await waitFor('the second request to wait', async () => patient.load()[0]?.queued === 1, 2000, 5);
      waiting.shift()!.json({ n: 1 });
      await waitFor('the second request to be admitted', async () => waiting.length === 1, 2000, 5);
      waiting.shift()!.json({ n: 2 });
      expect([(await first).status, (await second).status]).toEqual([200, 200]);
    } finally {
      patient.close();
      local.closeAllConnections();
      await new Promise<void>((resolve) => local.close(() => resolve()));
    }
  });

  it('drops a waiting request whose client gave up, and keeps the slot count right', async () => {
    const first = fetch(`${url}/slow`);
    await waitFor('the first request to be admitted', async () => held.length === 1, 2000, 5);
    const second = fetch(`${url}/slow`);
    await waitFor('the second to be admitted', async () => held.length === 2, 2000, 5);
    const leaving = new AbortController();
    const gone = fetch(`${url}/slow`, { signal: leaving.signal }).catch((e: unknown) => e);
    await waitFor('the third request to wait', async () => shedder.load().find((l) => l.backend === 'slow')?.queued === 1, 2000, 2);
    leaving.abort();
    expect(await gone).toMatchObject({ name: 'AbortError' });
    await waitFor('the queue to be empty', async () => shedder.load().find((l) => l.backend === 'slow')?.queued === 0, 2000, 5);
    releaseHeld();
    expect([(await first).status, (await second).status]).toEqual([200, 200]);
    expect(shedder.load()).toContainEqual({ backend: 'slow', inFlight: 0, queued: 0 });
  });

  it('sheds every guarded request while the event loop lags, never the probes, and serves again once it recovers', async () => {
    const guard = new LoadShedder(
      { maxInFlight: 10, maxQueue: 10, maxQueueWaitMs: 20, maxEventLoopDelayMs: 30, retryAfterSeconds: 1 },
      { sampleIntervalMs: 200 },
    );
    const app = express();
    app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }));
    app.use('/api', guard.guardEventLoop(), (_req, res) => void res.json({ ok: true }));
    const local = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => local.once('listening', resolve));
    const base = `http://127.0.0.1:${(local.address() as AddressInfo).port}`;
    let lagging = true;
    // sustained lag: the loop is busy 60 ms per turn (in its check phase), with a moment for I/O and timers in between
    const lag = (): void => {
      const until = performance.now() + 60;
      while (performance.now() < until);
      if (lagging) setImmediate(lag);
    };
    try {
      expect((await fetch(`${base}/api`)).status).toBe(200);
      setImmediate(lag);
      await waitFor('the shedder to see the lag', async () => guard.overloaded, 5000, 10);
      const answers: Answer[] = [];
      await timed(() => fetch(`${base}/api`), answers);
      expect(answers[0]).toMatchObject({ status: 503, retryAfter: '1', code: 'GATEWAY_OVERLOADED' });
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      lagging = false;
      await waitFor('the lag to be gone', async () => !guard.overloaded, 5000, 10);
      expect((await fetch(`${base}/api`)).status).toBe(200);
    } finally {
      lagging = false;
      guard.close();
      local.closeAllConnections();
      await new Promise<void>((resolve) => local.close(() => resolve()));
    }
  });
});

describe('the gateway in front of a contacts-svc that does not answer', () => {
  let suite: TestSuite;
  let locker: pg.Client;

  beforeAll(async () => {
    suite = await startTestSuite({
      gateway: {
        SHED_MAX_IN_FLIGHT: '4',
        SHED_MAX_QUEUE: '4',
        SHED_MAX_QUEUE_WAIT_MS: '10',
        RATE_LIMIT_PER_MINUTE: '1000000',
        RATE_LIMIT_PER_IP_PER_MINUTE: '1000000',
      },
    });
    locker = new pg.Client({ connectionString: suite.infra.databaseUrl });
    await locker.connect();
  });

  afterAll(async () => {
    await locker?.end();
    await suite?.close();
  });

  const metric = async (pattern: RegExp): Promise<number> => Number(pattern.exec(await (await fetch(`${suite.gateway.url}/metrics`)).text())?.[1] ?? 0);

  it('sheds a flood beyond its slots with fast 503s, completes the admitted requests, keeps probes and other backends up, then serves again', async () => {
    const created = await suite.api('/api/v1/companies', { method: 'POST', json: { name: 'Contended Corp' } });
    const { id } = (await created.json()) as { id: string };
    // a slow backend: every PATCH of this company waits for this transaction's row lock
    await locker.query('begin');
    await locker.query('select 1 from contacts.company where id = $1 for update', [id]);
    const token = await suite.token('admin@acme.test');
    const patch = (n: number) => () =>
      fetch(`${suite.gateway.url}/api/v1/companies/${id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ employees: n }),
      });

    // open the client's connections first: the flood measures the gateway, not TCP handshakes
    await Promise.all(Array.from({ length: 40 }, async () => (await fetch(`${suite.gateway.url}/healthz`)).text()));
    const answers: Answer[] = [];
    const flood = Array.from({ length: 40 }, (_, n) => timed(patch(n), answers));
    await waitFor('every request beyond the 4 in flight to be shed', async () => answers.length === 36, 5000, 5);
    expectShed(answers, 'BACKEND_SATURATED', 250);
    // the gateway's own clock: every 503 of the route answered within FAST_MS of arriving
    const route = 'method="PATCH",route="/api/v1/companies/:id",status="503"';
    expect(await metric(new RegExp(`http_server_request_duration_seconds_bucket\\{le="${FAST_MS / 1000}",service="gateway",${route}\\} (\\d+)`))).toBe(36);
    expect(await metric(new RegExp(`http_server_request_duration_seconds_count\\{service="gateway",${route}\\} (\\d+)`))).toBe(36);
    expect(await metric(/http_backend_requests\{backend="contacts",state="in_flight",service="gateway"\} (\d+)/)).toBe(4);
    const full = await metric(/http_requests_shed_total\{reason="queue_full",backend="contacts",service="gateway"\} (\d+)/);
    const waited = await metric(/http_requests_shed_total\{reason="queue_timeout",backend="contacts",service="gateway"\} (\d+)/);
    expect({ shed: full + waited, waitedAtLeast: waited >= 4 }).toEqual({ shed: 36, waitedAtLeast: true });

    // probes and another backend's routes are not shed
    expect((await fetch(`${suite.gateway.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${suite.gateway.url}/readyz`)).status).toBe(200);
    expect((await suite.api('/api/v1/analytics/overview')).status).toBe(200);

    await locker.query('commit');
    const all = await Promise.all(flood);
    expect(all.filter((a) => a.status === 200)).toHaveLength(4);
    expect(all.filter((a) => a.status !== 200 && a.status !== 503)).toEqual([]);
    const after = await suite.api(`/api/v1/companies/${id}`, { method: 'PATCH', json: { industry: 'retail' } });
    expect(after.status).toBe(200);
    expect(await after.json()).toMatchObject({ industry: 'retail', version: 6 });
  });

  it('sheds every API request while its event loop lags, and answers probes meanwhile', async () => {
    const gateway = await suite.startGateway({ SHED_MAX_EVENT_LOOP_DELAY_MS: '40' });
    const headers = { authorization: `Bearer ${await suite.token('admin@acme.test')}` };
    let lagging = true;
    const lag = (): void => {
      const until = performance.now() + 80;
      while (performance.now() < until);
      if (lagging) setImmediate(lag);
    };
    try {
      setImmediate(lag);
      let seen: Answer[] = [];
      await waitFor(
        'the gateway to shed while lagging',
        async () => {
          const answers: Answer[] = [];
          await Promise.all([
            timed(() => fetch(`${gateway.url}/api/v1/companies`, { headers }), answers),
            timed(() => fetch(`${gateway.url}/healthz`), answers),
            timed(() => fetch(`${gateway.url}/readyz`), answers),
          ]);
          seen = answers;
          return answers.some((a) => a.status === 503);
        },
        10_000,
        10,
      );
      expect(seen.map((a) => a.status).sort()).toEqual([200, 200, 503]);
      expect(seen.find((a) => a.status === 503)).toMatchObject({ retryAfter: '1', code: 'GATEWAY_OVERLOADED' });
    } finally {
      lagging = false;
    }
    await waitFor('the gateway to serve again', async () => (await fetch(`${gateway.url}/api/v1/companies`, { headers })).status === 200, 10_000, 20);
  });
});
