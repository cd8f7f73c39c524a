import type { RequestHandler } from 'express';
import type { FieldViolation } from '@crm/platform';
import { problem, sendProblem } from './problem.ts';
import { closeIfBodyUnread } from './request-body.ts';

/**
 * What is wrong with each parameter of a raw query string (the part after `?`, `+` as space), as
 * validation problems name fields: a percent-encoding that is no UTF-8 text — malformed (`%`, `%zz`),
 * invalid bytes (`%FF`), or a lone surrogate (`%ED%A0%80`) — or a NUL character (`%00`), which no
 * Postgres text holds. Empty when every parameter is text.
 */
export function queryViolations(raw: string): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const decode = (text: string): string | undefined => {
    try {
      return decodeURIComponent(text.replaceAll('+', ' '));
    } catch {
      return undefined; // URIError: malformed or not UTF-8
    }
  };
  for (const pair of raw.split('&')) {
    if (!pair) continue;
    const at = pair.indexOf('=');
    const [rawKey, rawValue] = at < 0 ? [pair, ''] : [pair.slice(0, at), pair.slice(at + 1)];
    const key = decode(rawKey);
    const value = decode(rawValue);
    const field = key && !key.includes('\u0000') ? key : 'query';
    if (key === undefined || value === undefined) violations.push({ field, message: 'not UTF-8 text (malformed percent-encoding or a lone surrogate)' });
    else if (key.includes('\u0000') || value.includes('\u0000')) violations.push({ field, message: 'must not contain NUL characters' });
  }
  return violations;
}

/**
 * Refuses (400, naming each parameter) a query string that is not Unicode text without NUL (see
 * {@link queryViolations}). Express' query parser would replace undecodable bytes with U+FFFD and
 * pass NUL on — a search for `%00` reached Postgres and failed as a 500.
 */
export function utf8Query(): RequestHandler {
  return (req, res, next) => {
    const at = req.originalUrl.indexOf('?');
    const errors = at < 0 ? [] : queryViolations(req.originalUrl.slice(at + 1));
    if (!errors.length) return next();
    closeIfBodyUnread(req, res);
    sendProblem(res, problem(400, 'validation-error', 'Invalid request', { detail: 'the request query is not valid', code: 'VALIDATION_FAILED', errors }));
  };
}
