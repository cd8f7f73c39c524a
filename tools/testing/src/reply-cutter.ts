import { createServer, Socket, type AddressInfo, type Server } from 'node:net';

/**
 * A TCP proxy in front of a gRPC (HTTP/2 cleartext) server that can lose a reply after the server
 * has done the work: once armed, the next response HEADERS frame the server sends on a stream —
 * grpc-js sends it only when the handler has finished, i.e. after the service committed — closes
 * both sides instead of being forwarded, exactly as if the service had died between commit and
 * reply. Everything else is forwarded untouched.
 */
export interface ReplyCutter {
  /** `127.0.0.1:<port>` to dial instead of the server. */
  address: string;
  /** Cuts the next reply (the next of any cutter sharing this one's {@link CutTrigger}); resolves once it has been cut. */
  cutNextReply(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The arm of one or more cutters. Cutters in front of the replicas of one service share one, so
 * "cut the next reply" means the next reply of whichever replica the client's balancer picked.
 */
export interface CutTrigger {
  /** Set while armed: called once, by the cutter that cut. */
  armed: (() => void) | undefined;
}

/** A new, unarmed {@link CutTrigger}. */
export function cutTrigger(): CutTrigger {
  return { armed: undefined };
}

const HEADERS = 0x1;

/** Starts a {@link ReplyCutter} for the server on 127.0.0.1:`targetPort`, armed through `trigger` (its own unless shared). */
export async function startReplyCutter(targetPort: number, trigger: CutTrigger = cutTrigger()): Promise<ReplyCutter> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    sockets.add(client).add(upstream);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', closeBoth).on('close', closeBoth);
    upstream.on('error', closeBoth).on('close', closeBoth);
    upstream.connect(targetPort, '127.0.0.1');
    client.pipe(upstream);
    // server → client: walk the HTTP/2 frames (9-byte header: length 24 bits, type, flags, stream id)
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      let offset = 0;
      while (pending.length - offset >= 9) {
        const length = pending.readUIntBE(offset, 3);
        const type = pending[offset + 3];
        const stream = pending.readUInt32BE(offset + 5) & 0x7fffffff;
        if (pending.length - offset < 9 + length) break;
        if (trigger.armed && type === HEADERS && stream !== 0) {
          const done = trigger.armed;
          trigger.armed = undefined;
          closeBoth();
          done();
          return;
        }
        client.write(pending.subarray(offset, offset + 9 + length));
        offset += 9 + length;
      }
      pending = pending.subarray(offset);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    cutNextReply: () => new Promise<void>((resolve) => (trigger.armed = resolve)),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
