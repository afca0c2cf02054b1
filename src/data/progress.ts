import { createProgress } from '../util/progress.js';
import type { LoadProgress } from './load.js';

/** A loadDataset onProgress callback that drives a progress bar (decode/cache phase). */
export function loadProgressBar(label: string, quiet = false): { onProgress: (p: LoadProgress) => void; stop: () => void } {
  let bar: ReturnType<typeof createProgress> | undefined;
  return {
    onProgress(p) {
      if (quiet) return;
      bar ??= createProgress(label, p.total, { everyMs: 5000 });
      bar.update(p.done, { cached: p.cacheHits, decoded: p.decoded, skipped: p.skipped });
    },
    stop() {
      bar?.stop();
    },
  };
}
