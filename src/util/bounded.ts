/**
 * At most `limit` asynchronous tasks in flight, started in submission order (the scenes generator and renderer
 * feed sharp this way: it has its own thread pool, so a few encodes in flight keep it busy without queueing
 * thousands of buffers). After the first failure `failed` turns true so the caller can stop submitting, and
 * `drain` rethrows that first error once everything in flight has settled.
 */
export class BoundedTasks {
  private readonly inflight = new Set<Promise<void>>();
  private error: { value: unknown } | undefined;

  constructor(private readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`BoundedTasks: limit must be an integer >= 1, got ${limit}`);
  }

  get failed(): boolean {
    return this.error !== undefined;
  }

  /** starts `task` now; resolves once fewer than `limit` tasks are in flight */
  async submit(task: () => Promise<void>): Promise<void> {
    const p: Promise<void> = task()
      .catch((err: unknown) => {
        this.error ??= { value: err };
      })
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    if (this.inflight.size >= this.limit) await Promise.race(this.inflight);
  }

  /** waits for every task in flight; throws the first error any task raised */
  async drain(): Promise<void> {
    await Promise.all(this.inflight);
    if (this.error) throw this.error.value;
  }
}
