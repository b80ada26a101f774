import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '@kiln/control-plane/config';

// The one-host deployments: infra/compose/compose.yaml (control plane with the local platform
// in one container, plus Redis) and infra/systemd/kiln.service (`npm start` under systemd).

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const COMPOSE_FILE = `${REPO}infra/compose/compose.yaml`;
const UNIT_FILE = `${REPO}infra/systemd/kiln.service`;
const KNOWN = new Set(CONFIG_VARIABLES);

/** Compose's variable interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$. */
function interpolate(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\$|\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}/g, (whole, name: string | undefined, op: string | undefined, arg: string | undefined) => {
    if (whole === '$$') return '$$';
    const value = vars[name!];
    if (op === ':-' || op === '-') return value || arg || '';
    if (op === ':?' || op === '?') {
      if (!value) throw new Error(`${name}: ${arg}`);
      return value;
    }
    return value ?? '';
  });
}

const password = 'a'.repeat(12) + '0123456789abcdef';
const composeText = readFileSync(COMPOSE_FILE, 'utf8');
const compose = parse(interpolate(composeText, { KILN_REDIS_PASSWORD: password, KILN_API_KEYS: 'placeholder-key-0123456789' }));
const kiln = compose.services.kiln;
const redis = compose.services.redis;

describe('infra/compose/compose.yaml', () => {
  it('parses as one YAML document and refuses to start without a Redis password', () => {
    expect(parseAllDocuments(composeText).length).toBe(1);
    expect(Object.keys(compose.services).sort()).toEqual(['kiln', 'redis']);
    expect(() => interpolate(composeText, {})).toThrow(/KILN_REDIS_PASSWORD/);
  });

  it('sets only real configuration variables, which loadConfig accepts', () => {
    for (const name of Object.keys(kiln.environment)) expect(KNOWN.has(name), `${name} is not a variable of control-plane/src/config.ts`).toBe(true);
    const config = loadConfig(kiln.environment);
    expect(config.platform).toBe('local');
    expect(config.apiKeys).toEqual(['placeholder-key-0123456789']);
    // Unset KILN_API_KEYS interpolates to "", which loadConfig treats as unset (no authentication).
    const open = parse(interpolate(composeText, { KILN_REDIS_PASSWORD: password }));
    expect(loadConfig(open.services.kiln.environment).apiKeys).toEqual([]);
  });

  it('KILN_REDIS_URL names the Redis service, its port and its password; Redis persists with AOF on a volume', () => {
    const config = loadConfig(kiln.environment);
    const url = new URL(config.redisUrl!);
    expect(url.hostname).toBe('redis');
    expect(Number(url.port)).toBe(6379);
    expect(decodeURIComponent(url.password)).toBe(password);
    const cmd: string[] = redis.command;
    expect(cmd[cmd.indexOf('--requirepass') + 1]).toBe(password);
    expect(cmd[cmd.indexOf('--appendonly') + 1]).toBe('yes');
    const dir = cmd[cmd.indexOf('--dir') + 1];
    const [volume, mountPath] = (redis.volumes[0] as string).split(':');
    expect(mountPath).toBe(dir);
    expect(compose.volumes).toHaveProperty(volume!);
    expect(kiln.depends_on.redis.condition).toBe('service_healthy');
  });

  it('publishes the API port, and the health check asks that port', () => {
    const config = loadConfig(kiln.environment);
    const published = (kiln.ports as string[]).map((p) => p.split(':').at(-1));
    expect(published).toEqual([String(config.port)]);
    expect(kiln.healthcheck.test.join(' ')).toContain(`http://127.0.0.1:${config.port}/api/v1/health`);
    expect(redis.ports).toBeUndefined();
  });

  it('runs bubblewrap under the executor-container options: seccomp profile, unmasked /proc, no privileges, read-only root', () => {
    expect(kiln.user).toBe('1000:1000');
    expect(kiln.read_only).toBe(true);
    expect(kiln.cap_drop).toEqual(['ALL']);
    expect(kiln.security_opt).toContain('no-new-privileges');
    expect(kiln.security_opt).toContain('systempaths=unconfined');
    const seccomp = (kiln.security_opt as string[]).find((o) => o.startsWith('seccomp='))!.slice('seccomp='.length);
    expect(resolve(dirname(COMPOSE_FILE), seccomp)).toBe(`${REPO}infra/podman/seccomp.json`);
    expect(existsSync(`${REPO}infra/podman/seccomp.json`)).toBe(true);
    // The data dir (executor state, sandbox directories) is on the writable tmpfs.
    const dataDir = loadConfig(kiln.environment).dataDir;
    const tmpfs = (kiln.tmpfs as string[]).map((t) => t.split(':')[0]!);
    expect(tmpfs.some((t) => dataDir === t || dataDir.startsWith(`${t}/`))).toBe(true);
  });

  it('keeps Redis on an internal network, and uses the image build-image.sh builds', () => {
    for (const s of Object.values<any>(compose.services)) for (const n of s.networks) expect(compose.networks).toHaveProperty(n);
    expect(redis.networks).toEqual(['backend']);
    expect(compose.networks.backend.internal).toBe(true);
    const version = JSON.parse(readFileSync(`${REPO}control-plane/package.json`, 'utf8')).version as string;
    expect(kiln.image).toBe(`localhost/kiln/control-plane:${version}`);
    const k8s = parse(readFileSync(`${REPO}infra/kubernetes/control-plane.yaml`, 'utf8').split(/^---$/m)[0]!);
    expect(k8s.spec.template.spec.containers[0].image).toBe(kiln.image);
  });
});

describe('infra/systemd/kiln.service', () => {
  const unit = readFileSync(UNIT_FILE, 'utf8');
  const directives = (key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);

  it('sets only real configuration variables, which loadConfig accepts', () => {
    const env: Record<string, string> = {};
    for (const line of directives('Environment')) {
      const [name, ...rest] = line.split('=');
      env[name!] = rest.join('=');
    }
    for (const name of Object.keys(env).filter((n) => n.startsWith('KILN_'))) {
      // KILN_SKIP_PODMAN is read by scripts/setup.sh (ExecStartPre), not by the control plane.
      if (name === 'KILN_SKIP_PODMAN') continue;
      expect(KNOWN.has(name), `${name} is not a variable of control-plane/src/config.ts`).toBe(true);
    }
    const config = loadConfig(env);
    expect(config.platform).toBe('local');
    expect(config.redisUrl).toBeUndefined();
  });

  it('restarts on failure and signals the control plane alone, so executors and their sessions outlive a restart', () => {
    expect(directives('Restart')).toEqual(['on-failure']);
    expect(directives('KillMode')).toEqual(['process']);
    expect(directives('ExecStart')).toEqual(['/usr/bin/node control-plane/dist/main.js']);
    // Same command as `npm start`.
    expect(JSON.parse(readFileSync(`${REPO}package.json`, 'utf8')).scripts.start).toBe('node control-plane/dist/main.js');
    expect(directives('WorkingDirectory')).toHaveLength(1);
  });

  it('passes systemd-analyze verify', () => {
    // scripts/setup.sh installs systemd (systemd-analyze) for this.
    const r = spawnSync('systemd-analyze', ['verify', UNIT_FILE], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.split('\n').filter((l) => l.includes('kiln.service'))).toEqual([]);
  });
});
