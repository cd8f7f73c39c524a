import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Request, RequestHandler, Response } from 'express';
import PQueue from 'p-queue';
import { problem, sendProblem } from './problem.ts';
import { closeIfBodyUnread } from './request-body.ts';

/**
 * Load shedding: past capacity the gateway refuses fast instead of letting every request wait.
 *
 * Without it, requests offered faster than a backend answers pile up without bound — in sockets,
 * in gRPC calls that wait for their deadline, in database pools — until every answer takes
 * seconds and clients time out (creates at 300/s offered: p50 17 s, thousands of client
 * time-outs). With it, each backend has a fixed number of requests in flight and a short bounded
 * queue in front of them; a request that finds the queue full, or waits in it longer than the
 * limit, is answered 503 problem+json with `Retry-After` at once, and so is every API request
 * while the gateway's own event loop lags. Memory stays flat: nothing is held beyond
 * `maxInFlight + maxQueue` requests per backend.
 *
 * Only `/api/v1` is shed: `/healthz`, `/readyz`, `/metrics`, the OpenAPI document and the docs are
 * mounted outside it, so probes keep answering while the API sheds (an overloaded pod stays in
 * its Service: taking it out would move its load onto the others).
 */

/** Limits of a {@link LoadShedder} (gateway config `SHED_*`). */
export interface SheddingLimits {
  /** Requests of one backend's routes running at once (`SHED_MAX_IN_FLIGHT`). */
  maxInFlight: number;
  /** Requests of one backend's routes waiting for a slot; a request finding it full is shed at once (`SHED_MAX_QUEUE`; 0 = no waiting). */
  maxQueue: number;
  /** Longest wait for a slot, ms; then the request is shed (`SHED_MAX_QUEUE_WAIT_MS`). */
  maxQueueWaitMs: number;
  /**
   * File transfers (uploads, downloads, exports) of one backend running at once, in a pool of their
   * own without a queue (`SHED_MAX_TRANSFERS`): one more is shed at once, and slow transfers never
   * take the slots of the backend's short requests. Default 16.
   */
  maxTransfers?: number;
  /** Event-loop delay (mean over the last sample window, ms) above which every API request is shed; 0 = never (`SHED_MAX_EVENT_LOOP_DELAY_MS`). */
  maxEventLoopDelayMs: number;
  /** `Retry-After` of a shed answer, seconds (`SHED_RETRY_AFTER_SECONDS`). */
  retryAfterSeconds: number;
}

/** Why a request was shed: its backend's queue was full, it waited too long for a slot, or the event loop lags. */
export type ShedReason = 'queue_full' | 'queue_timeout' | 'event_loop';

/** A backend's admission state, for metrics. */
export interface BackendLoad {
  backend: string;
  /** Requests admitted and not yet answered. */
  inFlight: number;
  /** Requests waiting for a slot. */
  queued: number;
}

/** Options of a {@link LoadShedder}. */
export interface LoadShedderOptions {
  /** Called for every shed request (metrics), with its backend (undefined for event-loop shedding). */
  onShed?(reason: ShedReason, backend: string | undefined): void;
  /** How often the event-loop delay is sampled, ms (default 250): shedding starts and stops within about one window. */
  sampleIntervalMs?: number;
}

/** Resolution of the event-loop delay histogram, ms (Node's default); subtracted from its mean as under-pressure does. */
const DELAY_RESOLUTION_MS = 10;
/** `res.locals` key: the request already passed admission (an Express path may match several routes). */
const ADMITTED = 'shedding:admitted';

/**
 * Per-backend admission (a p-queue per backend: `maxInFlight` running, at most `maxQueue`
 * waiting, each for at most `maxQueueWaitMs`) and event-loop-delay shedding (Node's
 * `monitorEventLoopDelay`, sampled every window). A slot is held from admission until the response
 * closes (sent, or the client went away); a request whose client goes away while it waits leaves
 * the queue. `close()` stops the sampling.
 */
export class LoadShedder {
  readonly limits: SheddingLimits;
  readonly #queues = new Map<string, PQueue>();
  readonly #onShed: LoadShedderOptions['onShed'];
  readonly #histogram: ReturnType<typeof monitorEventLoopDelay> | undefined;
  readonly #sampler: NodeJS.Timeout | undefined;
  #eventLoopDelayMs = 0;

  constructor(limits: SheddingLimits, options: LoadShedderOptions = {}) {
    this.limits = limits;
    this.#onShed = options.onShed;
    if (limits.maxEventLoopDelayMs > 0) {
      const histogram = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
      histogram.enable();
      this.#histogram = histogram;
      const intervalMs = options.sampleIntervalMs ?? 250;
      let sampledAt = performance.now();
      this.#sampler = setInterval(() => {
        const now = performance.now();
        // a window without a single tick (the loop was blocked throughout) is measured by how late this sample is
        const delayMs = histogram.count > 0 ? histogram.mean / 1e6 - DELAY_RESOLUTION_MS : now - sampledAt - intervalMs;
        this.#eventLoopDelayMs = Math.max(0, delayMs);
        sampledAt = now;
        histogram.reset();
      }, intervalMs);
      this.#sampler.unref();
    }
  }

  /** Mean event-loop delay of the last sample window beyond the histogram's resolution, ms (0 while not measured). */
  get eventLoopDelayMs(): number {
    return this.#eventLoopDelayMs;
  }

  /** True while the event loop lags more than `maxEventLoopDelayMs`. */
  get overloaded(): boolean {
    return this.limits.maxEventLoopDelayMs > 0 && this.#eventLoopDelayMs > this.limits.maxEventLoopDelayMs;
  }

  /** In flight and waiting, per backend that has had a request. */
  load(): BackendLoad[] {
    return [...this.#queues].map(([backend, queue]) => ({ backend, inFlight: queue.pending, queued: queue.size }));
  }

  /** Middleware: sheds every request (503) while the event loop lags; first in the API's chain. */
  guardEventLoop(): RequestHandler {
    return (req, res, next) => {
      if (!this.overloaded) return next();
      this.#shed(req, res, 'event_loop', undefined, `the gateway is overloaded (event loop delayed ${Math.round(this.#eventLoopDelayMs)} ms)`);
    };
  }

  /**
   * Middleware of `backend`'s routes: admits the request to a slot (at once when one is free,
   * else after waiting in the bounded queue) or sheds it (503). Mount it on the routes' own paths
   * ahead of the rest of the chain, so a shed request costs no rate-limit query, no token check
   * and no body parsing. A request admitted once is not admitted again by another matching path.
   */
  admit(backend: string): RequestHandler {
    return this.#admit(backend, this.limits.maxInFlight, this.limits.maxQueue);
  }

  /**
   * Middleware of `backend`'s file transfers (routes with `transfer`): admission to the
   * backend's transfer pool (`<backend>:transfers`, {@link SheddingLimits.maxTransfers} slots, no
   * queue), shed with 503 at once when it is full.
   */
  admitTransfer(backend: string): RequestHandler {
    return this.#admit(`${backend}:transfers`, this.limits.maxTransfers ?? 16, 0);
  }

  #admit(backend: string, maxInFlight: number, maxQueue: number): RequestHandler {
    const queue = this.#queue(backend, maxInFlight);
    const { maxQueueWaitMs } = this.limits;
    return (req, res, next) => {
      if (res.locals[ADMITTED] === true) return next();
      res.locals[ADMITTED] = true;
      const run = () =>
        new Promise<void>((release) => {
          // the slot is held until the answer is complete or the client has gone
          res.once('close', () => release());
          if (res.writableEnded || req.destroyed) release();
          else next();
        });
      if (queue.pending < maxInFlight && queue.size === 0) {
        void queue.add(run);
        return;
      }
      if (queue.size >= maxQueue) {
        this.#shed(req, res, 'queue_full', backend, `${backend}: ${maxInFlight} requests in flight and ${queue.size} waiting`);
        return;
      }
      // the wait, not the work: once admitted, nothing aborts the task (that would free its slot early)
      const waiting = new AbortController();
      let started = false;
      const giveUp = (reason: 'timeout' | 'gone') => {
        if (!started) waiting.abort(reason);
      };
      const timer = setTimeout(() => giveUp('timeout'), maxQueueWaitMs);
      const leave = () => giveUp('gone');
      res.once('close', leave);
      const start = () => {
        started = true;
        clearTimeout(timer);
        res.off('close', leave);
        return run();
      };
      queue.add(start, { signal: waiting.signal }).catch(() => {
        // the client gave up while waiting: nobody to answer
        if (waiting.signal.reason === 'timeout' && !res.headersSent) {
          this.#shed(req, res, 'queue_timeout', backend, `${backend}: no request slot free within ${maxQueueWaitMs} ms`);
        }
      });
    };
  }

  /** Stops sampling the event loop. */
  close(): void {
    if (this.#sampler) clearInterval(this.#sampler);
    this.#histogram?.disable();
  }

  #queue(backend: string, concurrency: number): PQueue {
    let queue = this.#queues.get(backend);
    if (!queue) {
      queue = new PQueue({ concurrency });
      this.#queues.set(backend, queue);
    }
    return queue;
  }

  #shed(req: Request, res: Response, reason: ShedReason, backend: string | undefined, detail: string): void {
    this.#onShed?.(reason, backend);
    closeIfBodyUnread(req, res);
    sendProblem(res, problem(503, 'overloaded', 'Service overloaded', { detail, code: reason === 'event_loop' ? 'GATEWAY_OVERLOADED' : 'BACKEND_SATURATED' }), {
      'Retry-After': String(this.limits.retryAfterSeconds),
    });
  }
}
