import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { tf } from '../src/engine/tf.js';

/**
 * A training checkpoint is one file: 'MFCK' | u32 header length | JSON header | float32 payload.
 * It is written to a temporary file, fsynced and renamed over the previous checkpoint, so a process killed at any
 * moment leaves either the old or the new checkpoint, never a torn one; the header carries the payload's sha256.
 */
const MAGIC = 'MFCK';

export interface CheckpointTensor {
  name: string;
  shape: number[];
  offset: number; // in float32 elements
}

export interface CheckpointHeader<S> {
  format: 'manyfold-checkpoint/1';
  state: S;
  tensors: CheckpointTensor[];
  payloadSha256: string;
}

export function writeCheckpoint<S>(path: string, state: S, tensors: Map<string, tf.Tensor>): void {
  mkdirSync(dirname(path), { recursive: true });
  const entries: CheckpointTensor[] = [];
  let total = 0;
  for (const [name, t] of tensors) {
    entries.push({ name, shape: t.shape.slice(), offset: total });
    total += t.size;
  }
  const payload = new Float32Array(total);
  for (const [i, t] of [...tensors.values()].entries()) payload.set(t.dataSync() as Float32Array, entries[i].offset);
  const payloadBytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const header: CheckpointHeader<S> = {
    format: 'manyfold-checkpoint/1',
    state,
    tensors: entries,
    payloadSha256: createHash('sha256').update(payloadBytes).digest('hex'),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.write(MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(headerBytes.length, 4);
  // float32 payload aligned to 4 bytes
  const pad = Buffer.alloc((4 - ((8 + headerBytes.length) % 4)) % 4, 0x20);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    for (const part of [prefix, headerBytes, pad, payloadBytes]) {
      let off = 0;
      while (off < part.length) off += writeSync(fd, part, off);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export interface LoadedCheckpoint<S> {
  state: S;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

export function readCheckpoint<S>(path: string): LoadedCheckpoint<S> {
  if (!existsSync(path)) throw new Error(`No checkpoint at ${path}`);
  const buf = readFileSync(path);
  if (buf.length < 8 || buf.toString('ascii', 0, 4) !== MAGIC) throw new Error(`${path} is not a Manyfold checkpoint (bad magic)`);
  const headerLen = buf.readUInt32LE(4);
  if (8 + headerLen > buf.length) throw new Error(`${path} is truncated (header)`);
  let header: CheckpointHeader<S>;
  try {
    header = JSON.parse(buf.toString('utf8', 8, 8 + headerLen)) as CheckpointHeader<S>;
  } catch (e) {
    throw new Error(`${path}: corrupt checkpoint header: ${(e as Error).message}`);
  }
  if (header.format !== 'manyfold-checkpoint/1') throw new Error(`${path}: unknown checkpoint format ${String(header.format)}`);
  const start = 8 + headerLen + ((4 - ((8 + headerLen) % 4)) % 4);
  const payloadBytes = buf.subarray(start);
  const sha = createHash('sha256').update(payloadBytes).digest('hex');
  if (sha !== header.payloadSha256) throw new Error(`${path}: checkpoint payload hash mismatch (truncated or corrupt)`);
  const payload = new Float32Array(payloadBytes.buffer.slice(payloadBytes.byteOffset, payloadBytes.byteOffset + payloadBytes.byteLength));
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const t of header.tensors) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    tensors.set(t.name, { shape: t.shape, data: payload.subarray(t.offset, t.offset + size) });
  }
  return { state: header.state, tensors };
}
