import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

const root = new URL('../../', import.meta.url);
const kubernetes = new URL('deploy/kubernetes/', root);

// Loosely typed Kubernetes objects: the test reads what it checks and fails on what is missing.
// biome-ignore lint/suspicious/noExplicitAny: manifests are arbitrary YAML
type Manifest = Record<string, any>;

/** Every document of every manifest, with its parse errors. */
function loadManifests(): Array<{ file: string; doc: Manifest; errors: string[] }> {
  const all: Array<{ file: string; doc: Manifest; errors: string[] }> = [];
  for (const file of readdirSync(kubernetes).filter((f) => f.endsWith('.yaml'))) {
    for (const document of parseAllDocuments(readFileSync(new URL(file, kubernetes), 'utf8'))) {
      const errors = document.errors.map((e) => e.message);
      all.push({ file, doc: errors.length ? {} : (document.toJS() as Manifest), errors });
    }
  }
  return all;
}

const manifests = loadManifests();
const byKind = (kind: string): Manifest[] =>
  manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc);
const one = (kind: string): Manifest => {
  const found = byKind(kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0] as Manifest;
};
const deployment = one('Deployment');
const pod = deployment.spec.template.spec as Manifest;
const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
const container = (pod.containers as Manifest[])[0] as Manifest;
const matches = (selector: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => podLabels[k] === v);

describe('the Kubernetes example', () => {
  it('parses, every document a Kubernetes object', () => {
    for (const { file, doc, errors } of manifests) {
      expect(errors, file).toEqual([]);
      if (file === 'kustomization.yaml') continue;
      expect(doc, file).toMatchObject({ apiVersion: expect.any(String), kind: expect.any(String) });
      expect(doc.metadata.labels, file).toMatchObject({ 'app.kubernetes.io/name': 'lockstep' });
    }
  });

  it('lists in its kustomization exactly the manifests that need no operator or secret', () => {
    const kustomization = parse(readFileSync(new URL('kustomization.yaml', kubernetes), 'utf8'));
    const listed = new Set(kustomization.resources as string[]);
    const files = manifests.map((m) => m.file).filter((f) => f !== 'kustomization.yaml');
    for (const file of new Set(files)) {
      const optional = file === 'servicemonitor.yaml' || file === 'secret.example.yaml';
      expect(listed.has(file), file).toBe(!optional);
    }
  });

  it('runs lockstep as its own two-pod Deployment, with no PostgreSQL in it', () => {
    expect(deployment.spec.replicas).toBe(2);
    expect(byKind('StatefulSet')).toEqual([]);
    expect((pod.containers as Manifest[]).map((c) => c.name)).toEqual(['lockstep']);
    expect(container.args).toEqual(['run', '--config', '/etc/lockstep/lockstep.yaml']);
    expect(deployment.spec.selector.matchLabels).toEqual(podLabels);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
  });

  it('probes /healthz for liveness and /readyz for readiness on the metrics port', () => {
    const port = (container.ports as Manifest[]).find((p) => p.name === 'metrics');
    expect(port?.containerPort).toBe(9187);
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
  });

  it('runs non-root, unprivileged, on a read-only root filesystem with /tmp mounted', () => {
    const context = { ...pod.securityContext, ...container.securityContext } as Manifest;
    expect(context.runAsNonRoot).toBe(true);
    expect(context.runAsUser).toBeGreaterThan(0);
    expect(context.allowPrivilegeEscalation).toBe(false);
    expect(context.readOnlyRootFilesystem).toBe(true);
    expect(context.capabilities.drop).toEqual(['ALL']);
    expect(context.seccompProfile).toEqual({ type: 'RuntimeDefault' });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(one('ServiceAccount').metadata.name).toBe(pod.serviceAccountName);
    // Kubernetes' service-link variables would be read as LOCKSTEP_* configuration.
    expect(pod.enableServiceLinks).toBe(false);
    const tmp = (container.volumeMounts as Manifest[]).find((m) => m.mountPath === '/tmp');
    const tmpVolume = (pod.volumes as Manifest[]).find((v) => v.name === tmp?.name);
    expect(tmpVolume?.emptyDir).toBeDefined();
  });

  it("uses the image's numeric non-root user, so runAsNonRoot can be verified", () => {
    const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8');
    const users = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
    expect(users).toEqual([`${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`]);
    expect(dockerfile).toMatch(/npm ci --omit=dev --omit=optional/);
  });

  it('sets resource requests and limits', () => {
    expect(container.resources.requests).toMatchObject({ cpu: expect.any(String) });
    expect(container.resources.requests.memory).toBeDefined();
    expect(container.resources.limits.memory).toBeDefined();
  });

  it('reads its configuration from the ConfigMap, passwords from Secret files only', () => {
    const mountOf = (volume: string) =>
      (container.volumeMounts as Manifest[]).find((m) => m.name === volume) as Manifest;
    const volumes = pod.volumes as Manifest[];
    const configVolume = volumes.find((v) => v.configMap) as Manifest;
    const secretVolume = volumes.find((v) => v.secret) as Manifest;
    const configMap = one('ConfigMap');
    expect(configVolume.configMap.name).toBe(configMap.metadata.name);
    expect(mountOf(configVolume.name).mountPath).toBe('/etc/lockstep');
    expect(secretVolume.secret.defaultMode).toBe(0o440);
    const secret = one('Secret');
    expect(secretVolume.secret.secretName).toBe(secret.metadata.name);
    // No password in the environment either.
    expect(container.env ?? []).toEqual([]);
    expect(container.envFrom ?? []).toEqual([]);

    const config = parse(configMap.data['lockstep.yaml']) as Manifest;
    const nodes = [config.primary, ...config.replicas] as Manifest[];
    const secretDir = mountOf(secretVolume.name).mountPath as string;
    for (const node of nodes) {
      expect(node.url).toMatch(/^postgres:\/\/[^:@/]+@/); // a user, no password
      expect(node.passwordFile.startsWith(`${secretDir}/`)).toBe(true);
      expect(Object.keys(secret.stringData)).toContain(
        node.passwordFile.slice(secretDir.length + 1),
      );
    }
    expect(config.http).toEqual({ host: '0.0.0.0', port: 9187 });
  });

  it('keeps one pod available through drains, and serves metrics only through its Service', () => {
    const budget = one('PodDisruptionBudget');
    expect(budget.spec.maxUnavailable).toBe(1);
    expect(matches(budget.spec.selector.matchLabels)).toBe(true);
    const service = one('Service');
    expect(matches(service.spec.selector)).toBe(true);
    expect(service.spec.clusterIP).toBe('None');
    expect(service.spec.ports).toEqual([{ name: 'metrics', port: 9187, targetPort: 'metrics' }]);
    const monitor = one('ServiceMonitor');
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.endpoints.map((e: Manifest) => e.port)).toEqual(['metrics']);
  });
});
