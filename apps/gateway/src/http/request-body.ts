import { AsyncResource } from 'node:async_hooks';
import express, { type Request, type RequestHandler, type Response } from 'express';
import type { FieldViolation } from '@crm/platform';
import { problem, sendProblem, type Problem } from './problem.ts';

/** True when the request announces a body (`Content-Length` other than 0, or `Transfer-Encoding`; RFC 9112 §6.3). */
export function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * For a refusal sent before the request body was read (401, 429, 415): `Connection: close`, so
 * the server drops the connection after the answer instead of reading an unwanted body to its end.
 */
export function closeIfBodyUnread(req: Request, res: Response): void {
  if (hasBody(req) && !req.readableEnded) res.set('Connection', 'close');
}

const JSON_TYPES = ['application/json', 'application/*+json'];
/** WHATWG labels of UTF-8 a client may name in `charset` (RFC 8259 §8.1: JSON is UTF-8). */
const UTF8_LABELS = new Set(['utf-8', 'utf8']);
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lenientUtf8 = new TextDecoder('utf-8');
/** U+FFFD REPLACEMENT CHARACTER, encoded. */
const REPLACEMENT_BYTES = Buffer.from('\uFFFD', 'utf8');

const unsupported = (detail: string): Problem =>
  problem(415, 'unsupported-media-type', 'Unsupported media type', { detail, errors: [{ field: 'Content-Type', message: detail }] });
const invalid = (detail: string, errors: FieldViolation[]): Problem =>
  problem(400, 'validation-error', 'Invalid request', { detail, code: 'VALIDATION_FAILED', errors });

/** The `charset` parameter of a media type (RFC 9110 §8.3.1), lower-cased and unquoted. */
function charsetOf(contentType: string): string | undefined {
  return /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType)?.[1]?.toLowerCase();
}

/** A step of the walk in {@link fieldsWhere}: the key that led here and the step before (a path without copying). */
interface Step {
  key: string;
  parent: Step | undefined;
}

function pathOf(step: Step | undefined): string {
  const keys: string[] = [];
  for (let s = step; s; s = s.parent) keys.push(s.key);
  return keys.reverse().join('.');
}

/**
 * Paths (dotted, as validation problems name fields; `''` for the body itself) of every string
 * value or object key for which `bad` holds, in document order. Iterative and linear in the size
 * of the value, so no body (1 MB of `[[[[…`) can overflow the stack or take quadratic time.
 */
export function fieldsWhere(value: unknown, bad: (text: string) => boolean): string[] {
  const found: string[] = [];
  const stack: [unknown, Step | undefined][] = [[value, undefined]];
  for (let item = stack.pop(); item; item = stack.pop()) {
    const [node, at] = item;
    if (typeof node === 'string') {
      if (bad(node)) found.push(pathOf(at));
    } else if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--) stack.push([node[i], { key: String(i), parent: at }]);
    } else if (node !== null && typeof node === 'object') {
      const entries = Object.entries(node);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!;
        const step = { key, parent: at };
        stack.push([child, step]);
        if (bad(key)) stack.push([key, step]);
      }
    }
  }
  return found;
}

/**
 * Decodes and parses a JSON body: UTF-8 only (a leading BOM is dropped), then JSON, then Unicode
 * text only — a string with a lone surrogate (`"\ud800"`, legal JSON but no text) or a NUL
 * (`"\u0000"`, which Postgres can store neither as text nor in jsonb) is refused.
 * Returns the value (`{}` for an empty body, as body-parser did) or a 400 problem naming the
 * fields it can: for invalid UTF-8, the fields whose text holds the undecodable bytes when the
 * rest of the body still parses; else field `body`.
 */
export function parseUtf8Json(bytes: Uint8Array): { value: unknown } | { problem: Problem } {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return { problem: invalidUtf8(bytes) };
  }
  if (text.trim() === '') return { value: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { problem: invalid('the request body is not valid JSON', [{ field: 'body', message: error instanceof Error ? error.message : 'not JSON' }]) };
  }
  const surrogates = fieldsWhere(value, (s) => !s.isWellFormed());
  if (surrogates.length) {
    return {
      problem: invalid(
        'the request body holds text that is not Unicode',
        surrogates.map((field) => ({ field: field || 'body', message: 'contains a lone surrogate (not Unicode text)' })),
      ),
    };
  }
  // Postgres stores NUL in neither text nor jsonb: refused in every string, also inside free-form JSON
  const nul = fieldsWhere(value, (s) => s.includes('\u0000'));
  if (nul.length) {
    return {
      problem: invalid(
        'the request body holds NUL characters',
        nul.map((field) => ({ field: field || 'body', message: 'must not contain NUL characters' })),
      ),
    };
  }
  return { value };
}

function invalidUtf8(bytes: Uint8Array): Problem {
  const message = 'is not valid UTF-8';
  let fields = ['body'];
  // where the undecodable bytes sit shows only when no real U+FFFD was sent and the rest parses
  if (!Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).includes(REPLACEMENT_BYTES)) {
    try {
      const named = fieldsWhere(JSON.parse(lenientUtf8.decode(bytes)), (s) => s.includes('\uFFFD'));
      if (named.length) fields = named.map((f) => f || 'body');
    } catch {
      // not JSON either: the body as a whole
    }
  }
  return invalid(
    'the request body is not valid UTF-8',
    fields.map((field) => ({ field, message })),
  );
}

/**
 * Reads the request body as UTF-8 JSON into `req.body`, at most `limit` (bytes or e.g. `'1mb'`):
 * a JSON media type (`application/json`, `application/*+json`) with no `charset` or UTF-8 →
 * parsed ({@link parseUtf8Json}, 400 naming fields); another `charset` → 415; a body of any
 * other type → 415, except `multipart/form-data`, which routes stream themselves; too large →
 * 413; no body → nothing read. Problems are sent as problem+json. The rest of the request runs in
 * the async context the middleware was called in (tenant metadata on gRPC calls), not the
 * socket's.
 */
export function utf8JsonBody(limit: string | number): RequestHandler {
  const read = express.raw({ type: JSON_TYPES, limit });
  return (req, res, next) => {
    if (!hasBody(req) || req.is('multipart/form-data')) return next();
    const refuse = (p: Problem): void => {
      closeIfBodyUnread(req, res);
      sendProblem(res, p);
    };
    if (!req.is(JSON_TYPES)) return refuse(unsupported('send the body as application/json'));
    const charset = charsetOf(req.get('content-type') ?? '');
    if (charset !== undefined && !UTF8_LABELS.has(charset)) return refuse(unsupported(`charset ${charset} is not supported: send UTF-8`));
    const resume = AsyncResource.bind((error?: unknown): void => {
      if (error) {
        const status = typeof error === 'object' && 'status' in error && typeof error.status === 'number' ? error.status : 500;
        if (status === 413) return refuse(problem(413, 'payload-too-large', 'Content too large', { detail: `the body is larger than ${String(limit)}` }));
        const detail = error instanceof Error ? error.message : undefined;
        if (status === 415) return refuse(problem(415, 'unsupported-media-type', 'Unsupported media type', { detail }));
        if (status >= 400 && status < 500) return refuse(problem(status, 'bad-request', 'Bad request', { detail }));
        return next(error);
      }
      const body: unknown = req.body;
      const parsed = parseUtf8Json(Buffer.isBuffer(body) ? body : new Uint8Array());
      if ('problem' in parsed) return sendProblem(res, parsed.problem);
      req.body = parsed.value;
      next();
    });
    read(req, res, resume);
  };
}
