/**
 * The part of ONNX's protobuf schema (onnx/onnx.proto, IR version 8) that Manyfold writes: a ModelProto with one
 * graph of nodes, float32 / int64 initialisers as raw little-endian bytes, and typed inputs and outputs with
 * symbolic dimensions. Field numbers are the schema's.
 *
 * Why a writer of its own rather than protobufjs + the generated onnx bindings: the writer never parses, needs
 * five message types, and must not copy the weights more than once (a ViT-B/32 tower is 350 MB of initialisers;
 * every message is encoded as a list of parts and concatenated into one buffer at the end, so each weight's bytes
 * are copied exactly once).
 */

/** ONNX TensorProto.DataType values used here */
export const DT_FLOAT = 1;
export const DT_INT64 = 7;

const DATA_LOCATION_EXTERNAL = 1;
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

/** An encoded message: its parts in order and their total length (nothing concatenated until `finish`). */
class Parts {
  readonly parts: Uint8Array[] = [];
  length = 0;
  private scratch: number[] = [];

  private flushScratch(): void {
    if (this.scratch.length) {
      const b = Uint8Array.from(this.scratch);
      this.parts.push(b);
      this.length += b.length;
      this.scratch = [];
    }
  }
  private varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.scratch.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.scratch.push(Number(x));
  }
  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }
  int(field: number, v: number | bigint): this {
    this.tag(field, 0);
    this.varint(v);
    return this;
  }
  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    for (const x of b) this.scratch.push(x);
    return this;
  }
  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.varint(data.length);
    if (data.length < 256) {
      for (const x of data) this.scratch.push(x);
    } else {
      this.flushScratch();
      this.parts.push(data);
      this.length += data.length;
    }
    return this;
  }
  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  message(field: number, m: Parts): this {
    m.flushScratch();
    this.tag(field, 2);
    this.varint(m.length);
    this.flushScratch();
    for (const p of m.parts) this.parts.push(p);
    this.length += m.length;
    return this;
  }
  packedInts(field: number, vs: readonly (number | bigint)[]): this {
    const inner = new Parts();
    for (const v of vs) inner.varint(v);
    return this.message(field, inner);
  }
  finish(): Uint8Array {
    this.flushScratch();
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

export type AttrValue = { f: number } | { i: number } | { ints: readonly number[] };

export interface NodeSpec {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name: string;
  attrs?: Record<string, AttrValue>;
}

export interface TensorSpec {
  name: string;
  dims: readonly number[];
  dataType: typeof DT_FLOAT | typeof DT_INT64;
  /** little-endian bytes of the values (float32 or int64), or where they are in a file beside the model */
  raw: Uint8Array | ExternalData;
}

/**
 * ONNX external data: the tensor's bytes are `length` bytes at `offset` in `location`, a file resolved against the
 * folder the runtime is told (Manyfold points it at the artifact directory, so a served model's weights are read
 * from the verified artifact shards and never copied through the protobuf)
 */
export interface ExternalData {
  location: string;
  offset: number;
  length: number;
}

/** a graph input or output: element type and shape, where a string is a symbolic dimension ('batch') */
export interface ValueSpec {
  name: string;
  dataType: typeof DT_FLOAT | typeof DT_INT64;
  shape: readonly (number | string)[];
}

export interface ModelSpec {
  graphName: string;
  nodes: readonly NodeSpec[];
  initializers: readonly TensorSpec[];
  inputs: readonly ValueSpec[];
  outputs: readonly ValueSpec[];
  opsetVersion: number;
  producer: string;
  /** ModelProto.metadata_props (shown by ONNX tools) */
  metadata?: Record<string, string>;
}

function encodeNode(n: NodeSpec): Parts {
  const m = new Parts();
  for (const i of n.inputs) m.string(1, i);
  for (const o of n.outputs) m.string(2, o);
  m.string(3, n.name).string(4, n.op);
  for (const [name, v] of Object.entries(n.attrs ?? {})) {
    const a = new Parts().string(1, name);
    if ('f' in v) a.float(2, v.f).int(20, ATTR_FLOAT);
    else if ('i' in v) a.int(3, v.i).int(20, ATTR_INT);
    else a.packedInts(8, v.ints).int(20, ATTR_INTS);
    m.message(5, a);
  }
  return m;
}

function encodeTensor(t: TensorSpec): Parts {
  const m = new Parts();
  if (t.dims.length) m.packedInts(1, t.dims);
  m.int(2, t.dataType).string(8, t.name);
  if (t.raw instanceof Uint8Array) return m.bytes(9, t.raw);
  const entry = (k: string, v: string) => new Parts().string(1, k).string(2, v);
  m.message(13, entry('location', t.raw.location)).message(13, entry('offset', String(t.raw.offset))).message(13, entry('length', String(t.raw.length)));
  return m.int(14, DATA_LOCATION_EXTERNAL);
}

function encodeValue(v: ValueSpec): Parts {
  const shape = new Parts();
  for (const d of v.shape) shape.message(1, typeof d === 'number' ? new Parts().int(1, d) : new Parts().string(2, d));
  const tensorType = new Parts().int(1, v.dataType).message(2, shape);
  return new Parts().string(1, v.name).message(2, new Parts().message(1, tensorType));
}

/** Serialise a model to ONNX protobuf bytes (refuses > 2 GiB, protobuf's message limit). */
export function encodeModel(spec: ModelSpec): Uint8Array {
  const g = new Parts();
  for (const n of spec.nodes) g.message(1, encodeNode(n));
  g.string(2, spec.graphName);
  for (const t of spec.initializers) g.message(5, encodeTensor(t));
  for (const i of spec.inputs) g.message(11, encodeValue(i));
  for (const o of spec.outputs) g.message(12, encodeValue(o));
  const model = new Parts().int(1, 8).string(2, spec.producer);
  model.message(7, g);
  model.message(8, new Parts().string(1, '').int(2, spec.opsetVersion));
  for (const [k, v] of Object.entries(spec.metadata ?? {})) model.message(14, new Parts().string(1, k).string(2, v));
  if (model.length >= 2 ** 31) {
    throw new Error(`ONNX graph '${spec.graphName}' would be ${(model.length / 2 ** 30).toFixed(2)} GiB; protobuf caps a model at 2 GiB`);
  }
  return model.finish();
}
