/**
 * One view over a checkpoint's tensors, whether they sit in one safetensors file or in shards listed by a
 * `*.safetensors.index.json`, with an optional `module.` prefix stripped. Tensors are read one at a time through
 * openSafetensors (bounded, validated headers), so peak memory is one tensor.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import { formatZodIssues } from '../../util/zod.js';
import { CheckpointError, openSafetensors, type SafetensorsFile, type TensorInfo } from './safetensors.js';

/** more shards than any released checkpoint has (ViT-bigG is 10 GB in 2 shards); bounds open file handles */
export const MAX_SHARDS = 512;
/** an index file is a few KB; refuse to parse anything huge */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

export interface CheckpointTensor {
  /** the name after prefix stripping (what the mapping rules use) */
  key: string;
  /** the name stored in the file */
  stored: string;
  /** basename of the file that holds it */
  file: string;
  info: TensorInfo;
}

export interface CheckpointReader {
  /** basenames of the weight files read (shards, and the index when there is one) */
  files: string[];
  tensors: Map<string, CheckpointTensor>;
  /** whether a `module.` prefix was stripped */
  strippedPrefix: boolean;
  totalBytes: number;
  readFloat32(key: string): Promise<Float32Array>;
  close(): Promise<void>;
}

const indexSchema = z
  .object({
    metadata: z.record(z.string(), z.unknown()).optional(),
    weight_map: z.record(z.string(), z.string()),
  })
  .loose();

const PLAIN_FILE = /^[A-Za-z0-9_][A-Za-z0-9._-]*\.safetensors$/;
export const MODULE_PREFIX = 'module.';

async function readJsonFile(file: string, maxBytes: number): Promise<unknown> {
  const name = path.basename(file);
  let st;
  try {
    st = await fs.stat(file);
  } catch (e) {
    throw new CheckpointError(`cannot read ${name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, name);
  }
  if (st.size > maxBytes) throw new CheckpointError(`${name}: ${st.size} bytes is too large for a JSON file of this kind (limit ${maxBytes})`, name);
  try {
    return JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${name}: not valid JSON (${(e as Error).message})`, name);
  }
}

/**
 * Open `weightsFile` (a .safetensors file, or a .safetensors.index.json naming shards in the same directory).
 */
export async function openCheckpoint(weightsFile: string): Promise<CheckpointReader> {
  const dir = path.dirname(weightsFile);
  const base = path.basename(weightsFile);
  const opened: SafetensorsFile[] = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all(opened.map((f) => f.close().catch(() => undefined)));
  };
  try {
    const files: string[] = [];
    const raw = new Map<string, { stored: string; file: string; st: SafetensorsFile; info: TensorInfo }>();
    if (base.endsWith('.index.json')) {
      const parsed = indexSchema.safeParse(await readJsonFile(weightsFile, MAX_INDEX_BYTES));
      if (!parsed.success) throw new CheckpointError(`${base}: ${formatZodIssues(parsed.error, 4)}`, base);
      const map = parsed.data.weight_map;
      const shardNames = [...new Set(Object.values(map))].sort();
      if (shardNames.length === 0) throw new CheckpointError(`${base}: weight_map is empty`, base);
      if (shardNames.length > MAX_SHARDS) throw new CheckpointError(`${base}: names ${shardNames.length} shards (limit ${MAX_SHARDS})`, base);
      for (const s of shardNames) {
        // the index comes from the download: it may only name plain files beside it
        if (!PLAIN_FILE.test(s)) throw new CheckpointError(`${base}: shard name ${JSON.stringify(s)} is not a plain .safetensors file name in the same directory`, base);
      }
      files.push(base);
      const byShard = new Map<string, SafetensorsFile>();
      for (const s of shardNames) {
        const st = await openSafetensors(path.join(dir, s));
        opened.push(st);
        byShard.set(s, st);
        files.push(s);
        for (const [name, info] of st.tensors) {
          const prev = raw.get(name);
          if (prev) throw new CheckpointError(`tensor ${name} is stored twice: in ${prev.file} and in ${s}`, s, name);
          raw.set(name, { stored: name, file: s, st, info });
        }
      }
      for (const [name, shard] of Object.entries(map)) {
        const where = raw.get(name);
        if (!where) throw new CheckpointError(`${base}: tensor ${name} is listed in ${shard}, which does not hold it`, base, name);
        if (where.file !== shard) throw new CheckpointError(`${base}: tensor ${name} is listed in ${shard} but stored in ${where.file}`, base, name);
      }
    } else {
      const st = await openSafetensors(weightsFile);
      opened.push(st);
      files.push(base);
      for (const [name, info] of st.tensors) raw.set(name, { stored: name, file: base, st, info });
    }

    // a `module.` prefix (DistributedDataParallel) is stripped from every key that has it
    const strippedPrefix = [...raw.keys()].some((k) => k.startsWith(MODULE_PREFIX));
    const tensors = new Map<string, CheckpointTensor>();
    const handle = new Map<string, SafetensorsFile>();
    let totalBytes = 0;
    for (const [stored, r] of raw) {
      const key = stored.startsWith(MODULE_PREFIX) ? stored.slice(MODULE_PREFIX.length) : stored;
      const prev = tensors.get(key);
      if (prev) throw new CheckpointError(`tensors ${prev.stored} and ${stored} both become ${key} once the '${MODULE_PREFIX}' prefix is stripped`, r.file, stored);
      tensors.set(key, { key, stored, file: r.file, info: r.info });
      handle.set(key, r.st);
      totalBytes += r.info.end - r.info.begin;
    }
    return {
      files,
      tensors,
      strippedPrefix,
      totalBytes,
      async readFloat32(key: string): Promise<Float32Array> {
        const t = tensors.get(key);
        if (!t) throw new CheckpointError(`no tensor ${key}`, undefined, key);
        return handle.get(key)!.readFloat32(t.stored);
      },
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
