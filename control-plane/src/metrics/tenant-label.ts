import { DEFAULT_TENANT } from '../tenancy/principal.js';

/** The label value of tenants past the cap; never a tenant id (those start with [a-z0-9]). */
export const OTHER_TENANTS = '_other';

/** KILN_METRICS_TENANT_LABEL and KILN_METRICS_MAX_TENANTS. */
export interface TenantLabelOptions {
  enabled: boolean;
  maxTenants: number;
}

/**
 * The `tenant` label of metric series, with its cardinality bounded: the first `maxTenants`
 * tenants this replica sees keep their own value, later ones share `_other` (so a replica's
 * series stay bounded however many tenants exist; replicas may fold different tenants).
 */
export class TenantLabel {
  private readonly admitted = new Set<string>();

  constructor(private readonly options: TenantLabelOptions) {}

  get enabled(): boolean {
    return this.options.enabled;
  }

  /** The label value for `tenant` (absent: made before tenants, the default tenant). */
  of(tenant: string | undefined): string {
    const t = tenant ?? DEFAULT_TENANT;
    if (this.admitted.has(t)) return t;
    if (this.admitted.size >= this.options.maxTenants) return OTHER_TENANTS;
    this.admitted.add(t);
    return t;
  }

  /** `labels` with the tenant's label added, or `labels` itself when the label is off. */
  add<L extends Record<string, string>>(labels: L, tenant: string | undefined): L | (L & { tenant: string }) {
    return this.options.enabled ? { ...labels, tenant: this.of(tenant) } : labels;
  }
}
