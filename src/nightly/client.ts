/** The few admin calls the nightly job makes to the running API (blue/green activation, the smoke probe). */
import type { ProbeAttackSpec, RobustProbeReport } from '../eval/robust/index.js';

export class ApiClient {
  constructor(
    readonly url: string,
    private readonly key: string,
  ) {}

  async call<T = any>(method: string, path: string, json?: unknown): Promise<{ status: number; body: T }> {
    const r = await fetch(`${this.url.replace(/\/$/, '')}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.key}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });
    const text = await r.text();
    let body: any = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* keep text */
    }
    return { status: r.status, body };
  }

  async activeModel(): Promise<string> {
    const r = await this.call<{ active: string }>('GET', '/v1/models');
    if (r.status !== 200) throw new Error(`GET /v1/models: HTTP ${r.status}`);
    return r.body.active;
  }

  /** POST /v1/models/{id}/activate; 409 already_active is reported as null (nothing to do). */
  async startActivation(id: string): Promise<string | null> {
    const r = await this.call<any>('POST', `/v1/models/${encodeURIComponent(id)}/activate`);
    if (r.status === 202) return r.body.job.id as string;
    if (r.status === 409 && r.body?.error?.code === 'already_active') return null;
    if (r.status === 409 && r.body?.error?.code === 'activation_running') throw new Error(`another activation is running: ${r.body.error.message}`);
    throw new Error(`POST /v1/models/${id}/activate: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  }

  async waitJob(jobId: string, pollMs: number, timeoutMs: number): Promise<{ status: string; error?: string }> {
    const t0 = Date.now();
    for (;;) {
      const r = await this.call<any>('GET', `/v1/jobs/${encodeURIComponent(jobId)}`);
      if (r.status !== 200) throw new Error(`GET /v1/jobs/${jobId}: HTTP ${r.status}`);
      if (r.body.job.status !== 'running') return { status: r.body.job.status, ...(r.body.job.error ? { error: r.body.job.error } : {}) };
      if (Date.now() - t0 > timeoutMs) throw new Error(`activation job ${jobId} still running after ${timeoutMs} ms`);
      await new Promise((ok) => setTimeout(ok, pollMs));
    }
  }

  /** POST /v1/probes and wait for its report; a failed or canceled probe throws with the server's error */
  async probe(body: { sample: number; attacks: readonly ProbeAttackSpec[]; seed: number }, pollMs: number, timeoutMs: number): Promise<RobustProbeReport> {
    const created = await this.call<any>('POST', '/v1/probes', body);
    if (created.status !== 202) throw new Error(`POST /v1/probes: HTTP ${created.status} ${JSON.stringify(created.body)}`);
    const id = created.body.probe.id as string;
    const t0 = Date.now();
    for (;;) {
      const r = await this.call<any>('GET', `/v1/probes/${encodeURIComponent(id)}`);
      if (r.status !== 200) throw new Error(`GET /v1/probes/${id}: HTTP ${r.status}`);
      const p = r.body.probe;
      if (p.status === 'succeeded') return p.report as RobustProbeReport;
      if (p.status === 'failed' || p.status === 'canceled') throw new Error(`smoke probe ${id} ${p.status}${p.error ? `: ${p.error}` : ''}`);
      if (Date.now() - t0 > timeoutMs) throw new Error(`smoke probe ${id} still ${p.status} after ${timeoutMs} ms`);
      await new Promise((ok) => setTimeout(ok, pollMs));
    }
  }
}
