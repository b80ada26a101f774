import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { allowEntryProblem } from './session-exports.js';

describe('session export options', () => {
  it('accepts IPs and CIDRs and explains what is wrong with anything else', () => {
    for (const ok of ['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8', '0.0.0.0/0']) expect(allowEntryProblem(ok), ok).toBeUndefined();
    expect(allowEntryProblem('example.com')).toMatch(/not an IP address or CIDR/);
    expect(allowEntryProblem('10.0.0.0/33')).toMatch(/prefix length outside 0-32/);
    expect(allowEntryProblem('::/200')).toMatch(/0-128/);
    expect(allowEntryProblem('10.0.0.0/')).toMatch(/prefix length/);
  });

  it('reads KILN_NFS_LISTEN: off by default, host:port when set, a named error when malformed', () => {
    expect(loadConfig({}).nfs).toBeUndefined();
    expect(loadConfig({ KILN_NFS_LISTEN: 'off' }).nfs).toBeUndefined();
    expect(loadConfig({ KILN_NFS_LISTEN: '0.0.0.0:0' }).nfs).toEqual({ host: '0.0.0.0', port: 0, trustedProxies: [] });
    expect(loadConfig({ KILN_NFS_LISTEN: '0.0.0.0:0', KILN_NFS_TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/8' }).nfs?.trustedProxies).toEqual(['127.0.0.1', '10.0.0.0/8']);
    expect(() => loadConfig({ KILN_NFS_LISTEN: '0.0.0.0:0', KILN_NFS_TRUSTED_PROXIES: 'gateway.local' })).toThrow(/KILN_NFS_TRUSTED_PROXIES/);
    expect(() => loadConfig({ KILN_NFS_LISTEN: 'nope' })).toThrow(/KILN_NFS_LISTEN/);
    expect(() => loadConfig({ KILN_NFS_LISTEN: '127.0.0.1:70000' })).toThrow(/KILN_NFS_LISTEN: port must be 0-65535/);
  });
});
