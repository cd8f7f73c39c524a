import type { ChannelOptions, Server } from '@grpc/grpc-js';
import type { ServerOptions as Http2ServerOptions } from 'node:http2';

/**
 * gRPC channel hygiene: the settings of every server and client channel, chosen so that many
 * cancelled or timed-out calls never break unrelated calls on the same connection.
 *
 * What breaks it by default (measured with grpc-js 1.14 on Node 24):
 * - Every call the client cancels or lets hit its deadline sends an RST_STREAM. Node's HTTP/2
 *   server (nghttp2's CVE-2023-44487 "rapid reset" guard) allows a burst of 1000 of them per
 *   connection, refilled at 33/s; past that it sends GOAWAY(INTERNAL_ERROR) and every call in
 *   flight on the connection fails with `INTERNAL: Received RST_STREAM with code 2 … Session
 *   closed with error code 2`. We raise the budget (see {@link STREAM_RESET_BURST}).
 * - A server `max_concurrent_streams` the client can reach is worse: grpc-js clients do not queue
 *   at the limit, Node refuses the extra streams with ENHANCE_YOUR_CALM (RESOURCE_EXHAUSTED) —
 *   counting streams already reset but not yet reaped — and after 100 refusals closes the session.
 *   So the limit is a ceiling far above what a client sends: callUnary stops at
 *   {@link MAX_CALLS_IN_FLIGHT} per channel, half of it.
 */

/**
 * grpc-js keeps channelz statistics (call counts, timestamps, trace events) for every call unless
 * told not to; nothing here reads them (no channelz service is exposed), and they cost a few
 * percent of a service's CPU per call.
 */
export const NO_CHANNELZ: ChannelOptions = { 'grpc.enable_channelz': 0 };

/** Largest request or response message, bytes (both sides). */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
/** Streams one connection may hold open on a server. */
export const MAX_CONCURRENT_STREAMS = 2000;
/** Calls one client channel keeps in flight before callUnary sheds load (`unavailable`). */
export const MAX_CALLS_IN_FLIGHT = MAX_CONCURRENT_STREAMS / 2;
/** RST_STREAMs a server accepts at once per connection (Node's default 1000) … */
export const STREAM_RESET_BURST = 10_000;
/** … and per second after that (Node's default 33). Still stops a real rapid-reset flood (10⁵/s and more). */
export const STREAM_RESET_RATE = 1000;

/**
 * Options of a service's grpc-js `Server`:
 * - `grpc.max_concurrent_streams` {@link MAX_CONCURRENT_STREAMS} (see above);
 * - keepalive: ping each client connection after 60 s without traffic, drop it when the ping is
 *   not answered within 20 s (a gateway pod that vanished without FIN);
 * - `grpc.max_connection_age_ms` 5 min (+ 30 s grace for calls in flight): clients reconnect
 *   regularly, so new pods behind a Kubernetes Service get their share of long-lived HTTP/2
 *   connections; idle connections are kept (no max idle);
 * - no channelz ({@link NO_CHANNELZ}).
 */
export function serverOptions(): ChannelOptions {
  return {
    ...NO_CHANNELZ,
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_concurrent_streams': MAX_CONCURRENT_STREAMS,
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.max_connection_age_ms': 5 * 60_000,
    'grpc.max_connection_age_grace_ms': 30_000,
  };
}

/**
 * Raises the server's RST_STREAM budget to {@link STREAM_RESET_BURST} / {@link STREAM_RESET_RATE}.
 * grpc-js has no option for Node's `streamResetBurst`/`streamResetRate`, so they are added to the
 * HTTP/2 server options it keeps in the private `commonServerOptions` and passes to
 * `http2.createServer` at bind time. Call before `bindAsync`. Throws when grpc-js no longer has
 * that field (an upgrade changed it: find the new way before shipping; the channel test fails too).
 */
export function raiseStreamResetLimit(server: Server): void {
  const internals = server as unknown as { commonServerOptions?: Http2ServerOptions };
  if (typeof internals.commonServerOptions !== 'object') throw new Error('grpc-js Server has no commonServerOptions: cannot raise the RST_STREAM limit');
  internals.commonServerOptions.streamResetBurst = STREAM_RESET_BURST;
  internals.commonServerOptions.streamResetRate = STREAM_RESET_RATE;
}

/**
 * Options of a client channel to a service (the gateway: `new Channel(url, insecure(),
 * channelOptions())` per backend):
 * - keepalive: ping after 30 s without traffic, also with no call open, give up after 10 s — a
 *   dead connection is found before a request waits on it (grpc-js servers accept any ping rate);
 * - reconnect backoff 250 ms … 5 s instead of 1 s … 120 s, so a restarted service is used again
 *   within seconds;
 * - messages up to {@link MAX_MESSAGE_BYTES} both ways, like the servers;
 * - round-robin over every address the target resolves to: with a headless Kubernetes Service
 *   (`dns:///<svc>-headless:<port>`) each pod gets its share, re-resolved at most every 5 s
 *   (grpc-js' default `pick_first` would pin every call to one pod);
 * - no channelz ({@link NO_CHANNELZ}).
 */
export function channelOptions(): ChannelOptions {
  return {
    ...NO_CHANNELZ,
    'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
    'grpc.dns_min_time_between_resolutions_ms': 5_000,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.initial_reconnect_backoff_ms': 250,
    'grpc.max_reconnect_backoff_ms': 5_000,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  };
}
