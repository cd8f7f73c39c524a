import { generateKeyPairSync } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Channel, makeGenericClientConstructor, status, type Client, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import {
  bindHandlers,
  callUnary,
  channelOptions,
  contextToMetadata,
  createInternalTokenSigner,
  createInternalTokenVerifier,
  createLogger,
  insecure,
  MAX_CALLS_IN_FLIGHT,
  parseInternalTokenPrivateKey,
  parseInternalTokenPublicKeys,
  PlatformMetrics,
  requireContext,
  runWithContext,
  runWithSigner,
  startGrpcServer,
  type GrpcServerHandle,
  type RequestContext,
  type UnaryMethod,
} from '../src/index.ts';

/**
 * gRPC channel hygiene against a real server of the platform: bursts of calls that the client
 * cancels or lets hit their deadline — well past Node's default budget of 1000 RST_STREAMs per
 * connection — run beside normal calls on one channel, and every normal call succeeds.
 */

const SERVICE = 'crm.test.v1.ProbeService';
type Msg = Record<string, unknown>;
const json = {
  requestSerialize: (m: Msg) => Buffer.from(JSON.stringify(m)),
  requestDeserialize: (b: Buffer): Msg => JSON.parse(b.toString()) as Msg,
  responseSerialize: (m: Msg) => Buffer.from(JSON.stringify(m)),
  responseDeserialize: (b: Buffer): Msg => JSON.parse(b.toString()) as Msg,
};
const definition: ServiceDefinition = {
  answer: { path: `/${SERVICE}/Answer`, requestStream: false, responseStream: false, ...json },
  hold: { path: `/${SERVICE}/Hold`, requestStream: false, responseStream: false, ...json },
};
interface ProbeClient extends Client {
  answer: UnaryMethod<Msg, Msg>;
  hold: UnaryMethod<Msg, Msg>;
}
const ProbeClient = makeGenericClientConstructor(definition, 'ProbeService');

const keys = generateKeyPairSync('ed25519');
const signer = createInternalTokenSigner(parseInternalTokenPrivateKey(keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()));
const ctx: RequestContext = { organizationId: '0b4c7a8e-0000-4000-8000-000000000001', userId: 'u', roles: ['crm-viewer'], requestId: 'burst' };

let server: GrpcServerHandle;
let channel: Channel;
let client: ProbeClient;
/** Hold calls that reached their handler, by the `kind` their request names. */
const held = { cancel: 0, expire: 0 };
/** Emits `change` after each count of {@link held} moved. */
const heldChanged = new EventEmitter();
let release: () => void = () => undefined;
const gate = new Promise<void>((resolve) => (release = resolve));
/** Answer calls with `{ wait: true }` are answered when this opens (replaced per round). */
let answerGate: Promise<void> = Promise.resolve();

beforeAll(async () => {
  server = await startGrpcServer({
    host: '127.0.0.1',
    port: 0,
    services: [
      bindHandlers(definition, {
        answer: async (request) => {
          if (request['wait'] === true) await answerGate;
          return { echo: request['n'], organizationId: requireContext().organizationId };
        },
        hold: async (request) => {
          held[request['kind'] === 'cancel' ? 'cancel' : 'expire'] += 1;
          heldChanged.emit('change');
          await gate; // answers only when the test ends: every caller gives up first
          return {};
        },
      }),
    ],
    verifier: createInternalTokenVerifier(parseInternalTokenPublicKeys(keys.publicKey.export({ type: 'spki', format: 'pem' }).toString())),
    logger: createLogger('grpc-channel-test', 'silent'),
    metrics: new PlatformMetrics('grpc-channel-test'),
  });
  const address = `127.0.0.1:${server.port}`;
  channel = new Channel(address, insecure(), channelOptions());
  client = new ProbeClient(address, insecure(), { channelOverride: channel }) as unknown as ProbeClient;
});

afterAll(async () => {
  release();
  client?.close();
  channel?.close();
  await server?.close(1000);
});

/** Resolves once `condition` holds (checked whenever a Hold call reaches its handler); rejects after 30 s naming `what`. */
function until(what: string, condition: () => boolean): Promise<void> {
  if (condition()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      heldChanged.off('change', check);
    };
    const check = () => {
      if (!condition()) return;
      done();
      resolve();
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out waiting for ${what}`));
    }, 30_000);
    heldChanged.on('change', check);
  });
}

const asCaller = <T>(fn: () => Promise<T>): Promise<T> => runWithSigner(signer, () => runWithContext(ctx, fn));

/** A Hold call through callUnary that hits its `deadlineMs`: resolves to the error it failed with. */
function expiring(deadlineMs: number): Promise<unknown> {
  return asCaller(() => callUnary(client, client.hold, { kind: 'expire' }, { deadlineMs })).then(
    () => 'answered',
    (error: unknown) => error,
  );
}

/** A raw, signed Hold call: `cancel()` gives up on it (RST_STREAM); `result` is its status code. */
async function cancellable(): Promise<{ cancel(): void; result: Promise<status | 'answered'> }> {
  const metadata = contextToMetadata(ctx, await signer.tokenFor(ctx, SERVICE));
  let cancel: () => void = () => undefined;
  const result = new Promise<status | 'answered'>((resolve) => {
    const call = client.hold({ kind: 'cancel' }, metadata, { deadline: new Date(Date.now() + 30_000) }, (error: ServiceError | null) =>
      resolve(error ? error.code : 'answered'),
    );
    cancel = () => call.cancel();
  });
  return { cancel, result };
}

describe('one gRPC channel under bursts of cancelled and timed-out calls', () => {
  it('answers every normal call in flight beside 1200 cancelled and 400 timed-out calls', async () => {
    const ROUNDS = 4;
    const CANCELLED_PER_ROUND = 300;
    const EXPIRING_PER_ROUND = 100;
    const NORMAL_PER_ROUND = 50;
    for (let round = 0; round < ROUNDS; round++) {
      let answer: () => void = () => undefined;
      answerGate = new Promise<void>((resolve) => (answer = resolve));
      // normal traffic stays open on the channel during the whole burst (generous deadline: a loaded CI machine)
      const normal = Array.from({ length: NORMAL_PER_ROUND }, (_, i) =>
        asCaller(() => callUnary(client, client.answer, { n: round * 1000 + i, wait: true }, { deadlineMs: 60_000 })),
      );
      const heldBefore = held.cancel;
      const expired = Array.from({ length: EXPIRING_PER_ROUND }, () => expiring(500));
      const cancels = await Promise.all(Array.from({ length: CANCELLED_PER_ROUND }, () => cancellable()));
      // every cancelled call is open on the server before the client gives up on it: one RST_STREAM each
      await until(`round ${round}: cancellable calls held by the server`, () => held.cancel - heldBefore >= CANCELLED_PER_ROUND);
      for (const c of cancels) c.cancel();
      expect(new Set(await Promise.all(cancels.map((c) => c.result)))).toEqual(new Set([status.CANCELLED]));
      for (const error of await Promise.all(expired)) expect(error).toMatchObject({ kind: 'unavailable', code: 'SERVICE_UNAVAILABLE' });

      answer();
      const answers = await Promise.all(normal);
      expect(answers).toEqual(Array.from({ length: NORMAL_PER_ROUND }, (_, i) => ({ echo: round * 1000 + i, organizationId: ctx.organizationId })));
    }
    expect((await asCaller(() => callUnary(client, client.answer, { n: 'after' })))['echo']).toBe('after');
  });

  it(`sheds calls beyond ${MAX_CALLS_IN_FLIGHT} in flight on one channel without calling, and serves again once they end`, async () => {
    const heldBefore = held.expire;
    const open = Array.from({ length: MAX_CALLS_IN_FLIGHT }, () => expiring(60_000));
    await until(`${MAX_CALLS_IN_FLIGHT} calls held by the server`, () => held.expire - heldBefore >= MAX_CALLS_IN_FLIGHT);
    await expect(asCaller(() => callUnary(client, client.answer, { n: 1 }))).rejects.toMatchObject({ kind: 'unavailable', code: 'TOO_MANY_CALLS_IN_FLIGHT' });
    release();
    expect(new Set(await Promise.all(open))).toEqual(new Set(['answered']));
    expect((await asCaller(() => callUnary(client, client.answer, { n: 2 })))['echo']).toBe(2);
  });
});
