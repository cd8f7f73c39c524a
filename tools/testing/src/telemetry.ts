import { existsSync, readdirSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { context, propagation, SpanKind, trace } from '@opentelemetry/api';
import type { tracing } from '@opentelemetry/sdk-node';

/**
 * Tracing for integration specs: the real OpenTelemetry SDK (NodeSDK, W3C propagation, the
 * AsyncLocalStorage context manager) with the production instrumentations and their settings
 * (`createInstrumentations` of `@crm/platform/telemetry`), exporting to an in-memory exporter.
 *
 * Why not `startTelemetry`: it is driven by `OTEL_*` variables and exports OTLP, and its ESM
 * loader hook cannot work under Jest — Jest loads modules through its own registry (one per spec
 * file), which neither loader hooks nor require hooks see. So the instrumentations' patches are
 * applied here by hand to the module instances of the spec's registry: `express`, `@grpc/grpc-js`,
 * `pg` (every installed copy: MikroORM brings its own) and `pg-pool`, and the process' `http`. The
 * patches are removed again by {@link TestTelemetry.shutdown}.
 *
 * Import this module alone and call {@link startTestTelemetry} before anything imports those
 * packages (`@crm/platform`, `@crm/contracts`, the apps): ES imports bind to what a module exports
 * when it is first linked, and ts-proto clients capture grpc-js' request methods when they are
 * built. So a spec imports its subjects dynamically, after starting this.
 */

/** A finished span as the exporter holds it. */
export type TestSpan = tracing.ReadableSpan;

/** A running in-memory tracing setup (see {@link startTestTelemetry}). */
export interface TestTelemetry {
  /** Spans ended so far, in the order they ended. */
  spans(): readonly TestSpan[];
  /** Forgets the spans ended so far. */
  reset(): void;
  /** Stops the SDK, removes the patches and unregisters the global tracer, propagator and context manager. */
  shutdown(): Promise<void>;
}

const repoRoot = resolve(import.meta.dirname, '../../..');

/**
 * Every installed copy of package `name`: the hoisted one and those nested one level down
 * (`node_modules/<pkg>/node_modules/<name>`), each as a `require` that resolves to it.
 */
function installedCopies(name: string): NodeJS.Require[] {
  const modules = join(repoRoot, 'node_modules');
  const packageDirs = readdirSync(modules).flatMap((entry) =>
    entry.startsWith('@') ? readdirSync(join(modules, entry)).map((sub) => join(modules, entry, sub)) : [join(modules, entry)],
  );
  const anchors = [repoRoot, ...packageDirs.filter((dir) => existsSync(join(dir, 'node_modules', name, 'package.json')))];
  return anchors.filter((dir) => existsSync(join(dir, 'package.json'))).map((dir) => createRequire(join(dir, 'package.json')));
}

/** The module objects of `name` in this registry: the built-in, or every installed copy (deduplicated). */
function moduleInstances(name: string): unknown[] {
  if (builtinModules.includes(name)) return [createRequire(import.meta.url)(`node:${name}`)];
  const seen = new Map<string, unknown>();
  for (const load of installedCopies(name)) {
    const path = load.resolve(name);
    if (!seen.has(path)) seen.set(path, load(name));
  }
  return [...seen.values()];
}

/**
 * Starts the OpenTelemetry SDK in-process with an in-memory exporter (every ended span is kept,
 * synchronously) and the production instrumentations patched into this spec's modules. See the
 * module comment for why it must run before the subjects are imported.
 */
export async function startTestTelemetry(serviceName = 'crm-test'): Promise<TestTelemetry> {
  const [{ NodeSDK, tracing: sdk }, { createInstrumentations }] = await Promise.all([import('@opentelemetry/sdk-node'), import('@crm/platform/telemetry')]);
  const exporter = new sdk.InMemorySpanExporter();
  const instrumentations = await createInstrumentations();
  const node = new NodeSDK({
    serviceName,
    autoDetectResources: false,
    instrumentations,
    spanProcessors: [new sdk.SimpleSpanProcessor(exporter)],
    metricReaders: [],
    logRecordProcessors: [],
  });
  node.start();

  const unpatch: (() => void)[] = [];
  for (const instrumentation of instrumentations) {
    for (const definition of instrumentation.getModuleDefinitions()) {
      const { patch, unpatch: undo } = definition;
      if (!patch) continue;
      for (const moduleExports of moduleInstances(definition.name)) {
        patch(moduleExports);
        if (undo) unpatch.push(() => undo(moduleExports));
      }
    }
  }

  return {
    spans: () => exporter.getFinishedSpans(),
    reset: () => exporter.reset(),
    shutdown: async () => {
      for (const undo of unpatch.reverse()) undo();
      for (const instrumentation of instrumentations) instrumentation.disable();
      await node.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}

/** One line per span (kind, name, trace, span, parent), for assertion messages. */
export function describeSpans(spans: readonly TestSpan[]): string {
  return spans
    .map((s) => {
      const { traceId, spanId } = s.spanContext();
      return `${SpanKind[s.kind]} ${s.name} trace=${traceId} span=${spanId} parent=${s.parentSpanContext?.spanId ?? '-'}`;
    })
    .join('\n');
}
