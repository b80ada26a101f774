import { describe, expect, it } from 'vitest';
import { templateSchema } from '../templates/template.js';
import { dockerClient } from './docker-engine.js';
import { containerName, envValue, executorContainerOptions, type ExecutorContainerSpec } from './docker-options.js';

const template = templateSchema.parse({
  name: 'nodejs',
  image: 'localhost/kiln/template-nodejs:0.1.0',
  runtimes: ['nodejs20.x', 'python3.11'],
  resources: { cpu: 0.5, memoryMB: 128, diskMB: 64, maxProcesses: 32 },
  pool: { sandboxesPerExecutor: 4 },
});
const spec = (over: Partial<ExecutorContainerSpec> = {}): ExecutorContainerSpec => ({
  template,
  executorId: 'ex-1',
  deployment: 'kiln',
  token: 'tok',
  network: 'kiln-executors-kiln',
  flavour: 'podman',
  seccomp: { path: '/repo/infra/podman/seccomp.json', json: '{"defaultAction":"SCMP_ACT_ERRNO"}' },
  hostCpus: 8,
  ...over,
});

describe('executor container options', () => {
  it('labels, limits and the hardening bubblewrap allows', () => {
    const o = executorContainerOptions(spec());
    expect(o.Labels).toEqual({ 'kiln.deployment': 'kiln', 'kiln.template': 'nodejs', 'kiln.executor': 'ex-1' });
    expect(o.User).toBe('kiln');
    expect(o.Env).toContain('KILN_AGENT_TOKEN=tok');
    expect(o.Env).toContain('KILN_RUNTIMES=nodejs,python');
    const h = o.HostConfig!;
    expect(h.CapDrop).toEqual(['ALL']);
    expect(h.Privileged).toBeUndefined();
    expect(h.SecurityOpt).toEqual(['no-new-privileges', 'systempaths=unconfined', 'seccomp=/repo/infra/podman/seccomp.json']);
    expect(h.UsernsMode).toBe('auto');
    expect(h.NetworkMode).toBe('kiln-executors-kiln');
    expect(h.PortBindings).toBeUndefined();
    expect(h.NanoCpus).toBe(2e9);
    expect(h.Memory).toBe((128 * 4 + 256) * 1024 * 1024);
    expect(h.PidsLimit).toBe(32 * 4 + 128);
    expect(h.ReadonlyRootfs).toBe(true);
  });

  it('Docker gets the seccomp profile as JSON and no Podman-only user namespace mode', () => {
    const h = executorContainerOptions(spec({ flavour: 'docker' })).HostConfig!;
    expect(h.SecurityOpt).toContain('seccomp={"defaultAction":"SCMP_ACT_ERRNO"}');
    expect(h.UsernsMode).toBeUndefined();
  });

  it('never asks for more CPUs than the host has (the engine would refuse the container)', () => {
    expect(executorContainerOptions(spec({ hostCpus: 1 })).HostConfig!.NanoCpus).toBe(1e9);
  });

  it('serves NFS on 2049 with the given trusted proxies only when asked', () => {
    const on = executorContainerOptions(spec({ nfs: { trustedProxies: ['10.89.0.1'] } }));
    expect(on.Env).toEqual(expect.arrayContaining(['KILN_NFS_LISTEN=0.0.0.0:2049', 'KILN_NFS_TRUSTED_PROXIES=10.89.0.1']));
    expect(Object.keys(on.ExposedPorts ?? {})).toEqual(['7070/tcp', '2049/tcp']);
    expect(on.HostConfig!.PortBindings).toBeUndefined();
    const off = executorContainerOptions(spec());
    expect(off.Env).toContain('KILN_NFS_LISTEN=off');
    expect(Object.keys(off.ExposedPorts ?? {})).toEqual(['7070/tcp']);
  });

  it('container names and env lookups survive hostile ids', () => {
    expect(containerName('kiln', '../../etc/x y')).toBe('kiln-kiln-..-..-etc-x-y');
    expect(envValue(['A=1', 'KILN_AGENT_TOKEN=a=b'], 'KILN_AGENT_TOKEN')).toBe('a=b');
    expect(envValue(undefined, 'X')).toBeUndefined();
  });

  it('rejects an engine address it cannot use, naming the variable', () => {
    expect(() => dockerClient('ftp://host')).toThrow(/KILN_DOCKER_HOST must be unix:/);
    expect((dockerClient('unix:///run/podman/podman.sock').modem as { socketPath?: string }).socketPath).toBe('/run/podman/podman.sock');
  });
});
