/** The nightly run's state file: one JSON document per run, rewritten atomically after every step. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../util/atomic.js';
import type { GateDecision } from './gate.js';

export const STEPS = ['train', 'eval', 'gate', 'publish', 'reindex', 'activate', 'smoke'] as const;
export type StepName = (typeof STEPS)[number];

export interface GateMetrics {
  cleanR1: number;
  robustR1: number;
  /** which entry the robust number is (worst case over the suite) */
  robustOver: string;
}

export interface RunState {
  runId: string;
  startedAt: string;
  updatedAt: string;
  dryRun: boolean;
  backend?: { name: string; reason: string };
  done: Partial<Record<StepName, string>>;
  candidate?: { id: string; dir: string; source: 'trained' | 'given' };
  active?: { id: string; dir: string };
  eval?: { candidate: GateMetrics; active: GateMetrics; items: { images: number; captions: number }; protocol: string };
  gate?: GateDecision;
  published?: { id: string; dir: string; files: number; bytes: number; remote?: string };
  activation?: { jobId: string; from: string; to: string; status?: string };
  smoke?: { ok: boolean; detail: string; probe?: { clean: number; robust: number; images: number; captions: number } };
  rollback?: { jobId?: string; to: string; status: string; reason: string };
  outcome?: Outcome;
  error?: string;
}

export type Outcome = 'deployed' | 'rejected' | 'rolled-back' | 'rollback-failed' | 'dry-run' | 'already-active';

export function stateFile(stateDir: string, runId: string): string {
  return join(stateDir, runId, 'state.json');
}

export function readState(stateDir: string, runId: string): RunState | undefined {
  const f = stateFile(stateDir, runId);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as RunState) : undefined;
}

export async function writeState(stateDir: string, s: RunState): Promise<void> {
  s.updatedAt = new Date().toISOString();
  await writeJsonAtomic(stateFile(stateDir, s.runId), s);
}
