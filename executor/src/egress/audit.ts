/** One egress event of a sandbox: a DNS question or a connection, allowed or refused. */
export interface EgressEvent {
  protocol: 'dns' | 'tcp' | 'http' | 'tls';
  domain: string;
  ip: string;
  port: number;
  allowed: boolean;
  rule: string;
  bytesOut: number;
  bytesIn: number;
  detail: string;
}

export type AuditRecord = EgressEvent & { seq: number; timeMs: number };

/** Counts every sandbox's events, for the executor's totals (reported with each audit read). */
export const egressTotals = { allowed: 0, refused: 0 };

/**
 * A sandbox's egress records in a bounded buffer (the newest `capacity`); the control plane
 * reads them by sequence number. What falls out before it is read is counted as dropped.
 */
export class AuditLog {
  private readonly records: AuditRecord[] = [];
  private seq = 0;
  dropped = 0;
  allowed = 0;
  refused = 0;

  constructor(private readonly capacity = 2000) {}

  add(e: EgressEvent): void {
    if (e.allowed) {
      this.allowed++;
      egressTotals.allowed++;
    } else {
      this.refused++;
      egressTotals.refused++;
    }
    this.records.push({ ...e, seq: ++this.seq, timeMs: Date.now() });
    if (this.records.length > this.capacity) {
      this.records.shift();
      this.dropped++;
    }
  }

  after(seq: number, limit: number): AuditRecord[] {
    return this.records.filter((r) => r.seq > seq).slice(0, limit);
  }
}
