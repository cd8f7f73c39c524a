import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** A TCP proxy on 127.0.0.1 that a test can cut and restore, to take one dependency away from one process. */
export interface TcpProxy {
  /** Port the proxy listens on. */
  readonly port: number;
  /** Connections accepted so far (each one forwarded, or reset while cut). */
  readonly accepted: number;
  /** Connections reset on arrival because the proxy was cut: the client's attempts during an outage. */
  readonly refused: number;
  /** Whether the proxy is cut now. */
  readonly isCut: boolean;
  /**
   * Cuts the link: every open connection is reset and new ones are reset on arrival (the client
   * sees ECONNRESET / "connection terminated", as when a server dies). Resolves once all were closed.
   */
  cut(): Promise<void>;
  /** Forwards new connections again. */
  restore(): void;
  /** `url` with its host and port replaced by the proxy's (e.g. a postgres:// URL through the proxy). */
  url(url: string): string;
  /** Resets every connection and stops listening. */
  close(): Promise<void>;
}

/**
 * Starts a TCP proxy on 127.0.0.1 (a free port) forwarding to `target` — e.g. one service's
 * `DATABASE_URL` through it, so a test can stop "its database" while every other process keeps
 * Postgres. Nothing is mocked: the client talks to the real server through a real socket pair.
 */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<Socket>();
  let cut = false;
  let accepted = 0;
  let refused = 0;
  const server: Server = createServer((client) => {
    accepted++;
    if (cut) {
      refused++;
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    open.add(client);
    open.add(upstream);
    const drop = (socket: Socket) => () => open.delete(socket);
    client.on('close', drop(client));
    upstream.on('close', drop(upstream));
    // either side failing ends both, as a broken link would
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as AddressInfo).port;

  const resetAll = async (): Promise<void> => {
    const closing = [...open].map((socket) => new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve()))));
    for (const socket of open) socket.resetAndDestroy();
    await Promise.all(closing);
  };

  return {
    port,
    get accepted() {
      return accepted;
    },
    get refused() {
      return refused;
    },
    get isCut() {
      return cut;
    },
    cut: async () => {
      cut = true;
      await resetAll();
    },
    restore: () => {
      cut = false;
    },
    url: (url) => {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    close: async () => {
      cut = true;
      await resetAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A proxy in front of the Postgres server of `databaseUrl` (host and port from the URL, 5432 by default). */
export function startPostgresProxy(databaseUrl: string): Promise<TcpProxy> {
  const u = new URL(databaseUrl);
  return startTcpProxy({ host: u.hostname || '127.0.0.1', port: Number(u.port || 5432) });
}
