import type { AgentPool } from '../agent/client.js';
import { log } from '../log.js';
import type { MetricsRegistry } from '../metrics/registry.js';
import type { SandboxRecords } from '../scheduler/records.js';
import { networkPolicy } from '../templates/network.js';
import type { TemplateRegistry } from '../templates/registry.js';
import { EgressAgent } from './client.js';

const NAME = 'kiln_egress_events_total';

/**
 * `kiln_egress_events_total{template, verdict}`: DNS questions and connections of egress
 * sandboxes, allowed or refused, summed over the live executors of each template at scrape time
 * (each executor counts from its start, so an executor that goes away is a counter reset).
 */
export function registerEgressMetrics(registry: MetricsRegistry, templates: Pick<TemplateRegistry, 'names' | 'get'>, records: Pick<SandboxRecords, 'executorIds' | 'executor'>, agents: AgentPool): void {
  let samples: Array<{ template: string; verdict: string; value: number }> = [];
  registry.register({
    render: () => [
      `# HELP ${NAME} Egress DNS questions and connections by template and verdict (allowed, refused), summed over live executors`,
      `# TYPE ${NAME} counter`,
      ...samples.map((s) => `${NAME}{template="${s.template}",verdict="${s.verdict}"} ${s.value}`),
    ],
  });
  registry.collect(async () => {
    const next: typeof samples = [];
    for (const name of templates.names()) {
      if (!networkPolicy(templates.get(name).network).egress) continue;
      let allowed = 0;
      let refused = 0;
      for (const id of await records.executorIds(name)) {
        const handle = await records.executor(id);
        if (!handle) continue;
        // One executor that does not answer costs its share of this scrape, not the scrape.
        const t = await new EgressAgent(agents.get(handle)).totals().catch((err: unknown) => log('debug', 'egress totals unavailable', { executorId: id, error: String(err) }));
        if (!t) continue;
        allowed += t.allowedTotal;
        refused += t.refusedTotal;
      }
      next.push({ template: name, verdict: 'allowed', value: allowed }, { template: name, verdict: 'refused', value: refused });
    }
    samples = next;
  });
}
