/**
 * A data split as a probe: its first `limit` images (the fixed held-out sample a gate compares models on) as the
 * queries, and the same items as the in-memory gallery, so ranks are among the split's own items.
 */
import type { DatasetSplit } from '../../data/types.js';
import type { ProbeQuerySet } from './runner.js';
import type { MemoryGallery } from './sources/memory.js';

export function probeFromSplit(split: DatasetSplit, limit?: number): { queries: ProbeQuerySet; gallery: MemoryGallery } {
  const n = Math.min(limit ?? split.count, split.count);
  if (n < 1) throw new Error(`split ${split.name} has no images to probe`);
  const per = split.size * split.size * 3;
  const captions: string[] = [];
  const captionToImage: number[] = [];
  for (let i = 0; i < n; i++) {
    for (const c of split.imageToCaptions[i]) {
      captions.push(split.captions[c]);
      captionToImage.push(i);
    }
  }
  const images = split.images.subarray(0, n * per);
  const ids = split.imageIds.slice(0, n);
  return {
    queries: { size: split.size, images, ids, captions, captionToImage, origin: `the first ${n} images of split ${split.name}` },
    gallery: { size: split.size, images, ids, captions, captionToImage },
  };
}
