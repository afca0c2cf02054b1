/**
 * A retrieval system Manyfold does not own, reached over HTTP (probe/target: the TargetClient), as a rank source
 * of the robust-recall runner (src/eval/robust). Every image that leaves this process is an 8-bit image file
 * (probe/wire.ts: PNG, or JPEG at a chosen quality); recall is measured on exactly those bytes.
 *
 * Only transfer (crafted on a surrogate Manyfold model) and query-only black-box attacks apply: the target's
 * model is not reachable, so the source offers no white-box model. A target that misbehaves ends the probe
 * early with what was measured marked partial (auth, budget: fatal TargetErrors) or counts the query as failed
 * after the client's retries; nothing is retried forever.
 */
import type { RankSource, SourceHit, SourceStats } from '../eval/robust/rank-source.js';
import type { TargetClient } from './target/index.js';
import { describeEncoding, encodeImage, type WireEncoding } from './wire.js';

export class RemoteRankSource implements RankSource {
  readonly kind = 'remote' as const;
  readonly name: string;
  readonly imageTransport: string;
  readonly jpegQuality?: number;
  readonly details: Readonly<Record<string, string>>;

  constructor(
    private readonly client: TargetClient,
    private readonly encoding: WireEncoding,
  ) {
    this.name = client.spec.name ?? 'target';
    this.imageTransport = describeEncoding(encoding);
    if (encoding.format === 'jpeg') this.jpegQuality = encoding.quality;
    this.details = {};
  }

  async searchImage(rgb: Uint8Array, size: number, topK: number): Promise<SourceHit[]> {
    return this.client.search({ kind: 'image', ...(await encodeImage(rgb, size, this.encoding)) }, topK);
  }

  searchText(text: string, topK: number): Promise<SourceHit[]> {
    return this.client.search({ kind: 'text', text }, topK);
  }

  stats(): SourceStats {
    return this.client.stats();
  }
}
