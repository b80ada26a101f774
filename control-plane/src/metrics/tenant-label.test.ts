import { describe, expect, it } from 'vitest';
import { OTHER_TENANTS, TenantLabel } from './tenant-label.js';

describe('TenantLabel', () => {
  it('gives the first maxTenants tenants their own value and folds the rest into _other, for good', () => {
    const t = new TenantLabel({ enabled: true, maxTenants: 2 });
    expect(['a', 'b', 'c', 'a', 'b', 'c', undefined].map((x) => t.of(x))).toEqual(['a', 'b', OTHER_TENANTS, 'a', 'b', OTHER_TENANTS, OTHER_TENANTS]);
    expect(t.add({ template: 'nodejs' }, 'b')).toEqual({ template: 'nodejs', tenant: 'b' });
  });

  it('reads an absent tenant as the default tenant, and adds nothing when turned off', () => {
    expect(new TenantLabel({ enabled: true, maxTenants: 5 }).of(undefined)).toBe('default');
    const off = new TenantLabel({ enabled: false, maxTenants: 5 });
    const labels = { type: 'TypeError' };
    expect(off.add(labels, 'a')).toBe(labels);
  });
});
