import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { repoRoot } from './toolchain.ts';

/** One Kubernetes object of a rendered overlay. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export interface RenderedOverlay {
  overlay: string;
  objects: K8sObject[];
  /** Where the rendered YAML was written (under the repository's git-ignored tmp/). */
  file: string;
}

const isObject = (value: unknown): value is K8sObject =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as K8sObject).apiVersion === 'string' &&
  typeof (value as K8sObject).kind === 'string' &&
  typeof (value as K8sObject).metadata?.name === 'string';

/** Parses a multi-document YAML stream into objects; throws on YAML errors and on documents that are not objects. */
export function parseObjects(text: string, where: string): K8sObject[] {
  return YAML.parseAllDocuments(text).flatMap((doc, index) => {
    if (doc.errors.length > 0) throw new Error(`${where}#${index}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJSON();
    if (value === null || value === undefined) return [];
    if (!isObject(value)) throw new Error(`${where}#${index}: not a Kubernetes object (apiVersion, kind, metadata.name)`);
    return [value];
  });
}

/** The overlays under deploy/k8s/overlays. */
export function overlayNames(): string[] {
  const dir = join(repoRoot, 'deploy/k8s/overlays');
  return readdirSync(dir)
    .filter((name) => statSync(join(dir, name)).isDirectory())
    .sort();
}

/**
 * Renders every overlay with `kubectl kustomize` from a temporary copy of deploy/, in which
 * render-realm-import.sh has generated each overlay's KeycloakRealmImport (the committed files
 * are placeholders): the working tree is never modified.
 */
export function renderOverlays(kubectl: string, log: (line: string) => void): RenderedOverlay[] {
  const work = mkdtempSync(join(tmpdir(), 'k8s-check-'));
  try {
    cpSync(join(repoRoot, 'deploy'), join(work, 'deploy'), { recursive: true });
    const script = join(work, 'deploy/k8s/components/keycloak/render-realm-import.sh');
    const realm = spawnSync('bash', [script, 'all'], { encoding: 'utf8' });
    if (realm.status !== 0) throw new Error(`render-realm-import.sh failed:\n${realm.stderr}`);
    const out = join(repoRoot, 'tmp/k8s-check');
    mkdirSync(out, { recursive: true });
    return overlayNames().map((overlay) => {
      const result = spawnSync(kubectl, ['kustomize', join(work, 'deploy/k8s/overlays', overlay)], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      if (result.status !== 0) throw new Error(`kubectl kustomize deploy/k8s/overlays/${overlay} failed:\n${result.stderr}`);
      const file = join(out, `${overlay}.yaml`);
      writeFileSync(file, result.stdout);
      const objects = parseObjects(result.stdout, `overlays/${overlay}`);
      log(`rendered overlays/${overlay}: ${objects.length} objects -> ${file.slice(repoRoot.length + 1)}`);
      return { overlay, objects, file };
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
