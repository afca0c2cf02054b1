import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { tf } from '../src/engine/tf.js';
import { writeFileAtomicSync } from '../src/util/atomic.js';

/**
 * A training checkpoint is one file: 'MFCK' | u32 header length | JSON header | float32 payload.
 * It is written to a temporary file, fsynced and renamed over the previous checkpoint (src/util/atomic.ts), so a
 * process killed at any moment leaves either the old or the new checkpoint, never a torn one; the header carries
 * the payload's sha256.
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

/** bytes read per system call: bounds the transient copies, whatever the model size */
const IO_CHUNK = 64 << 20;

function bytesOf(data: Float32Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Streams the tensors one at a time (a CLIP-sized checkpoint is several GiB: no single buffer holds it): a first
 * pass hashes them for the header, a second writes them. Each pass copies one tensor out of the backend at a time.
 * The first pass reads with `await data()`, as webgpu in Node requires; the writer's second pass is synchronous
 * (an atomic file write) and reads with dataSync, which then finds the host copy webgpu keeps after the first
 * read (cpu and wasm read synchronously anyway).
 */
export async function writeCheckpoint<S>(path: string, state: S, tensors: Map<string, tf.Tensor>): Promise<void> {
  const entries: CheckpointTensor[] = [];
  let total = 0;
  for (const [name, t] of tensors) {
    if (t.dtype !== 'float32') throw new Error(`checkpoint tensor ${name} is ${t.dtype}; checkpoints hold float32`);
    entries.push({ name, shape: t.shape.slice(), offset: total });
    total += t.size;
  }
  const hash = createHash('sha256');
  for (const t of tensors.values()) hash.update(bytesOf((await t.data()) as Float32Array));
  const header: CheckpointHeader<S> = {
    format: 'manyfold-checkpoint/1',
    state,
    tensors: entries,
    payloadSha256: hash.digest('hex'),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.write(MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(headerBytes.length, 4);
  // float32 payload aligned to 4 bytes
  const pad = Buffer.alloc((4 - ((8 + headerBytes.length) % 4)) % 4, 0x20);
  function* parts(): Generator<Uint8Array> {
    yield* [prefix, headerBytes, pad];
    for (const t of tensors.values()) yield bytesOf(t.dataSync() as Float32Array); // one tensor out of the backend at a time
  }
  writeFileAtomicSync(path, parts());
}

export interface LoadedCheckpoint<S> {
  state: S;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

/**
 * Reads a checkpoint tensor by tensor (one Float32Array each; no buffer of the whole file, so checkpoints larger
 * than Node's 2 GiB read limit load), checking the payload's sha256 before returning anything.
 */
export function readCheckpoint<S>(path: string): LoadedCheckpoint<S> {
  if (!existsSync(path)) throw new Error(`No checkpoint at ${path}`);
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const prefix = Buffer.alloc(8);
    if (size < 8 || readSync(fd, prefix, 0, 8, 0) !== 8 || prefix.toString('ascii', 0, 4) !== MAGIC) throw new Error(`${path} is not a Manyfold checkpoint (bad magic)`);
    const headerLen = prefix.readUInt32LE(4);
    if (8 + headerLen > size) throw new Error(`${path} is truncated (header)`);
    const headerBytes = Buffer.alloc(headerLen);
    readFully(fd, headerBytes, 8, path);
    let header: CheckpointHeader<S>;
    try {
      header = JSON.parse(headerBytes.toString('utf8')) as CheckpointHeader<S>;
    } catch (e) {
      throw new Error(`${path}: corrupt checkpoint header: ${(e as Error).message}`);
    }
    if (header.format !== 'manyfold-checkpoint/1') throw new Error(`${path}: unknown checkpoint format ${String(header.format)}`);
    const start = 8 + headerLen + ((4 - ((8 + headerLen) % 4)) % 4);
    const payloadBytes = size - start;
    const elements = header.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    if (payloadBytes !== elements * 4) throw new Error(`${path}: checkpoint payload truncated or corrupt (${payloadBytes} bytes for ${elements} float32s)`);
    const hash = createHash('sha256');
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    // the header lists the tensors in payload order (writeCheckpoint): read them in offset order
    for (const t of [...header.tensors].sort((a, b) => a.offset - b.offset)) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      readFully(fd, bytes, start + t.offset * 4, path);
      hash.update(bytes);
      tensors.set(t.name, { shape: t.shape, data });
    }
    if (hash.digest('hex') !== header.payloadSha256) throw new Error(`${path}: checkpoint payload hash mismatch (truncated or corrupt)`);
    return { state: header.state, tensors };
  } finally {
    closeSync(fd);
  }
}

function readFully(fd: number, into: Buffer, position: number, path: string): void {
  for (let off = 0; off < into.length; ) {
    const n = readSync(fd, into, off, Math.min(IO_CHUNK, into.length - off), position + off);
    if (n === 0) throw new Error(`${path} is truncated`);
    off += n;
  }
}
