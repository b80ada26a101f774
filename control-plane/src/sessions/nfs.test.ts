import { describe, expect, it } from 'vitest';
import { InvalidNfsAllowError, nfsUrl, nfsView, validateAllowList } from './nfs.js';

describe('session NFS options', () => {
  it('accepts IPv4/IPv6 addresses and CIDRs, trimmed', () => {
    expect(validateAllowList([' 10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8', '0.0.0.0/0'])).toEqual(['10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8', '0.0.0.0/0']);
    expect(validateAllowList(undefined)).toEqual([]);
  });

  it('refuses hostnames, bad prefixes and overlong lists, naming the entry', () => {
    for (const bad of ['localhost', '10.0.0.0/33', '::/129', '10.0.0.1/', '10.0.0.1/-1', '1.2.3.4/8/8', '', '../etc']) {
      expect(() => validateAllowList([bad]), bad).toThrow(InvalidNfsAllowError);
    }
    expect(() => validateAllowList(['10.0.0.0/33'])).toThrow(/"10\.0\.0\.0\/33" needs a prefix length between 0 and 32/);
    expect(() => validateAllowList(Array.from({ length: 65 }, () => '10.0.0.1'))).toThrow(/at most 64/);
  });

  it('builds the libnfs URL and the mount command, bracketing IPv6 hosts', () => {
    const nfs = { host: '127.0.0.1', port: 40123, readOnly: true, allow: [] };
    expect(nfsUrl('ses_1', nfs)).toBe('nfs://127.0.0.1/ses_1?nfsport=40123&mountport=40123&version=3');
    expect(nfsView('ses_1', nfs)).toMatchObject({ exportPath: '/ses_1', mountCommand: 'mount -t nfs -o nfsvers=3,tcp,nolock,ro,port=40123,mountport=40123 127.0.0.1:/ses_1 /mnt' });
    expect(nfsUrl('ses_1', { host: '::1', port: 2049 })).toBe('nfs://[::1]/ses_1?nfsport=2049&mountport=2049&version=3');
  });
});
