/**
 * Background work that survives the runtime. Probes (POST /v1/probes) and activations (POST /v1/models/{id}/activate)
 * answer 202 and go on after the response; where they go on depends on the runtime, chosen by the runner the app
 * receives in its deps:
 *   Node      in-process: the managers' own loops, a restart resumes them from the store (recover()).
 *   Worker    a Cloudflare Queue: the 202 is sent once the queue holds {kind, id}; the Worker's queue() consumer
 *             runs the job to completion from the store (runJob). ctx.waitUntil only carries in-process work when
 *             no queue is bound (it gives 30 s after the response: enough for a small probe, not for minutes).
 *   Lambda    SQS: the same message, consumed by src/aws/lambda.ts jobsConsumer (a Lambda is frozen once its
 *             response is sent, so nothing may run after it in the API function).
 * On a distributed runner a job may run in another isolate or container than the one that took the request, so
 * the managers keep no job state in memory there: cancel goes through the store, counts come from the store, and
 * nothing is re-run at boot (the queue redelivers what was not finished). See docs/deployment.md "Background work".
 */
import { z } from 'zod';

export const JOB_KINDS = ['probe', 'activation'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

/** the queue message of a job: which manager, which persisted document */
export interface JobMessage {
  kind: JobKind;
  id: string;
}

const JobMessageSchema = z.strictObject({ kind: z.enum(JOB_KINDS), id: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/, 'expected a job id') });

/** Validates a queue message body (object or JSON text); the error names the offending field. */
export function parseJobMessage(body: unknown): JobMessage {
  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      throw new Error('job message: not valid JSON');
    }
  }
  const r = JobMessageSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : issue.path.join('.');
    throw new Error(`job message: ${field ? `${field}: ` : ''}${issue.message}`);
  }
  return r.data;
}

/** true when a queue message is a job message (a queue may carry other messages: the re-index batches) */
export function isJobMessage(body: unknown): boolean {
  return JobMessageSchema.safeParse(body).success;
}

/** where a job runs: in this process, or wherever the runtime's queue delivers it */
export type Placement = 'in-process' | 'queue';

/** the part of a Workers ExecutionContext the runner uses */
export interface WaitUntilContext {
  waitUntil(work: Promise<unknown>): void;
}

export interface BackgroundRunner {
  /** for logs and /ready: 'in-process', 'cloudflare-queues', 'sqs', ... */
  readonly name: string;
  /** jobs may run in another isolate / container: no in-memory job state, no re-run at boot */
  readonly distributed: boolean;
  placement(kind: JobKind): Placement;
  /** hands a persisted job to the queue; resolves once the queue has it */
  enqueue(job: JobMessage): Promise<void>;
  /** in-process work that must outlive the request (Workers: ctx.waitUntil; Node: the process stays anyway) */
  keepAlive(work: Promise<unknown>, ctx: WaitUntilContext | undefined): void;
}

/** Node: every job in the managers' own loops; a restart resumes them (recover()). */
export function inProcessRunner(): BackgroundRunner {
  return {
    name: 'in-process',
    distributed: false,
    placement: () => 'in-process',
    enqueue: async (job) => {
      throw new Error(`job ${job.kind} ${job.id}: the in-process runner has no queue`);
    },
    keepAlive: () => undefined,
  };
}

/**
 * A runtime whose instances come and go (Worker isolates, Lambda containers): jobs of every kind go to the queue
 * `send` reaches. Without a queue (`send` undefined) they run in the isolate that took the request, kept alive by
 * ctx.waitUntil: best effort, cut 30 s after the response on Workers (logged once by the entry).
 */
export function edgeRunner(opts: { name: string; send?: (job: JobMessage) => Promise<void> }): BackgroundRunner {
  const send = opts.send;
  return {
    name: send ? opts.name : 'in-process (no job queue bound)',
    distributed: true,
    placement: () => (send ? 'queue' : 'in-process'),
    enqueue: async (job) => {
      if (!send) throw new Error(`job ${job.kind} ${job.id}: no queue is configured`);
      await send(job);
    },
    keepAlive: (work, ctx) => ctx?.waitUntil(work.catch(() => undefined)),
  };
}

/**
 * In-process work on a distributed runtime lives at most this long after its request (Workers: waitUntil ends 30 s
 * after the response; the rest is margin for the request itself), so a job found unfinished later was cut.
 */
const WAIT_UNTIL_HORIZON_MS = 120_000;

/** true when a job created at `createdAt`, not running in this process, can no longer be running anywhere */
export function cutByRuntime(runner: BackgroundRunner, kind: JobKind, createdAt: string, now = Date.now()): boolean {
  return runner.distributed && runner.placement(kind) === 'in-process' && now - Date.parse(createdAt) > WAIT_UNTIL_HORIZON_MS;
}

/** what a job cut by the runtime says */
export function cutMessage(runner: BackgroundRunner): string {
  return `cut by the runtime (${runner.name}: in-process work ends 30 s after the response); bind a job queue (JOBS_QUEUE, JOBS_QUEUE_URL) for long work`;
}

/** the request's ExecutionContext when the runtime gives one (Hono's c.executionCtx throws where there is none) */
export function waitUntilOf(c: { readonly executionCtx: unknown }): WaitUntilContext | undefined {
  try {
    const ctx = c.executionCtx as Partial<WaitUntilContext> | undefined;
    return typeof ctx?.waitUntil === 'function' ? (ctx as WaitUntilContext) : undefined;
  } catch {
    return undefined;
  }
}

/** what a queue consumer drives: the managers' run-by-id and give-up entries */
export interface JobTargets {
  probes: { runById(id: string): Promise<unknown>; failById(id: string, reason: string): Promise<void> };
  activation: { runById(id: string): Promise<unknown>; failById(id: string, reason: string): Promise<void> };
}

/**
 * Consumer side: runs one job to completion from the store. Resolves when the job reached a final state (succeeded,
 * failed, canceled: the message is acked); throws when it did not (the queue redelivers it).
 */
export async function runJob(targets: JobTargets, job: JobMessage): Promise<void> {
  await (job.kind === 'probe' ? targets.probes : targets.activation).runById(job.id);
}

/** Dead-letter side: a job whose deliveries are exhausted is marked failed with the reason. */
export async function failJob(targets: JobTargets, job: JobMessage, reason: string): Promise<void> {
  await (job.kind === 'probe' ? targets.probes : targets.activation).failById(job.id, reason);
}
