import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Channel, makeGenericClientConstructor, Metadata, type Client, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import {
  bindHandlers,
  callClientStream,
  callServerStream,
  channelOptions,
  createInternalTokenSigner,
  createInternalTokenVerifier,
  createLogger,
  DomainError,
  insecure,
  parseInternalTokenPrivateKey,
  parseInternalTokenPublicKeys,
  PlatformMetrics,
  requireContext,
  runWithContext,
  signCallsOn,
  startGrpcServer,
  type ClientStreamHandler,
  type ClientStreamMethod,
  type GrpcServerHandle,
  type PlainHandler,
  type RequestContext,
  type ServerStreamHandler,
  type ServerStreamMethod,
} from '../src/index.ts';

/**
 * Streaming gRPC calls through the platform's server and client: context, order, errors in both
 * directions and cancellation, against a real grpc-js server on loopback.
 */

const SERVICE = 'crm.test.v1.StreamService';
type Msg = Record<string, unknown>;
const json = {
  requestSerialize: (m: Msg) => Buffer.from(JSON.stringify(m)),
  requestDeserialize: (b: Buffer): Msg => JSON.parse(b.toString()) as Msg,
  responseSerialize: (m: Msg) => Buffer.from(JSON.stringify(m)),
  responseDeserialize: (b: Buffer): Msg => JSON.parse(b.toString()) as Msg,
};
const definition: ServiceDefinition = {
  sum: { path: `/${SERVICE}/Sum`, requestStream: true, responseStream: false, ...json },
  count: { path: `/${SERVICE}/Count`, requestStream: false, responseStream: true, ...json },
  ping: { path: `/${SERVICE}/Ping`, requestStream: false, responseStream: false, ...json },
};
interface StreamClient extends Client {
  sum: ClientStreamMethod<Msg, Msg>;
  count: ServerStreamMethod<Msg, Msg>;
}
const StreamClient = makeGenericClientConstructor(definition, 'StreamService');

const keys = generateKeyPairSync('ed25519');
const signer = createInternalTokenSigner(parseInternalTokenPrivateKey(keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()));
const ctx: RequestContext = { organizationId: '0b4c7a8e-0000-4000-8000-000000000002', userId: 'u', roles: ['crm-viewer'], requestId: 'streams' };

/** A promise with its resolve, for "the server saw X" signals. */
function signal<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** How the last Sum / Count handler ended, reported by the handler itself. */
let sumEnded = signal<string>();
let countEnded = signal<string>();

const sum: ClientStreamHandler = async (requests) => {
  let total = 0;
  let n = 0;
  try {
    for await (const message of requests) {
      n += 1;
      if (message['fail'] === true) throw new DomainError('not_found', 'THING_NOT_FOUND', 'no such thing');
      total += Number(message['n']);
    }
    sumEnded.resolve(`completed after ${n}`);
    return { total, n, organizationId: requireContext().organizationId };
  } catch (error) {
    sumEnded.resolve(`stopped after ${n}: ${(error as Error).message}`);
    throw error;
  }
};

const count: ServerStreamHandler = async function* (request) {
  let sent = 0;
  try {
    for (let i = 0; i < Number(request['to']); i += 1) {
      if (request['failAt'] === i) throw new DomainError('rule_violation', 'COUNT_FAILED', `failed at ${i}`);
      yield { i, organizationId: requireContext().organizationId, pad: 'x'.repeat(Number(request['pad'] ?? 0)) };
      sent += 1;
    }
  } finally {
    countEnded.resolve(`finally after ${sent}`);
  }
};

let server: GrpcServerHandle;
let channel: Channel;
let client: StreamClient;

beforeAll(async () => {
  const ping: PlainHandler = async () => ({});
  server = await startGrpcServer({
    host: '127.0.0.1',
    port: 0,
    services: [bindHandlers(definition, { sum, count, ping })],
    verifier: createInternalTokenVerifier(parseInternalTokenPublicKeys(keys.publicKey.export({ type: 'spki', format: 'pem' }).toString())),
    logger: createLogger('grpc-streams-spec', 'silent'),
    metrics: new PlatformMetrics('grpc-streams-spec'),
  });
  channel = new Channel(`127.0.0.1:${server.port}`, insecure(), channelOptions());
  signCallsOn(channel, signer);
  client = new StreamClient(`127.0.0.1:${server.port}`, insecure(), { channelOverride: channel }) as unknown as StreamClient;
});

afterAll(async () => {
  client.close();
  channel.close();
  await server.close(100);
});

async function* numbers(to: number, extra: (i: number) => Msg = () => ({})): AsyncGenerator<Msg> {
  for (let i = 1; i <= to; i += 1) yield { n: i, ...extra(i) };
}

describe('client-streaming calls', () => {
  it('deliver every message in order under the caller’s context and answer once', async () => {
    sumEnded = signal();
    const response = await runWithContext(ctx, () => callClientStream(client, client.sum, numbers(2000)));
    expect(response).toEqual({ total: (2000 * 2001) / 2, n: 2000, organizationId: ctx.organizationId });
    expect(await sumEnded.promise).toBe('completed after 2000');
  });

  // grpc-js ends the service's side of a reset stream like a half-closed one; the platform must tell them apart
  it.each([1, 10, 50, 500, 5000])(
    'reject with the source’s own error when the source fails after %i messages, and the service never completes',
    async (sent) => {
      sumEnded = signal();
      async function* failing(): AsyncGenerator<Msg> {
        yield* numbers(sent);
        throw new Error('upload refused: too large');
      }
      await expect(runWithContext(ctx, () => callClientStream(client, client.sum, failing()))).rejects.toThrow('upload refused: too large');
      // the service never completes a stream whose sender gave up
      expect(await sumEnded.promise).toMatch(/^stopped after \d+/);
    },
  );

  it('stop reading the source when the service answers early with an error', async () => {
    sumEnded = signal();
    let produced = 0;
    let closed = false;
    async function* endless(): AsyncGenerator<Msg> {
      try {
        for (;;) {
          produced += 1;
          yield { n: produced, fail: produced === 3 };
        }
      } finally {
        closed = true;
      }
    }
    const error = await runWithContext(ctx, () => callClientStream(client, client.sum, endless())).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe('THING_NOT_FOUND');
    expect(closed).toBe(true);
    expect(await sumEnded.promise).toBe('stopped after 3: no such thing');
  });

  it('refuse a stream without an internal token before the handler runs', async () => {
    sumEnded = signal();
    const raw = new StreamClient(`127.0.0.1:${server.port}`, insecure()) as unknown as StreamClient;
    const error = await new Promise<ServiceError | null>((resolve) => {
      const call = raw.sum(new Metadata(), {}, (err) => resolve(err));
      call.write({ n: 1 });
      call.end();
    });
    raw.close();
    expect(error?.details).toMatch(/token/i);
    expect(await Promise.race([sumEnded.promise, Promise.resolve('handler never ran')])).toBe('handler never ran');
  });
});

describe('server-streaming calls', () => {
  const collect = async (request: Msg, stopAfter = Infinity): Promise<Msg[]> => {
    const out: Msg[] = [];
    for await (const message of callServerStream(client, client.count, request)) {
      out.push(message);
      if (out.length >= stopAfter) break;
    }
    return out;
  };

  it('yield every response in order under the caller’s context, with backpressure over many large messages', async () => {
    countEnded = signal();
    const out = await runWithContext(ctx, () => collect({ to: 300, pad: 256 * 1024 }));
    expect(out.map((m) => m['i'])).toEqual([...Array(300).keys()]);
    expect(new Set(out.map((m) => m['organizationId']))).toEqual(new Set([ctx.organizationId]));
    expect(await countEnded.promise).toBe('finally after 300');
  });

  it('deliver what was sent, then the service’s error as a DomainError', async () => {
    countEnded = signal();
    const out: Msg[] = [];
    const error = await runWithContext(ctx, async () => {
      for await (const message of callServerStream(client, client.count, { to: 10, failAt: 3 })) out.push(message);
    }).catch((e: unknown) => e);
    expect(out.map((m) => m['i'])).toEqual([0, 1, 2]);
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe('COUNT_FAILED');
    expect(await countEnded.promise).toBe('finally after 3');
  });

  it('cancel the call when the reader stops early: the service’s generator is closed', async () => {
    countEnded = signal();
    const out = await runWithContext(ctx, () => collect({ to: 1_000_000, pad: 1024 }, 5));
    expect(out).toHaveLength(5);
    // the generator's finally ran long before a million messages
    expect(await countEnded.promise).toMatch(/^finally after \d+$/);
    expect(Number((await countEnded.promise).split(' ').pop())).toBeLessThan(1_000_000);
  });
});
