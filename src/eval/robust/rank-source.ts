/**
 * A rank source: the retrieval system a robust-recall probe measures, reduced to what the probe needs (a search
 * by image and by text that returns ranked item ids) plus, when the probe may use it, the system's own model.
 *
 * Three implementations answer the same questions, so one runner (runner.ts) gives comparable numbers:
 * - in memory (sources/memory.ts): a model and its gallery in this process (eval, experiments, tests);
 * - the live index of a Manyfold server (src/api/probe-source.ts): our own deployment, read-only;
 * - a remote HTTP target (src/probe/remote-source.ts): any system a security team points the probe at.
 */
import type { DualEncoder, Tokenizer } from '../../model/types.js';

export interface SourceHit {
  /** the system's id of an item (a caption hit names its item) */
  id: string;
  score?: number;
}

export interface WhiteBoxModel {
  encoder: DualEncoder;
  tokenizer: Tokenizer;
}

export interface SourceStats {
  /** requests sent, retries included */
  requests: number;
  retries: number;
  /** failed searches by kind of failure */
  failures?: Partial<Record<string, number>>;
  latencyMs: { count: number; p50: number; p90: number; p99: number; max: number; mean: number };
}

export interface RankSource {
  readonly kind: 'in-memory' | 'live-index' | 'remote';
  /** the system measured, for the report (model id, target name) */
  readonly name: string;
  /** how an image query reaches the system, for the report ('PNG (lossless, 8-bit)', '8-bit pixels') */
  readonly imageTransport: string;
  /** JPEG quality when image queries travel as JPEG (expectation over the encoding needs it) */
  readonly jpegQuality?: number;
  /** extra facts for the report (index kind, namespace) */
  readonly details?: Readonly<Record<string, string>>;
  /** an S x S RGB query (8-bit, row-major): the ids of the top `topK` results, best first */
  searchImage(rgb: Uint8Array, size: number, topK: number): Promise<SourceHit[]>;
  searchText(text: string, topK: number): Promise<SourceHit[]>;
  /** the system's own differentiable model, for white-box attacks; absent when only its answers can be reached */
  whiteBox?: () => Promise<WhiteBoxModel>;
  /** where gradient work runs (the API's background lane, so searches go first); default: inline */
  schedule?: <T>(work: () => Promise<T>) => Promise<T>;
  /**
   * the same system over attacked copies of its gallery (the papers' protocol; in-memory sources only): the
   * images and captions in the gallery's own order, same ids
   */
  withGallery?: (g: { images: Uint8Array; captions: readonly string[] }) => Promise<RankSource>;
  /** request statistics (remote targets) */
  stats?: () => SourceStats;
}

/**
 * A query the source could not answer. `fatal` = continuing is pointless (auth refused, budget spent): the runner
 * stops and reports what it measured as partial. Other failures count the query as failed and go on.
 */
export class RankSourceError extends Error {
  constructor(
    readonly kind: string,
    message: string,
    readonly fatal: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RankSourceError';
  }
}
