import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A local HTTP server of a test: its base URL and `close()`. */
export interface StubServer {
  url: string;
  close(): Promise<void>;
}

async function start(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function stop(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}

/**
 * A forwarding proxy to `target` (GET and HEAD only, enough for OpenID discovery and JWKS) that
 * counts the requests per path: stands for Keycloak's in-cluster URL, and shows how often keys
 * were fetched.
 */
export async function startCountingProxy(target: string): Promise<StubServer & { requests(path: string): number }> {
  const counts = new Map<string, number>();
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://proxy').pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    fetch(`${target}${req.url ?? '/'}`, { method: req.method ?? 'GET' }).then(
      async (upstream) => {
        const body = Buffer.from(await upstream.arrayBuffer());
        res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' }).end(body);
      },
      () => res.writeHead(502).end(),
    );
  });
  const url = await start(server);
  return { url, requests: (path) => counts.get(path) ?? 0, close: () => stop(server) };
}

/** A server that accepts connections and requests but never answers (a hung Keycloak). */
export async function startSilentServer(): Promise<StubServer> {
  const server = createServer(() => undefined);
  const url = await start(server);
  return { url, close: () => stop(server) };
}

/** A URL nothing listens at: a port bound and released again. */
export async function closedUrl(): Promise<string> {
  const server = createServer();
  const url = await start(server);
  await stop(server);
  return url;
}
