import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { BlockList, isIPv4 } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ConfigMap, Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { DaemonSet, Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { CONFIG_VARIABLES, loadConfig } from '@kiln/control-plane/config';
import { AGENT_PORT, executorLabels, LABELS, NFS_PORT } from '@kiln/control-plane/platforms/kubernetes/names';
import { executorPod } from '@kiln/control-plane/platforms/kubernetes/manifest';
import { kubernetesPlatformOptions } from '@kiln/control-plane/platforms/kubernetes/options';
import { templateSchema } from '@kiln/control-plane/templates';
import { loadConfig as loadExecutorConfig } from '../../../executor/dist/config.js';
import { TrustedProxies } from '../../../executor/dist/nfs/proxy-line.js';

// infra/kubernetes checked against the Kubernetes schemas and against the code it deploys:
// the Role against the API calls the kubernetes adapter makes, the NetworkPolicies against
// the labels it puts on executor pods, the Deployment's env against loadConfig.

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const DIR = `${REPO}infra/kubernetes/`;
const ADAPTER = `${REPO}control-plane/src/platforms/kubernetes/`;

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };

const MODELS: Record<string, new (o: any) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/DaemonSet': DaemonSet,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

function parseYaml(text: string, where: string): Obj[] {
  return parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length) throw new Error(`${where}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as Obj | null;
    return value ? [value] : [];
  });
}

const kustomization = parseYaml(readFileSync(`${DIR}kustomization.yaml`, 'utf8'), 'kustomization.yaml')[0] as any;
const resources: string[] = kustomization.resources;
const objects: Obj[] = resources.flatMap((f) => parseYaml(readFileSync(DIR + f, 'utf8'), f));
const find = (kind: string, name: string): Obj => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`infra/kubernetes has no ${kind} ${name}`);
  return o;
};

/** Kubernetes label-selector semantics (matchLabels and matchExpressions). */
function selects(selector: any, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector?.matchExpressions ?? []) {
    const has = e.key in labels;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
    if (e.operator === 'In' && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === 'NotIn' && has && e.values.includes(labels[e.key])) return false;
  }
  return true;
}

const deployment = find('Deployment', 'kiln-control-plane');
const cpContainer = deployment.spec.template.spec.containers[0];
const cpLabels: Record<string, string> = deployment.spec.template.metadata.labels;
const redisSet = find('StatefulSet', 'kiln-redis');
const redisLabels: Record<string, string> = redisSet.spec.template.metadata.labels;
const execLabels = executorLabels('kiln', 'nodejs', 'exe-nodejs-1a2b3c4d');
const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
const policiesFor = (labels: Record<string, string>) => policies.filter((p) => selects(p.spec.podSelector, labels));

/** Where a connection comes from: a pod (labels, namespace), or an address outside the cluster. */
type Peer = { labels: Record<string, string>; namespace: string; ip: string } | { ip: string };
const ns = (kustomization as { namespace: string }).namespace;
const nsLabels = (name: string): Record<string, string> =>
  name === ns ? { 'kubernetes.io/metadata.name': name, ...find('Namespace', name).metadata.labels } : { 'kubernetes.io/metadata.name': name };

/** Does one NetworkPolicy peer (`from`/`to` entry) match `peer`? */
function peerMatches(entry: any, peer: Peer, policyNamespace: string): boolean {
  if (entry.ipBlock) {
    // Kubernetes leaves ipBlock semantics for pod IPs implementation-defined; these policies use it for no pod.
    if ('labels' in peer || !isIPv4(peer.ip)) return false;
    const range = (cidr: string) => {
      const b = new BlockList();
      const [net, bits] = cidr.split('/');
      b.addSubnet(net!, Number(bits), 'ipv4');
      return b;
    };
    return range(entry.ipBlock.cidr).check(peer.ip, 'ipv4') && !(entry.ipBlock.except ?? []).some((c: string) => range(c).check(peer.ip, 'ipv4'));
  }
  if (!('labels' in peer)) return false;
  const inNamespace = entry.namespaceSelector ? selects(entry.namespaceSelector, nsLabels(peer.namespace)) : peer.namespace === policyNamespace;
  return inNamespace && (entry.podSelector ? selects(entry.podSelector, peer.labels) : true);
}

/** Does a rule's port list admit `port`/`protocol`? (Named ports are not used here; fail loudly if they appear.) */
function portMatches(ports: any[] | undefined, port: number, protocol: string): boolean {
  if (!ports?.length) return true;
  return ports.some((p) => {
    if (typeof p.port === 'string') throw new Error(`named port ${p.port}: extend portMatches`);
    if ((p.protocol ?? 'TCP') !== protocol) return false;
    if (p.port === undefined) return true;
    return p.endPort === undefined ? p.port === port : port >= p.port && port <= p.endPort;
  });
}

/** One direction of NetworkPolicy semantics: isolated iff some policy of that type selects the pod; then any rule may allow. */
function admits(pod: Peer, direction: 'Ingress' | 'Egress', other: Peer, port: number, protocol: string): boolean {
  if (!('labels' in pod) || pod.namespace !== ns) return true; // not governed by these policies
  const relevant = policies.filter((p) => (p.spec.policyTypes ?? ['Ingress']).includes(direction) && selects(p.spec.podSelector, pod.labels));
  if (relevant.length === 0) return true;
  const key = direction === 'Ingress' ? 'ingress' : 'egress';
  const peers = direction === 'Ingress' ? 'from' : 'to';
  return relevant.some((p) =>
    (p.spec[key] ?? []).some(
      (rule: any) =>
        (!rule[peers]?.length || rule[peers].some((e: any) => peerMatches(e, other, p.metadata.namespace ?? ns))) && portMatches(rule.ports, port, protocol),
    ),
  );
}

/** A connection is allowed when the source's egress and the destination's ingress both admit it. */
const allowed = (from: Peer, to: Peer, port: number, protocol = 'TCP') =>
  admits(from, 'Egress', to, port, protocol) && admits(to, 'Ingress', from, port, protocol);

/** The Deployment's env as the container sees it: downward-API and Secret values filled in. */
function deploymentEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of cpContainer.env as any[]) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = String(deployment.metadata.namespace);
    else if (e.valueFrom?.secretKeyRef) env[e.name] = 'placeholder-secret-0123456789abcdef';
    else throw new Error(`env ${e.name}: unhandled valueFrom ${JSON.stringify(e.valueFrom)}`);
  }
  return env;
}

describe('infra/kubernetes', () => {
  it('lists every manifest in kustomization.yaml and every listed file exists', () => {
    const onDisk = readdirSync(DIR)
      .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
      .sort();
    expect([...resources].sort()).toEqual(onDisk);
    for (const g of kustomization.configMapGenerator ?? []) for (const f of g.files) expect(existsSync(DIR + f), f).toBe(true);
  });

  it('every document validates against the Kubernetes schemas, in the kiln namespace', () => {
    expect(objects.length).toBeGreaterThan(10);
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `${o.apiVersion} ${o.kind} has no schema here`).toBeDefined();
      expect(() => new Model!(o).validate(), `${o.kind}/${o.metadata.name}`).not.toThrow();
      if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(kustomization.namespace);
    }
    expect(find('Namespace', kustomization.namespace)).toBeDefined();
  });

  it('renders with kubectl kustomize, and the generated seccomp ConfigMap validates', (ctx) => {
    // kubectl is no Debian package, so setup cannot install it offline: where it is missing this
    // render check is skipped (the manifests are still validated object by object above).
    if (spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status !== 0) return ctx.skip();
    const rendered = parseYaml(execFileSync('kubectl', ['kustomize', DIR], { encoding: 'utf8' }), 'kubectl kustomize');
    expect(rendered.length).toBe(objects.length + (kustomization.configMapGenerator?.length ?? 0));
    const cm = rendered.find((o) => o.kind === 'ConfigMap') as Obj;
    new ConfigMap(cm).validate();
    const ds = rendered.find((o) => o.kind === 'DaemonSet') as Obj;
    expect(ds.spec.template.spec.volumes.find((v: any) => v.configMap).configMap.name).toBe(cm.metadata.name);
  });

  it('the node seccomp profile is infra/podman/seccomp.json, installed where the executor pods look for it', () => {
    expect(readFileSync(`${DIR}executor-seccomp.json`, 'utf8')).toBe(readFileSync(`${REPO}infra/podman/seccomp.json`, 'utf8'));
    const config = loadConfig(deploymentEnv());
    const [type, path] = config.kubernetes.seccompProfile.split(':');
    expect(type).toBe('Localhost');
    const ds = find('DaemonSet', 'kiln-seccomp-installer').spec.template.spec;
    const hostDir = ds.volumes.find((v: any) => v.hostPath).hostPath.path;
    expect(hostDir).toBe('/var/lib/kubelet/seccomp');
    expect(ds.containers[0].command.join('\n')).toContain(`/host-seccomp/${path}`);
  });

  it('the Role grants exactly the API calls the kubernetes adapter makes', () => {
    const kinds: Record<string, [group: string, resource: string]> = {
      Pod: ['', 'pods'],
      Secret: ['', 'secrets'],
      Service: ['', 'services'],
      Event: ['', 'events'],
      ConfigMap: ['', 'configmaps'],
      Deployment: ['apps', 'deployments'],
      StatefulSet: ['apps', 'statefulsets'],
    };
    const verbOf: Record<string, string> = { create: 'create', read: 'get', list: 'list', delete: 'delete', replace: 'update', patch: 'patch' };
    const needed = new Set<string>();
    const ownerReads = new Set<string>();
    for (const file of readdirSync(ADAPTER).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
      const src = readFileSync(ADAPTER + file, 'utf8');
      for (const m of src.matchAll(/\.(create|read|list|delete|replace|patch)Namespaced(\w+?)\(/g)) {
        const target = kinds[m[2]!];
        expect(target, `${file}: ${m[0]} uses an API this test cannot map; add it`).toBeDefined();
        const key = `${target![0]}/${target![1]}/${verbOf[m[1]!]}`;
        // kube-config.ts reads the KILN_K8S_OWNER object: only the configured kind is needed.
        if (file === 'kube-config.ts') ownerReads.add(`${m[2]}:${key}`);
        else needed.add(key);
      }
      for (const m of src.matchAll(/new Watch\([^)]*\)\s*\.watch\(\s*path/g)) {
        expect(m).toBeDefined();
        expect(src, `${file}: a watch on something other than pods`).toMatch(/const path = `\/api\/v1\/namespaces\/\$\{[^}]+\}\/pods`/);
        needed.add('/pods/watch');
      }
    }
    expect(needed.size).toBeGreaterThan(5);

    const env = deploymentEnv();
    const [ownerKind, ownerName, ownerUid] = (env.KILN_K8S_OWNER ?? '').split('/');
    expect(find('Deployment', ownerName!)).toBe(deployment);
    const role = find('Role', 'kiln-control-plane');
    const granted = new Set<string>();
    for (const rule of role.rules as any[]) {
      for (const g of rule.apiGroups)
        for (const r of rule.resources)
          for (const v of rule.verbs) {
            const key = `${g}/${r}/${v}`;
            if (rule.resourceNames) {
              // Only the owner read may be limited by name, and only to the owner.
              expect(rule.resourceNames).toEqual([ownerName]);
              expect(ownerReads.has(`${ownerKind}:${key}`), `${key} for ${ownerKind}`).toBe(true);
            } else granted.add(key);
          }
    }
    expect([...granted].sort()).toEqual([...needed].sort());
    const ownerRules = (role.rules as any[]).filter((r) => r.resourceNames);
    expect(ownerRules.length).toBe(ownerUid ? 0 : 1);

    const binding = find('RoleBinding', 'kiln-control-plane');
    expect(binding.roleRef).toMatchObject({ kind: 'Role', name: role.metadata.name });
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: deployment.spec.template.spec.serviceAccountName, namespace: deployment.metadata.namespace },
    ]);
    expect(find('ServiceAccount', deployment.spec.template.spec.serviceAccountName)).toBeDefined();
    // Executor pods run as an account without a token.
    expect(find('ServiceAccount', env.KILN_K8S_SERVICE_ACCOUNT!).automountServiceAccountToken).toBe(false);
  });

  it('the Deployment sets only real configuration variables, and loadConfig accepts them', () => {
    const known = new Set(CONFIG_VARIABLES);
    expect(known.size).toBeGreaterThan(20);
    const env = deploymentEnv();
    for (const name of Object.keys(env)) expect(known.has(name), `${name} is not a variable of control-plane/src/config.ts`).toBe(true);
    const config = loadConfig(env);
    expect(config.platform).toBe('kubernetes');
    expect(config.kubernetes.namespace).toBe('kiln');
    expect(config.apiKeys.length).toBe(1);
    // The API Service and the probes point at the port the control plane listens on.
    const port = cpContainer.ports.find((p: any) => p.name === 'http');
    expect(port.containerPort).toBe(config.port);
    expect(cpContainer.readinessProbe.httpGet).toEqual({ path: '/api/v1/health', port: 'http' });
    expect(cpContainer.livenessProbe.httpGet).toEqual({ path: '/api/v1/health', port: 'http' });
    const api = find('Service', 'kiln-api');
    expect(selects({ matchLabels: api.spec.selector }, cpLabels)).toBe(true);
    expect(api.spec.ports[0]).toMatchObject({ port: 8080, targetPort: 'http' });
  });

  it('KILN_REDIS_URL names the Redis Service, which selects the AOF-persisted StatefulSet', () => {
    const url = new URL(deploymentEnv().KILN_REDIS_URL!);
    const svc = find('Service', url.hostname);
    expect(svc.spec.ports.map((p: any) => p.port)).toContain(Number(url.port || 6379));
    expect(selects({ matchLabels: svc.spec.selector }, redisLabels)).toBe(true);
    const c = redisSet.spec.template.spec.containers[0];
    const args: string[] = c.args;
    expect(args[args.indexOf('--appendonly') + 1]).toBe('yes');
    const dir = args[args.indexOf('--dir') + 1];
    const claim = redisSet.spec.volumeClaimTemplates[0].metadata.name;
    expect(c.volumeMounts).toContainEqual({ name: claim, mountPath: dir });
  });

  it('containers run without root, privileges or a writable root file system (except the seccomp installer)', () => {
    for (const o of objects.filter((x) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(x.kind))) {
      const spec = o.spec.template.spec;
      for (const c of spec.containers) {
        const sc = c.securityContext;
        expect(sc.allowPrivilegeEscalation, `${o.metadata.name}`).toBe(false);
        expect(sc.readOnlyRootFilesystem, `${o.metadata.name}`).toBe(true);
        expect(sc.capabilities.drop, `${o.metadata.name}`).toEqual(['ALL']);
        if (o.kind !== 'DaemonSet') expect(sc.runAsNonRoot ?? spec.securityContext.runAsNonRoot, `${o.metadata.name}`).toBe(true);
      }
    }
  });

  it('NetworkPolicies: default deny; Redis only from the control plane; executors only on the agent and NFS ports, no egress but DNS', () => {
    const deny = policies.find((p) => Object.keys(p.spec.podSelector).length === 0);
    expect(deny?.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });

    // The adapter's executor labels select exactly the executor policy (plus default deny).
    expect(execLabels[LABELS.deployment]).toBe('kiln');
    const execPolicies = policiesFor(execLabels).filter((p) => p !== deny);
    expect(execPolicies.map((p) => p.metadata.name)).toEqual(['kiln-executors']);
    const ep = execPolicies[0]!.spec;
    expect(ep.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(ep.ingress).toHaveLength(1);
    expect(ep.ingress[0].from.every((f: any) => f.podSelector && !f.namespaceSelector && !f.ipBlock && selects(f.podSelector, cpLabels))).toBe(true);
    expect(ep.ingress[0].ports).toEqual([
      { port: AGENT_PORT, protocol: 'TCP' },
      { port: NFS_PORT, protocol: 'TCP' },
    ]);
    for (const rule of ep.egress) {
      expect(rule.to, 'executor egress must not name destinations').toBeUndefined();
      expect(rule.ports.every((p: any) => p.port === 53)).toBe(true);
    }
    // No other deployment's labels or the control plane's are mistaken for an executor's.
    expect(selects(find('NetworkPolicy', 'kiln-executors').spec.podSelector, cpLabels)).toBe(false);
    expect(selects(find('NetworkPolicy', 'kiln-executors').spec.podSelector, redisLabels)).toBe(false);

    const rp = policiesFor(redisLabels).filter((p) => p !== deny);
    expect(rp.map((p) => p.metadata.name)).toEqual(['kiln-redis']);
    for (const rule of rp[0]!.spec.ingress) {
      for (const f of rule.from) {
        expect(f.namespaceSelector ?? f.ipBlock).toBeUndefined();
        expect(selects(f.podSelector, cpLabels)).toBe(true);
        expect(selects(f.podSelector, execLabels)).toBe(false);
      }
    }

    // The control plane may reach Redis and the agents on their ports.
    const cp = policiesFor(cpLabels).filter((p) => p !== deny);
    expect(cp.map((p) => p.metadata.name)).toEqual(['kiln-control-plane']);
    const egressTo = (labels: Record<string, string>) =>
      cp[0]!.spec.egress
        .filter((r: any) => !r.to || r.to.some((t: any) => t.podSelector && selects(t.podSelector, labels)))
        .flatMap((r: any) => r.ports.map((p: any) => p.port));
    expect(egressTo(redisLabels)).toContain(6379);
    expect(egressTo(execLabels)).toContain(AGENT_PORT);
    expect(egressTo(execLabels)).toContain(NFS_PORT);
    expect(cp[0]!.spec.ingress).toHaveLength(1);
    expect(cp[0]!.spec.ingress[0].ports).toEqual([
      { port: 8080, protocol: 'TCP' },
      { port: NFS_PORT, protocol: 'TCP' },
    ]);
  });
  it('NFS: on, through the gateway on 2049; KILN_NFS_HOST names the Service kiln-nfs, which reaches the container port nfs', () => {
    const env = deploymentEnv();
    for (const name of ['KILN_NFS_ENABLED', 'KILN_NFS_PORT', 'KILN_NFS_HOST', 'KILN_K8S_NFS_TRUSTED_PROXIES']) expect(env[name], name).toBeDefined();
    const config = loadConfig(env);
    expect(config.nfs).toBeDefined();
    expect(config.nfs!.gateway).toEqual({ host: '0.0.0.0', port: NFS_PORT }); // every pod address, port 2049
    expect(config.nfs!.host).toBe(env.KILN_NFS_HOST);
    // The container port the gateway listens on, and the Service that exposes it.
    const nfsPorts = cpContainer.ports.filter((p: any) => p.containerPort === config.nfs!.gateway!.port);
    expect(nfsPorts).toEqual([{ name: 'nfs', containerPort: NFS_PORT, protocol: 'TCP' }]);
    const [svcName, svcNamespace, svc] = config.nfs!.host.split('.');
    expect(svc).toBe('svc');
    expect(svcNamespace).toBe(deployment.metadata.namespace);
    const service = find('Service', svcName!);
    expect(service.spec.type ?? 'ClusterIP').toBe('ClusterIP');
    expect(selects({ matchLabels: service.spec.selector }, cpLabels)).toBe(true);
    expect(service.spec.ports).toEqual([{ name: 'nfs', port: config.nfs!.gateway!.port, targetPort: 'nfs', protocol: 'TCP' }]);
    // The API Service stays HTTP only.
    expect(find('Service', 'kiln-api').spec.ports.map((p: any) => p.port)).toEqual([config.port]);
  });

  it("NFS: executor pods started with the Deployment's configuration serve 2049 and believe PROXY lines from control-plane pods only", () => {
    const config = loadConfig(deploymentEnv());
    const runtime = kubernetesPlatformOptions(config);
    expect(runtime.nfs?.trustedProxies).toEqual(config.kubernetes.nfsTrustedProxies);
    const template = templateSchema.parse(JSON.parse(readFileSync(`${REPO}templates/nodejs.json`, 'utf8')));
    const pod = executorPod(template, 'exe-nodejs-1a2b3c4d', {
      namespace: config.kubernetes.namespace!,
      deployment: runtime.deployment,
      imagePullPolicy: runtime.imagePullPolicy,
      seccompProfile: runtime.seccompProfile,
      userNamespaces: runtime.userNamespaces,
      ...(runtime.nfs ? { nfs: runtime.nfs } : {}),
    });
    const c = pod.spec!.containers[0]!;
    expect(c.ports).toContainEqual({ name: 'nfs', containerPort: NFS_PORT, protocol: 'TCP' });
    // The executor itself accepts the env it is given (the token comes from a Secret).
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? 'secret']));
    const exec = loadExecutorConfig(env);
    expect(exec.nfs).toMatchObject({ host: '0.0.0.0', port: NFS_PORT });
    const trust = new TrustedProxies(exec.nfs!.trustedProxies);
    // Pod addresses of common CNIs (flannel/kind, k3s, Calico) are trusted; the internet is not.
    for (const ip of ['10.244.1.17', '10.42.0.9', '192.168.12.5']) expect(trust.trusts(ip), ip).toBe(true);
    for (const ip of ['203.0.113.7', '8.8.8.8', '172.32.0.1']) expect(trust.trusts(ip), ip).toBe(false);
  });

  it('NetworkPolicies, evaluated: NFS from clients to the control plane and from it to executors; nothing else new', () => {
    const cpPod = { labels: cpLabels, namespace: ns, ip: '10.244.1.10' };
    const execPod = { labels: execLabels, namespace: ns, ip: '10.244.2.20' };
    const otherExec = { labels: executorLabels('kiln', 'python', 'exe-python-99887766'), namespace: ns, ip: '10.244.2.21' };
    const redisPod = { labels: redisLabels, namespace: ns, ip: '10.244.3.30' };
    const client = { ip: '203.0.113.7' };
    const podElsewhere = { labels: { app: 'some-client' }, namespace: 'default', ip: '10.244.4.40' };

    // Clients (outside the cluster or in other namespaces) reach the API and the NFS gateway, nothing else.
    for (const from of [client, podElsewhere]) {
      expect(allowed(from, cpPod, 8080)).toBe(true);
      expect(allowed(from, cpPod, NFS_PORT)).toBe(true);
      expect(allowed(from, cpPod, NFS_PORT, 'UDP')).toBe(false);
      expect(allowed(from, cpPod, 2050)).toBe(false);
      expect(allowed(from, execPod, NFS_PORT)).toBe(false);
      expect(allowed(from, execPod, AGENT_PORT)).toBe(false);
      expect(allowed(from, redisPod, 6379)).toBe(false);
    }
    // The control plane reaches executors' agent and NFS server, Redis, and nothing else there.
    expect(allowed(cpPod, execPod, AGENT_PORT)).toBe(true);
    expect(allowed(cpPod, execPod, NFS_PORT)).toBe(true);
    expect(allowed(cpPod, execPod, NFS_PORT, 'UDP')).toBe(false);
    expect(allowed(cpPod, execPod, 2048)).toBe(false);
    expect(allowed(cpPod, execPod, 111)).toBe(false); // no portmapper
    expect(allowed(cpPod, redisPod, 6379)).toBe(true);
    expect(allowed(cpPod, redisPod, NFS_PORT)).toBe(false);
    // Executors (untrusted code) reach neither the gateway, nor the API, nor each other's NFS server, nor Redis.
    for (const port of [NFS_PORT, 8080]) expect(allowed(execPod, cpPod, port), `executor → control plane ${port}`).toBe(false);
    expect(allowed(execPod, otherExec, NFS_PORT)).toBe(false);
    expect(allowed(execPod, otherExec, AGENT_PORT)).toBe(false);
    expect(allowed(execPod, redisPod, 6379)).toBe(false);
    expect(allowed(execPod, client, NFS_PORT)).toBe(false);
    expect(allowed(execPod, client, 53, 'UDP')).toBe(true); // DNS, by port
    // Redis reaches no executor either.
    expect(allowed(redisPod, execPod, NFS_PORT)).toBe(false);
  });
});
