/**
 * A small builder for ONNX graphs: named values, one method per operator the encoders use (opset 17), constants
 * and weights as initialisers. Values are strings (ONNX names); each op returns its output's name.
 */
import { DT_FLOAT, DT_INT64, encodeModel, type AttrValue, type ExternalData, type NodeSpec, type TensorSpec, type ValueSpec } from './proto.js';

const OPSET = 17;

export class GraphBuilder {
  private readonly nodes: NodeSpec[] = [];
  private readonly inits: TensorSpec[] = [];
  private readonly consts = new Map<string, string>();
  private readonly inputs: ValueSpec[] = [];
  private readonly outputs: ValueSpec[] = [];
  private counter = 0;

  constructor(readonly name: string) {}

  input(name: string, dataType: ValueSpec['dataType'], shape: (number | string)[]): string {
    this.inputs.push({ name, dataType, shape });
    return name;
  }

  /** marks `value` as a graph output called `name` */
  output(value: string, name: string, shape: (number | string)[]): void {
    this.op('Identity', [value], {}, name);
    this.outputs.push({ name, dataType: DT_FLOAT, shape });
  }

  /** a float32 initialiser (a weight) */
  weight(name: string, values: Float32Array, dims: readonly number[]): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (values.length !== n) throw new Error(`ONNX weight ${name}: ${values.length} values for shape [${dims.join(', ')}]`);
    this.inits.push({ name, dims, dataType: DT_FLOAT, raw: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) });
    return name;
  }

  /** a float32 initialiser whose bytes stay in a file (see ExternalData) */
  externalWeight(name: string, data: ExternalData, dims: readonly number[]): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n * 4) throw new Error(`ONNX weight ${name}: ${data.length} bytes in ${data.location} for shape [${dims.join(', ')}]`);
    this.inits.push({ name, dims, dataType: DT_FLOAT, raw: data });
    return name;
  }

  /** a float32 constant (deduplicated by value) */
  floats(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `f:${dims.join('x')}:${values.join(',')}`;
    let name = this.consts.get(key);
    if (!name) {
      name = `const_${this.consts.size}`;
      this.consts.set(key, name);
      this.weight(name, Float32Array.from(values), dims);
    }
    return name;
  }
  scalar(v: number): string {
    return this.floats([v], []);
  }

  /** an int64 constant (deduplicated by value) */
  ints(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `i:${dims.join('x')}:${values.join(',')}`;
    let name = this.consts.get(key);
    if (!name) {
      name = `const_${this.consts.size}`;
      this.consts.set(key, name);
      const raw = new BigInt64Array(values.map((v) => BigInt(v)));
      this.inits.push({ name, dims, dataType: DT_INT64, raw: new Uint8Array(raw.buffer) });
    }
    return name;
  }

  op(type: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outName?: string): string {
    const out = outName ?? `${type.toLowerCase()}_${this.counter}`;
    this.nodes.push({ op: type, inputs, outputs: [out], name: `n${this.counter++}_${type}`, attrs });
    return out;
  }

  add(a: string, b: string): string {
    return this.op('Add', [a, b]);
  }
  mul(a: string, b: string): string {
    return this.op('Mul', [a, b]);
  }
  matMul(a: string, b: string): string {
    return this.op('MatMul', [a, b]);
  }
  /** x @ w (+ b) */
  linear(x: string, w: string, b?: string): string {
    const y = this.matMul(x, w);
    return b ? this.add(y, b) : y;
  }
  reshape(x: string, shape: readonly number[]): string {
    return this.op('Reshape', [x, this.ints(shape)]);
  }
  transpose(x: string, perm: readonly number[]): string {
    return this.op('Transpose', [x], { perm: { ints: perm } });
  }
  layerNorm(x: string, g: string, b: string, eps: number): string {
    return this.op('LayerNormalization', [x, g, b], { axis: { i: -1 }, epsilon: { f: eps } });
  }
  softmax(x: string): string {
    return this.op('Softmax', [x], { axis: { i: -1 } });
  }
  sigmoid(x: string): string {
    return this.op('Sigmoid', [x]);
  }
  /** x / sqrt(sum(x^2) + eps) over the last axis (ops.ts l2Normalize) */
  l2Normalize(x: string, eps = 1e-12): string {
    // opset 17: ReduceSumSquare takes its axes as an attribute (ReduceSum as an input)
    const ss = this.op('ReduceSumSquare', [x], { axes: { ints: [-1] }, keepdims: { i: 1 } });
    return this.mul(x, this.op('Reciprocal', [this.op('Sqrt', [this.add(ss, this.scalar(eps))])]));
  }
  /** slice along axes: starts / ends may be names of int64 tensors or numbers */
  slice(x: string, starts: readonly number[] | string, ends: readonly number[] | string, axes: readonly number[]): string {
    const s = typeof starts === 'string' ? starts : this.ints(starts);
    const e = typeof ends === 'string' ? ends : this.ints(ends);
    return this.op('Slice', [x, s, e, this.ints(axes)]);
  }
  /** dimension `axis` of x's shape as an int64 [1] tensor */
  dim(x: string, axis: number): string {
    return this.op('Shape', [x], { start: { i: axis }, end: { i: axis + 1 } });
  }

  encode(metadata?: Record<string, string>): Uint8Array {
    return encodeModel({
      graphName: this.name,
      nodes: this.nodes,
      initializers: this.inits,
      inputs: this.inputs,
      outputs: this.outputs,
      opsetVersion: OPSET,
      producer: 'manyfold',
      metadata,
    });
  }
}
