/**
 * One queue in front of the encoders (tfjs: synchronous; onnxruntime: asynchronous, on its own threads).
 *
 * tfjs forward passes block the event loop and onnxruntime's use every core, so running two at once gains
 * nothing; the queue makes the order explicit and adds two things:
 * - micro-batching: query embeddings that arrive while a forward pass runs wait in the queue, and the next
 *   drain embeds all texts (and all images) for the same model in ONE forward pass (up to `microBatch`);
 * - priorities: interactive embeddings (search, embed, ingest) always go before background work (activation
 *   re-embedding, probe attack chunks), which runs one chunk per turn, so a probe cannot starve searches for
 *   longer than one chunk.
 * The queue yields to the event loop (setImmediate) between turns, so I/O and new requests interleave.
 */
import type { Encoder } from '../model/encoder.js';

type Deferred<T> = { resolve: (v: T) => void; reject: (e: unknown) => void };

interface TextJob extends Deferred<Float32Array> {
  kind: 'text';
  encoder: Encoder;
  text: string;
}
interface ImageJob extends Deferred<Float32Array> {
  kind: 'image';
  encoder: Encoder;
  /** uint8 0..255, or float32 in [0, 1] (adversarial images) */
  pixels: Uint8Array | Float32Array;
}
interface TaskJob extends Deferred<unknown> {
  kind: 'task';
  fn: () => unknown;
}

export interface QueueStats {
  batches: number;
  embedded: number;
  tasks: number;
  maxBatch: number;
}

export class EncoderQueue {
  private interactive: (TextJob | ImageJob)[] = [];
  private background: TaskJob[] = [];
  private scheduled = false;
  private running = false;
  readonly stats: QueueStats = { batches: 0, embedded: 0, tasks: 0, maxBatch: 0 };
  /** observer for metrics: (kind, batch size, seconds) */
  onBatch?: (kind: 'text' | 'image' | 'task', size: number, seconds: number) => void;

  constructor(private readonly microBatch = 32) {}

  get depth(): number {
    return this.interactive.length + this.background.length;
  }

  embedText(encoder: Encoder, text: string): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.interactive.push({ kind: 'text', encoder, text, resolve, reject });
      this.schedule();
    });
  }

  /** pixels: one image, [S, S, 3], uint8 0..255 or float32 in [0, 1] */
  embedImage(encoder: Encoder, pixels: Uint8Array | Float32Array): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.interactive.push({ kind: 'image', encoder, pixels, resolve, reject });
      this.schedule();
    });
  }

  /** Batch helpers for ingest: one queue turn per call, still ahead of background work. */
  async embedTexts(encoder: Encoder, texts: string[]): Promise<Float32Array[]> {
    return Promise.all(texts.map((t) => this.embedText(encoder, t)));
  }

  /** Runs fn exclusively (no forward pass of anyone else in between), after all waiting interactive work. */
  run<T>(fn: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.background.push({ kind: 'task', fn, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.turn();
    });
  }

  private async turn(): Promise<void> {
    this.running = true;
    try {
      if (this.interactive.length > 0) await this.runBatch();
      else if (this.background.length > 0) {
        const job = this.background.shift()!;
        const t0 = performance.now();
        try {
          job.resolve(await job.fn());
        } catch (e) {
          job.reject(e);
        }
        this.stats.tasks++;
        this.onBatch?.('task', 1, (performance.now() - t0) / 1000);
      }
    } finally {
      this.running = false;
      if (this.depth > 0) this.schedule();
    }
  }

  /** Takes the first waiting job's (kind, encoder) and every other waiting job of that pair, up to microBatch. */
  private async runBatch(): Promise<void> {
    const first = this.interactive[0];
    const take: (TextJob | ImageJob)[] = [];
    const rest: (TextJob | ImageJob)[] = [];
    for (const j of this.interactive) {
      const same =
        j.kind === first.kind &&
        j.encoder === first.encoder &&
        (j.kind === 'text' || (j as ImageJob).pixels.constructor === (first as ImageJob).pixels.constructor);
      if (take.length < this.microBatch && same) take.push(j);
      else rest.push(j);
    }
    this.interactive = rest;
    const enc = first.encoder;
    const t0 = performance.now();
    try {
      let m: Float32Array;
      if (first.kind === 'text') {
        m = await enc.embedTextsMatrixAsync((take as TextJob[]).map((j) => j.text));
      } else {
        const per = enc.imageSize * enc.imageSize * 3;
        const px = (first as ImageJob).pixels instanceof Float32Array ? new Float32Array(take.length * per) : new Uint8Array(take.length * per);
        (take as ImageJob[]).forEach((j, i) => px.set(j.pixels, i * per));
        m = await enc.embedImagesMatrixAsync(px, take.length);
      }
      const E = enc.dim;
      take.forEach((j, i) => j.resolve(m.slice(i * E, (i + 1) * E)));
    } catch (e) {
      for (const j of take) j.reject(e);
    }
    this.stats.batches++;
    this.stats.embedded += take.length;
    this.stats.maxBatch = Math.max(this.stats.maxBatch, take.length);
    this.onBatch?.(first.kind, take.length, (performance.now() - t0) / 1000);
  }

  /** Rejects everything still waiting (shutdown). */
  drainReject(reason: Error): void {
    for (const j of this.interactive) j.reject(reason);
    for (const j of this.background) j.reject(reason);
    this.interactive = [];
    this.background = [];
  }
}
