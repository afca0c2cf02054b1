/**
 * The in-memory rank source: a model and a gallery held in this process, searched exactly as a Manyfold server's
 * index searches them (items by image for text queries; caption records, each naming its item, for image
 * queries, so an item can appear once per caption in an image query's top-K, as in the live index). Used by
 * experiments and tests, and as the reference the live-index and remote sources are checked against.
 */
import type { Encoder } from '../../../model/encoder.js';
import type { RankSource, SourceHit, WhiteBoxModel } from '../rank-source.js';

export interface MemoryGallery {
  size: number;
  /** 8-bit RGB, row-major [N, S, S, 3] */
  images: Uint8Array;
  ids: readonly string[];
  captions: readonly string[];
  /** caption c belongs to item captionToImage[c] */
  captionToImage: readonly number[];
}

export class MemoryRankSource implements RankSource {
  readonly kind = 'in-memory' as const;
  readonly imageTransport = '8-bit pixels (in process)';
  readonly name: string;
  readonly details: Readonly<Record<string, string>>;

  private constructor(
    private readonly encoder: Encoder,
    private readonly gallery: MemoryGallery,
    private readonly imageEmb: Float32Array,
    private readonly textEmb: Float32Array,
  ) {
    this.name = encoder.version;
    this.details = { model: encoder.version, gallery: `${gallery.ids.length} items, ${gallery.captions.length} captions` };
  }

  /** embeds the gallery once with the model's serving engine */
  static async create(encoder: Encoder, gallery: MemoryGallery): Promise<MemoryRankSource> {
    const n = gallery.ids.length;
    if (gallery.size !== encoder.imageSize) throw new Error(`in-memory source: gallery images are ${gallery.size}px, the model takes ${encoder.imageSize}px`);
    if (gallery.images.length !== n * gallery.size * gallery.size * 3) throw new Error(`in-memory source: expected ${n} images of ${gallery.size}x${gallery.size}x3 bytes`);
    if (gallery.captionToImage.length !== gallery.captions.length) throw new Error('in-memory source: captionToImage needs one entry per caption');
    const imageEmb = await encoder.embedImagesMatrixAsync(gallery.images, n);
    const textEmb = await encoder.embedTextsMatrixAsync(gallery.captions);
    return new MemoryRankSource(encoder, gallery, imageEmb, textEmb);
  }

  async searchImage(rgb: Uint8Array, _size: number, topK: number): Promise<SourceHit[]> {
    const q = await this.encoder.embedImagesMatrixAsync(rgb, 1);
    return this.top(q, this.textEmb, topK, (c) => this.gallery.ids[this.gallery.captionToImage[c]]);
  }

  async searchText(text: string, topK: number): Promise<SourceHit[]> {
    const q = await this.encoder.embedTextsMatrixAsync([text]);
    return this.top(q, this.imageEmb, topK, (i) => this.gallery.ids[i]);
  }

  withGallery = async (g: { images: Uint8Array; captions: readonly string[] }): Promise<RankSource> => {
    if (g.images.length !== this.gallery.images.length || g.captions.length !== this.gallery.captions.length) {
      throw new Error(`in-memory source: an attacked gallery must replace all ${this.gallery.ids.length} images and ${this.gallery.captions.length} captions`);
    }
    return MemoryRankSource.create(this.encoder, { ...this.gallery, images: g.images, captions: g.captions });
  };

  whiteBox = async (): Promise<WhiteBoxModel> => ({ encoder: await this.encoder.differentiable(), tokenizer: this.encoder.tokenizer });

  /** cosine top-K (embeddings are unit length); ties keep the lower row first */
  private top(q: Float32Array, rows: Float32Array, topK: number, idOf: (row: number) => string): SourceHit[] {
    const dim = q.length;
    const n = rows.length / dim;
    const scored: { row: number; score: number }[] = [];
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += q[d] * rows[r * dim + d];
      scored.push({ row: r, score: s });
    }
    scored.sort((a, b) => b.score - a.score || a.row - b.row);
    return scored.slice(0, topK).map((x) => ({ id: idOf(x.row), score: x.score }));
  }
}
