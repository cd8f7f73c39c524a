import { AsyncResource } from 'node:async_hooks';
import { PassThrough, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import busboy from 'busboy';
import type { Request } from 'express';
import type { FieldViolation } from '@crm/platform';
import { z } from 'zod';
import { inlineSchema } from '../openapi/openapi.ts';
import { problem, validationProblem } from './problem.ts';
import { ProblemError, type BodySpec } from './route.ts';

/** The uploaded file as a handler gets it. */
export interface UploadedFile {
  /** Form field that carried it. */
  field: string;
  /** File name the client sent (untrusted: never use it as a path). */
  filename: string | undefined;
  /** Media type the client declared (untrusted). */
  mimeType: string;
  /**
   * The content, streamed (backpressure reaches the client). It ends only once the whole form has
   * been read and found valid; otherwise it errors, so a handler that commits at the end of the
   * stream never commits a refused upload. Consume it before the handler's promise settles.
   */
  stream: Readable;
}

/** The body of a multipart route: the one file and the validated text fields. */
export interface Upload<F> {
  file: UploadedFile;
  fields: F;
}

export interface MultipartOptions<S extends z.ZodObject> {
  /** Text fields (strings: use `z.coerce` for numbers), validated when the file starts. `z.strictObject({})` for none. */
  fields: S;
  /** Form field of the file; default `file`. */
  fileField?: string;
  /** Largest file accepted, bytes; a larger one answers 413. */
  maxFileSize: number;
  /** Largest text field value, bytes; default 64 KiB; a larger one answers 413. */
  maxFieldSize?: number;
  /** What the file is (OpenAPI). */
  description?: string;
}

const tooLarge = (detail: string): ProblemError => new ProblemError(problem(413, 'payload-too-large', 'Content too large', { detail }));
const invalid = (detail: string, errors: FieldViolation[]): ProblemError =>
  new ProblemError(problem(400, 'validation-error', 'Invalid request', { detail, code: 'VALIDATION_FAILED', errors }));

/**
 * A `multipart/form-data` body with exactly one file, parsed as it streams (busboy). Text fields
 * must precede the file (as S3 POST uploads require): the handler starts when the file does, with
 * the fields known by then. Answers 415 for another content type; 400 for an unknown or repeated
 * field, a field after the file, invalid fields (named as for JSON bodies), a missing file or a
 * malformed body; 413 for a file over `maxFileSize`, a field over `maxFieldSize` or a second
 * file. On a refusal the rest of the request is read off before answering (as body-parser does),
 * so the client gets the answer rather than a reset — the ingress caps the total size.
 */
export function multipart<S extends z.ZodObject>(options: MultipartOptions<S>): BodySpec<Upload<z.output<S>>> {
  const fileField = options.fileField ?? 'file';
  const maxFieldSize = options.maxFieldSize ?? 64 * 1024;
  const known = new Set(Object.keys(options.fields.shape));
  const fieldsSchema = inlineSchema(options.fields);
  const properties = typeof fieldsSchema['properties'] === 'object' ? fieldsSchema['properties'] : {};
  const required = Array.isArray(fieldsSchema['required']) ? fieldsSchema['required'] : [];
  return {
    kind: 'multipart',
    requestBody: {
      required: true,
      description: `text fields first, then the file (at most ${options.maxFileSize} bytes)`,
      content: {
        'multipart/form-data': {
          schema: {
            type: 'object',
            properties: {
              ...properties,
              [fileField]: { type: 'string', contentMediaType: 'application/octet-stream', description: options.description ?? 'the file' },
            },
            required: [...required, fileField],
            additionalProperties: false,
          },
        },
      },
    },
    problems: { '413': 'file or field too large, or more than one file', '415': 'not multipart/form-data' },
    read: (req, use) => {
      if (!req.is('multipart/form-data')) {
        throw new ProblemError(problem(415, 'unsupported-media-type', 'Unsupported media type', { detail: 'send the file as multipart/form-data' }));
      }
      return readForm(req, { ...options, fileField, maxFieldSize, known }, use);
    },
  };
}

async function readForm<S extends z.ZodObject, T>(
  req: Request,
  o: MultipartOptions<S> & { fileField: string; maxFieldSize: number; known: Set<string> },
  use: (body: Upload<z.output<S>>) => Promise<T>,
): Promise<T> {
  let form: busboy.Busboy;
  try {
    form = busboy({
      headers: req.headers,
      defParamCharset: 'utf8', // browsers send file names as raw UTF-8
      // one more field and part than allowed, so an extra field is named (400) rather than cut off
      // busboy reports its limit when the file reaches `fileSize`: one byte more, so a file of exactly maxFileSize passes
      limits: { fileSize: o.maxFileSize + 1, files: 1, fields: o.known.size + 1, parts: o.known.size + 2, fieldSize: o.maxFieldSize },
    });
  } catch (error) {
    throw invalid(`malformed multipart body: ${error instanceof Error ? error.message : String(error)}`, []);
  }
  const raw: Record<string, string> = {};
  let file: PassThrough | undefined;
  let handled: Promise<T> | undefined;
  let failure: Error | undefined;
  const stopped = Promise.withResolvers<void>();
  const stop = (error: unknown): void => {
    if (failure) return;
    failure = error instanceof Error ? error : new Error(String(error));
    file?.destroy(failure);
    req.unpipe(form);
    req.resume(); // read off the rest, so the answer is not lost in a reset connection
    stopped.resolve();
  };

  // after a refusal busboy may still emit parts of the chunk it is parsing: ignore them
  form.on('field', (name, value, info) => {
    if (failure) return;
    if (name === o.fileField) return stop(invalid('the request body is not valid', [{ field: name, message: 'must be a file' }]));
    if (file) return stop(invalid('text fields must precede the file', [{ field: name, message: 'must precede the file' }]));
    if (!o.known.has(name)) return stop(invalid('the request body is not valid', [{ field: name, message: 'unknown field' }]));
    if (Object.hasOwn(raw, name)) return stop(invalid('the request body is not valid', [{ field: name, message: 'given more than once' }]));
    if (info.valueTruncated) return stop(tooLarge(`field ${name} is larger than ${o.maxFieldSize} bytes`));
    raw[name] = value;
  });
  // bound: busboy emits from stream callbacks, outside the request's async context (tenant, trace)
  form.on(
    'file',
    AsyncResource.bind((name: string, stream: Readable, info: busboy.FileInfo) => {
      if (failure) return void stream.resume();
      if (name !== o.fileField) {
        stream.resume();
        return stop(invalid('the request body is not valid', [{ field: name, message: 'unknown field' }]));
      }
      const fields = z.safeParse(o.fields, raw);
      if (!fields.success) {
        stream.resume();
        return stop(new ProblemError(validationProblem(fields.error, 'body')));
      }
      const content = new PassThrough();
      file = content;
      // the handler sees errors through its reads; an unread stream must not crash the process
      content.on('error', () => undefined);
      stream.on('limit', () => stop(tooLarge(`the file is larger than ${o.maxFileSize} bytes`)));
      stream.pipe(content, { end: false }); // ended below, once the whole form is read and valid
      handled = use({ file: { field: name, filename: info.filename, mimeType: info.mimeType, stream: content }, fields: fields.data });
      handled.then(
        () => content.resume(), // discard what the handler left unread, so parsing can finish
        (error: unknown) => stop(error),
      );
    }),
  );
  form.on('filesLimit', () => stop(tooLarge('only one file is accepted')));
  form.on('fieldsLimit', () => stop(tooLarge('too many fields')));
  form.on('partsLimit', () => stop(tooLarge('too many parts')));
  form.on('error', (error: unknown) => stop(invalid(`malformed multipart body: ${error instanceof Error ? error.message : String(error)}`, [])));
  req.on('close', () => {
    if (!req.complete) stop(new Error('the client aborted the upload'));
  });
  const parsed = new Promise<void>((resolve) => form.on('close', resolve));
  req.pipe(form);

  await Promise.race([parsed, stopped.promise]);
  if (!failure && !file) {
    const fields = z.safeParse(o.fields, raw);
    const errors = fields.success ? [] : (validationProblem(fields.error, 'body').errors ?? []);
    stop(invalid('the request body is not valid', [...errors, { field: o.fileField, message: 'a file is required' }]));
  }
  if (!failure && file && handled) {
    file.end();
    return await handled;
  }
  // never answer while the handler still runs, nor before the request is read off
  await Promise.allSettled([handled]);
  await finished(req).catch(() => undefined);
  throw failure ?? new Error('multipart body ended without a result');
}
