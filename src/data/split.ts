/** One split of the configured data set, loaded for a model: the data loading that training, eval and the nightly gate share. */
import type { ManyfoldConfig } from '../config.js';
import type { DecodeModelConfig } from './imageCache.js';
import { loadDataset } from './load.js';
import { loadProgressBar } from './progress.js';
import type { DatasetSplit } from './types.js';

/**
 * One split of the configured data set, decoded for a model: `model` (a model's config) decodes as that model's
 * family wants (an imported CLIP model: CLIPImageProcessor's shortest-edge resize and centre crop), a bare size
 * with Manyfold's rule.
 */
export async function loadSplit(config: Pick<ManyfoldConfig, 'data'>, split: string, model: number | DecodeModelConfig, quiet = false): Promise<DatasetSplit> {
  const file = config.data.file;
  if (!file) throw new Error('no data file: pass --data FILE (Karpathy JSON or JSONL manifest)');
  const bar = loadProgressBar(`load ${split}`, quiet);
  try {
    const data = await loadDataset(file, {
      ...(typeof model === 'number' ? { size: model } : { model }),
      split,
      imagesDir: config.data.imagesDir,
      onBadRow: config.data.onBadRow,
      cacheDir: config.data.cacheDir,
      onProgress: bar.onProgress,
      onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
    });
    if (data.skipped.length) process.stderr.write(`${split}: skipped ${data.skipped.length} bad rows (first: ${data.skipped[0].where}: ${data.skipped[0].reason})\n`);
    return data;
  } finally {
    bar.stop();
  }
}
