/**
 * safetensors, read and written without a dependency: an 8-byte little-endian header length N, N bytes of JSON
 * (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`, offsets relative to
 * the first byte after the header), then the raw little-endian tensor data.
 *
 * Why hand-written: the format is a page long, the official JS readers load the whole file into memory (a ViT-L/14
 * checkpoint is 1.7 GB), and a reader that faces downloaded files must bound and check everything before it
 * allocates. Here the header length is bounded (by MAX_HEADER_BYTES and by the file size) before the header is
 * read; every entry's dtype, shape and byte range is checked against the file before any tensor is read; tensors
 * are read one at a time with positional reads, so peak memory is one tensor, not the checkpoint.
 *
 * Every error is a CheckpointError naming the file and, where there is one, the tensor.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

/** The header of a real checkpoint is tens of KB; the reference implementation refuses above 100 MB. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
} as const;
export type SafetensorsDtype = keyof typeof DTYPE_BYTES;
/** dtypes Manyfold reads as weights (upcast to float32) */
export const FLOAT_DTYPES: readonly SafetensorsDtype[] = ['F64', 'F32', 'F16', 'BF16'];

/** A checkpoint problem; `file` names the offending file and `tensor` the tensor, when there is one. */
export class CheckpointError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly tensor?: string,
  ) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** absolute byte offsets in the file */
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  file: string;
  bytes: number;
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
  /** the tensor as float32 (F16 / BF16 / F64 converted); throws CheckpointError for a non-float dtype */
  readFloat32(name: string): Promise<Float32Array>;
  /** the tensor's raw little-endian bytes */
  readRaw(name: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Open a safetensors file and validate its header against the file: the header length is bounded before it is
 * read; every entry needs a known dtype, a shape of non-negative integers, and a byte range inside the data
 * section whose length equals numel x dtype size; ranges may not overlap.
 */
export async function openSafetensors(file: string): Promise<SafetensorsFile> {
  const name = path.basename(file);
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch (e) {
    throw new CheckpointError(`cannot open ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, name);
  }
  try {
    const { size } = await fh.stat();
    if (size < 8) throw new CheckpointError(`${name}: ${size} bytes, too short for a safetensors file (8-byte header length)`, name);
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const headerLen = lenBuf.readBigUInt64LE(0);
    if (headerLen > BigInt(MAX_HEADER_BYTES)) {
      throw new CheckpointError(`${name}: header length ${headerLen} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file, or a hostile one)`, name);
    }
    const n = Number(headerLen);
    if (8 + n > size) throw new CheckpointError(`${name}: header length ${n} bytes runs past the end of the ${size}-byte file (truncated or not safetensors)`, name);
    const headerBuf = Buffer.alloc(n);
    await fh.read(headerBuf, 0, n, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch (e) {
      throw new CheckpointError(`${name}: header is not valid JSON (${(e as Error).message})`, name);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) {
      throw new CheckpointError(`${name}: header must be a JSON object`, name);
    }
    const dataStart = 8 + n;
    const dataBytes = size - dataStart;
    const tensors = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    for (const [key, raw] of Object.entries(header as Record<string, unknown>)) {
      if (key === '__metadata__') {
        if (typeof raw !== 'object' || raw === null || Object.values(raw).some((v) => typeof v !== 'string')) {
          throw new CheckpointError(`${name}: __metadata__ must map strings to strings`, name);
        }
        metadata = raw as Record<string, string>;
        continue;
      }
      tensors.set(key, parseEntry(name, key, raw, dataStart, dataBytes));
    }
    const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i].begin < sorted[i - 1].end) {
        throw new CheckpointError(`${name}: tensors ${sorted[i - 1].name} and ${sorted[i].name} overlap in the data section`, name, sorted[i].name);
      }
    }
    return makeFile(fh, file, name, size, metadata, tensors);
  } catch (e) {
    await fh.close();
    throw e;
  }
}

function parseEntry(file: string, key: string, raw: unknown, dataStart: number, dataBytes: number): TensorInfo {
  const fail = (m: string): never => {
    throw new CheckpointError(`${file}: tensor ${key}: ${m}`, file, key);
  };
  if (typeof raw !== 'object' || raw === null) fail('entry must be an object');
  const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES)) {
    fail(`unknown dtype ${JSON.stringify(e.dtype)} (known: ${Object.keys(DTYPE_BYTES).join(', ')})`);
  }
  const dtype = e.dtype as SafetensorsDtype;
  if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) fail(`shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`);
  const shape = e.shape as number[];
  const off = e.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || off.some((d) => !Number.isSafeInteger(d) || d < 0) || off[1] < off[0]) {
    fail(`data_offsets ${JSON.stringify(off)} must be [begin, end] with 0 <= begin <= end`);
  }
  const [b, en] = off as [number, number];
  const want = numel(shape) * DTYPE_BYTES[dtype];
  if (en - b !== want) fail(`data_offsets [${b}, ${en}] hold ${en - b} bytes but ${dtype} [${shape.join(', ')}] needs ${want}`);
  if (en > dataBytes) fail(`data ends at byte ${en} of the data section, which has ${dataBytes} bytes (truncated file?)`);
  return { name: key, dtype, shape, begin: dataStart + b, end: dataStart + en };
}

function makeFile(
  fh: fs.FileHandle,
  file: string,
  name: string,
  size: number,
  metadata: Record<string, string>,
  tensors: Map<string, TensorInfo>,
): SafetensorsFile {
  const readRaw = async (tensor: string): Promise<Uint8Array> => {
    const info = tensors.get(tensor);
    if (!info) throw new CheckpointError(`${name}: no tensor ${tensor}`, name, tensor);
    const out = new Uint8Array(info.end - info.begin);
    let done = 0;
    while (done < out.length) {
      const { bytesRead } = await fh.read(out, done, out.length - done, info.begin + done);
      if (bytesRead === 0) throw new CheckpointError(`${name}: tensor ${tensor}: file ended while reading (changed on disk?)`, name, tensor);
      done += bytesRead;
    }
    return out;
  };
  return {
    file,
    bytes: size,
    metadata,
    tensors,
    readRaw,
    async readFloat32(tensor: string): Promise<Float32Array> {
      const info = tensors.get(tensor);
      if (!info) throw new CheckpointError(`${name}: no tensor ${tensor}`, name, tensor);
      if (!FLOAT_DTYPES.includes(info.dtype)) {
        throw new CheckpointError(`${name}: tensor ${tensor} has dtype ${info.dtype}; expected a float dtype (${FLOAT_DTYPES.join(', ')})`, name, tensor);
      }
      return toFloat32(await readRaw(tensor), info.dtype);
    },
    close: () => fh.close(),
  };
}

/** Raw little-endian bytes of a float dtype -> float32 values (F64 rounded, F16 / BF16 exact). */
export function toFloat32(raw: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const n = raw.byteLength / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
      return out;
    case 'BF16': {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(i * 2, true) << 16;
      return out;
    }
    default:
      throw new Error(`toFloat32: ${dtype} is not a float dtype`);
  }
}

/** IEEE 754 binary16 -> number (exact: every half is a float32). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** number -> IEEE 754 binary16 bits, round to nearest even (overflow to infinity). */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half; // a carry into the exponent is the correct rounding (up to infinity)
}

export interface TensorToWrite {
  name: string;
  shape: readonly number[];
  /** stored as dtype: 'F32' writes the values as they are, 'F16' / 'BF16' round them */
  dtype: 'F32' | 'F16' | 'BF16' | 'I64';
  data: Float32Array | BigInt64Array;
}

/**
 * Serialise tensors to safetensors bytes. Deterministic: tensors in the order given, header JSON padded with
 * spaces to a multiple of 8 bytes (as the reference writer does, so the data section is aligned).
 */
export function encodeSafetensors(tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new Error(`encodeSafetensors: duplicate tensor ${t.name}`);
    seen.add(t.name);
    const n = numel(t.shape);
    if (t.data.length !== n) throw new Error(`encodeSafetensors: ${t.name} has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    const bytes = n * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  while ((Buffer.byteLength(json) + 8) % 8 !== 0) json += ' ';
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let p = 8 + headerBytes.length;
  for (const t of tensors) {
    const d = t.data;
    const n = d.length;
    switch (t.dtype) {
      case 'F32':
        for (let i = 0; i < n; i++, p += 4) dv.setFloat32(p, d[i] as number, true);
        break;
      case 'F16':
        for (let i = 0; i < n; i++, p += 2) dv.setUint16(p, floatToHalf(d[i] as number), true);
        break;
      case 'BF16':
        for (let i = 0; i < n; i++, p += 2) {
          f32[0] = d[i] as number;
          const b = u32[0];
          // round to nearest even on the dropped 16 bits (NaN kept NaN)
          const r = Number.isNaN(f32[0]) ? 0x7fc0 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
          dv.setUint16(p, r & 0xffff, true);
        }
        break;
      case 'I64':
        for (let i = 0; i < n; i++, p += 8) dv.setBigInt64(p, BigInt(d[i] as bigint | number), true);
        break;
    }
  }
  return out;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** One tensor's values as little-endian bytes of `dtype` (the encoding encodeSafetensors uses). */
export function encodeTensorData(dtype: TensorToWrite['dtype'], data: Float32Array | BigInt64Array): Uint8Array {
  const size = DTYPE_BYTES[dtype];
  const out = new Uint8Array(data.length * size);
  const dv = new DataView(out.buffer);
  const n = data.length;
  switch (dtype) {
    case 'F32':
      if (LITTLE_ENDIAN_HOST && data instanceof Float32Array) out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      else for (let i = 0; i < n; i++) dv.setFloat32(i * 4, data[i] as number, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, floatToHalf(data[i] as number), true);
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) {
        f32[0] = data[i] as number;
        const b = u32[0];
        const r = Number.isNaN(f32[0]) ? 0x7fc0 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
        dv.setUint16(i * 2, r & 0xffff, true);
      }
      break;
    case 'I64':
      for (let i = 0; i < n; i++) dv.setBigInt64(i * 8, BigInt(data[i] as bigint | number), true);
      break;
  }
  return out;
}

export interface TensorDecl {
  name: string;
  shape: readonly number[];
  dtype: TensorToWrite['dtype'];
}

export interface SafetensorsWriter {
  /** write the next declared tensor (tensors must come in declaration order) */
  write(name: string, data: Float32Array | BigInt64Array): Promise<void>;
  /** check every tensor was written, fsync and close */
  close(): Promise<void>;
  /** close and leave the partial file (the caller removes it) */
  abort(): Promise<void>;
}

/**
 * Stream a safetensors file: the header (from the declarations, same layout as encodeSafetensors) is written first,
 * then each tensor as it is produced, so writing a checkpoint holds one tensor, not the file.
 */
export async function createSafetensorsWriter(file: string, decls: readonly TensorDecl[], metadata?: Record<string, string>): Promise<SafetensorsWriter> {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const d of decls) {
    if (seen.has(d.name)) throw new Error(`createSafetensorsWriter: duplicate tensor ${d.name}`);
    seen.add(d.name);
    const bytes = numel(d.shape) * DTYPE_BYTES[d.dtype];
    header[d.name] = { dtype: d.dtype, shape: [...d.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  while ((Buffer.byteLength(json) + 8) % 8 !== 0) json += ' ';
  const headerBytes = Buffer.from(json, 'utf8');
  const lead = new Uint8Array(8 + headerBytes.length);
  new DataView(lead.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  lead.set(headerBytes, 8);
  const fh = await fs.open(file, 'w');
  let pos = 0;
  const put = async (b: Uint8Array): Promise<void> => {
    let done = 0;
    while (done < b.length) {
      const { bytesWritten } = await fh.write(b, done, b.length - done, pos + done);
      done += bytesWritten;
    }
    pos += b.length;
  };
  try {
    await put(lead);
  } catch (e) {
    await fh.close();
    throw e;
  }
  let next = 0;
  return {
    async write(name, data) {
      const d = decls[next];
      if (!d || d.name !== name) throw new Error(`createSafetensorsWriter: expected ${d ? d.name : 'no more tensors'}, got ${name}`);
      if (data.length !== numel(d.shape)) throw new Error(`createSafetensorsWriter: ${name} has ${data.length} values for shape [${d.shape.join(', ')}]`);
      await put(encodeTensorData(d.dtype, data));
      next++;
    },
    async close() {
      try {
        if (next !== decls.length) throw new Error(`createSafetensorsWriter: ${decls.length - next} declared tensor(s) not written (next: ${decls[next].name})`);
        await fh.sync();
      } finally {
        await fh.close();
      }
    },
    async abort() {
      await fh.close().catch(() => undefined);
    },
  };
}
