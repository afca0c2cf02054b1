/**
 * Re-shard a model artifact: the same weights, tokenizer, config, id and training record, written with another
 * `shardBytes` (e.g. below the 25 MiB per-file limit of Cloudflare Workers static assets). The source is verified
 * first (every file's size and sha256), tensors are copied one at a time through saveArtifact (atomic, one tensor in
 * memory), and the result is verified again: every file hashed, the weight table (names, shapes, order) equal to the
 * source's, and tokenizer.json byte-identical (its sha256), so the kept id still names these exact bytes.
 * One tensor never spans two shards (the artifact format), so a tensor larger than `shardBytes` is refused up front.
 */
import { ArtifactError, loadArtifactTokenizer, openArtifactWeights, saveArtifact, verifyArtifact, type ArtifactManifest } from './artifact.js';

export interface ReshardResult {
  manifest: ArtifactManifest;
  /** weight shards before and after */
  shardsBefore: number;
  shardsAfter: number;
  /** the largest weight file written, in bytes */
  largestShard: number;
}

/** the largest tensor of an artifact, in bytes (float32) */
export function largestTensor(manifest: Pick<ArtifactManifest, 'weights'>): { name: string; bytes: number } | undefined {
  let best: { name: string; bytes: number } | undefined;
  for (const w of manifest.weights) {
    const bytes = w.shape.reduce((a, d) => a * d, 1) * 4;
    if (!best || bytes > best.bytes) best = { name: w.name, bytes };
  }
  return best;
}

const weightFiles = (m: ArtifactManifest) => m.files.filter((f) => m.weights.some((w) => w.file === f.path));

export async function reshardArtifact(from: string, to: string, shardBytes: number, opts: { overwrite?: boolean } = {}): Promise<ReshardResult> {
  if (!Number.isSafeInteger(shardBytes) || shardBytes < 4) throw new ArtifactError(`reshard: shardBytes must be an integer >= 4, got ${shardBytes}`);
  const { manifest, tokenizer } = await loadArtifactTokenizer(from);
  const big = largestTensor(manifest);
  if (big && big.bytes > shardBytes) {
    throw new ArtifactError(`reshard: weight ${big.name} of ${manifest.id} is ${big.bytes} bytes, more than the ${shardBytes}-byte shard limit (one tensor never spans two shards)`);
  }
  const weights = await openArtifactWeights(from);
  let written: ArtifactManifest;
  try {
    written = await saveArtifact(to, {
      config: manifest.config,
      weights: manifest.weights.map((w) => ({ name: w.name, shape: w.shape, data: () => weights.read(w.name) })),
      tokenizer,
      training: manifest.training,
      metrics: manifest.metrics,
      id: manifest.id,
      created: new Date(manifest.created),
      ...(manifest.source ? { source: manifest.source } : {}),
      shardBytes,
      overwrite: opts.overwrite ?? false,
    });
  } finally {
    await weights.close();
  }
  const check = await verifyArtifact(to);
  const table = (m: ArtifactManifest) => JSON.stringify(m.weights.map((w) => [w.name, w.shape]));
  const tokenizerSha = (m: ArtifactManifest) => m.files.find((f) => f.path === m.tokenizer.file)?.sha256;
  if (table(check) !== table(manifest)) throw new ArtifactError(`reshard: the weight table of ${to} differs from ${from}'s`);
  if (tokenizerSha(check) !== tokenizerSha(manifest)) throw new ArtifactError(`reshard: ${to}/tokenizer.json differs from ${from}'s (the tokenizer did not round-trip byte for byte)`);
  const after = weightFiles(written);
  return { manifest: written, shardsBefore: weightFiles(manifest).length, shardsAfter: after.length, largestShard: Math.max(0, ...after.map((f) => f.bytes)) };
}
