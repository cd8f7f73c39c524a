import { describe, expect, it } from '@jest/globals';
import { fieldsWhere, parseUtf8Json } from './request-body.ts';

const bytes = (...parts: (string | number[])[]): Uint8Array => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
const fields = (result: ReturnType<typeof parseUtf8Json>): string[] | undefined =>
  'problem' in result ? result.problem.errors?.map((e) => e.field) : undefined;

describe('parseUtf8Json', () => {
  it('parses UTF-8 JSON, drops a BOM, and reads an empty body as {}', () => {
    expect(parseUtf8Json(bytes('{"name":"Zürich"}'))).toEqual({ value: { name: 'Zürich' } });
    expect(parseUtf8Json(bytes([0xef, 0xbb, 0xbf], '{"a":1}'))).toEqual({ value: { a: 1 } });
    expect(parseUtf8Json(bytes(''))).toEqual({ value: {} });
    expect(parseUtf8Json(bytes('{"emoji":"\\ud83d\\ude00"}'))).toEqual({ value: { emoji: '😀' } });
  });

  it('names the fields holding invalid UTF-8, nested and in arrays', () => {
    const result = parseUtf8Json(bytes('{"a":"ok","b":{"c":["x","caf', [0xe9], '"]},"d":"', [0xc3], '"}'));
    expect(fields(result)).toEqual(['b.c.1', 'd']);
    expect('problem' in result && result.problem).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
  });

  it('falls back to the body when invalid UTF-8 cannot be placed', () => {
    // a real U+FFFD elsewhere makes replacement characters ambiguous
    expect(fields(parseUtf8Json(bytes('{"a":"\uFFFD","b":"', [0xff], '"}')))).toEqual(['body']);
    // invalid bytes outside any string
    expect(fields(parseUtf8Json(bytes('{"a":1', [0xff], '}')))).toEqual(['body']);
  });

  it('refuses lone surrogates in values and keys, naming them', () => {
    expect(fields(parseUtf8Json(bytes('{"name":"a\\ud800","tags":["ok","\\udc00"]}')))).toEqual(['name', 'tags.1']);
    expect(fields(parseUtf8Json(bytes('{"\\ud800":1}')))).toEqual(['\ud800']);
    expect(fields(parseUtf8Json(bytes('"\\udfff"')))).toEqual(['body']);
  });

  it('answers malformed JSON with a problem on the body', () => {
    expect(fields(parseUtf8Json(bytes('{"a":')))).toEqual(['body']);
  });
});

describe('fieldsWhere', () => {
  it('walks a deeply nested value without overflowing the stack', () => {
    const depth = 100_000;
    const deep: unknown = JSON.parse(`${'['.repeat(depth)}"x"${']'.repeat(depth)}`);
    const found = fieldsWhere(deep, (s) => s === 'x');
    expect(found).toHaveLength(1);
    expect(found[0]?.split('.')).toHaveLength(depth);
  });
});
