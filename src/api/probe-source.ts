/**
 * This server's live index as a rank source of the robust-recall runner (src/eval/robust): queries are embedded
 * by the served model on the encoder queue (interactive lane: exactly a client's search path) and searched in the
 * production index, read-only. White-box attacks get the served weights (their gradient work runs on the queue's
 * background lane, so client searches go first).
 */
import type { RankSource, SourceHit, WhiteBoxModel } from '../eval/robust/rank-source.js';
import type { ActiveModel, RetrievalService } from './service.js';

export class LiveIndexRankSource implements RankSource {
  readonly kind = 'live-index' as const;
  /** what a PNG upload of the same pixels decodes to: the server embeds the 8-bit pixels */
  readonly imageTransport = '8-bit pixels (what a lossless upload decodes to)';
  readonly name: string;
  readonly details: Readonly<Record<string, string>>;

  constructor(
    private readonly service: RetrievalService,
    private readonly model: ActiveModel,
    /** the user namespace searched (a probe's scratch namespace for supplied pairs) */
    private readonly namespace: string,
  ) {
    this.name = model.id;
    this.details = { model: model.id, index: service.indexKind, namespace };
  }

  async searchImage(rgb: Uint8Array, _size: number, topK: number): Promise<SourceHit[]> {
    return this.service.search(this.namespace, { pixels: rgb }, 'texts', topK, undefined, this.model);
  }

  async searchText(text: string, topK: number): Promise<SourceHit[]> {
    return this.service.search(this.namespace, { text }, 'images', topK, undefined, this.model);
  }

  whiteBox = async (): Promise<WhiteBoxModel> => ({ encoder: await this.model.encoder.differentiable(), tokenizer: this.model.encoder.tokenizer });

  schedule = <T>(work: () => Promise<T>): Promise<T> => this.service.inBackground(work);
}
