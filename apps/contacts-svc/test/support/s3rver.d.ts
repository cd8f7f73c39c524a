/** The part of s3rver's API the blob store tests use (the package ships no types). */
declare module 's3rver' {
  import type { AddressInfo } from 'node:net';

  interface S3rverOptions {
    address?: string;
    /** 0 = a free port. */
    port?: number;
    silent?: boolean;
    /** Where objects are kept on disk. */
    directory: string;
    resetOnClose?: boolean;
    configureBuckets?: { name: string }[];
  }

  /** The part of a Koa context a test's own middleware uses. */
  interface S3rverContext {
    readonly method: string;
    /** The URL path, still percent-encoded (`/<bucket>/<key>` with path-style requests). */
    readonly path: string;
    readonly query: Record<string, string | string[] | undefined>;
    status: number;
    body: unknown;
    type: string;
  }

  /** A local S3-compatible server (Koa), for tests. */
  export default class S3rver {
    constructor(options: S3rverOptions);
    /** Koa's middleware list: composed when the server starts listening, so a test may add to it before {@link run}. */
    middleware: ((ctx: S3rverContext, next: () => Promise<void>) => Promise<void>)[];
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
  }
}
