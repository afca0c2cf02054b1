/**
 * tf.variableGrads / tf.valueAndGrad with a backward pass whose memory shrinks as it goes.
 *
 * Why: tfjs-core's Engine.gradients keeps, until the whole backward pass ends, both every tensor the forward pass
 * saved for its backward and the gradient of every intermediate tensor. Here a tape node's saved tensors and its
 * outputs' gradients are released as soon as the node's backward has run (nothing reads them later: the tape is
 * walked in reverse order and each tensor is produced by exactly one node), so the peak is the forward's saved
 * tensors plus the gradients in flight; the saved tensors of nodes off every path to the differentiated variables
 * (frozen blocks) are released before the backward pass starts. Measured (tf.profile peakBytes, both towers, batch
 * 32, every weight trained): tiny preset 142 -> 67 MiB, small preset 1146 -> 484 MiB, same time per step.
 *
 * The arithmetic is tfjs's own: the same tape, the same gradient functions called in the same order, the same
 * accumulation (add) order, so the gradients are bit-identical to tf.variableGrads (tested). It reads Engine
 * internals of tfjs-core 4.22 (state.activeTape, startTape/endTape, scopedRun, tape node fields), as
 * src/engine/ops.ts customOp does; when they are missing, or inside another gradient computation (higher order),
 * it falls back to tfjs's own functions.
 */
import { tf } from '../src/engine/tf.js';

interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  /** tfjs' tidy: keeps the tensors of the returned container (nulls included, skipped) and disposes the rest */
  tidy<T>(nameOrFn: string | (() => T), fn?: () => T): T;
}

function engineInternals(): EngineInternals | null {
  const e = tf.engine() as unknown as Partial<EngineInternals>;
  const ok =
    typeof e.scopedRun === 'function' &&
    typeof e.startTape === 'function' &&
    typeof e.endTape === 'function' &&
    typeof e.tidy === 'function' &&
    typeof e.state === 'object' &&
    e.state !== null &&
    // activeTape is created by the first startTape(): absent before any gradient was ever computed
    typeof e.state.gradientDepth === 'number';
  return ok ? (e as EngineInternals) : null;
}

/**
 * The tape nodes on a path from one of xs to y, in tape order, each with only the inputs that come from xs (the
 * gradient functions of the other inputs are never called). Same selection as tfjs's tape filter.
 */
function nodesBetween(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set<number>(xs.map((x) => x.id));
  const reachedFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      reachedFromX.add(node.id);
      for (const o of node.outputs) fromX.add(o.id);
    }
  }
  const toY = new Set<number>([y.id]);
  const leadsToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (!node.outputs.some((o) => toY.has(o.id))) continue;
    leadsToY.add(node.id);
    for (const t of Object.values(node.inputs)) toY.add(t.id);
  }
  const out: TapeNode[] = [];
  for (const node of tape) {
    if (!reachedFromX.has(node.id) || !leadsToY.has(node.id)) continue;
    const inputs: Record<string, tf.Tensor> = {};
    for (const [k, t] of Object.entries(node.inputs)) if (fromX.has(t.id)) inputs[k] = t;
    out.push({ ...node, inputs });
  }
  return out;
}

/** gradients of the scalar f() w.r.t. xs (null where no path), and the value; caller owns all returned tensors */
export function leanGradients(f: () => tf.Scalar, xs: tf.Tensor[]): { value: tf.Scalar; grads: (tf.Tensor | null)[] } {
  const engine = engineInternals();
  if (!engine || engine.state.gradientDepth > 0) {
    const { value, grads } = (tf.engine() as unknown as { gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy: null, allowNoGradients: boolean): { value: tf.Tensor; grads: (tf.Tensor | null)[] } }).gradients(f, xs, null, true);
    return { value: value as tf.Scalar, grads };
  }
  const y = engine.scopedRun(
    () => engine.startTape(),
    () => engine.endTape(),
    () => engine.tidy('forward', f),
  );
  if (!(y instanceof tf.Tensor)) throw new Error('leanGradients: f must return a tensor');
  const tape = engine.state.activeTape ?? [];
  try {
    const nodes = nodesBetween(tape, xs, y);
    // nodes off every x -> y path (e.g. frozen blocks) never run their backward: release what they saved now
    const onPath = new Set(nodes.map((n) => n.id));
    for (const node of tape) if (!onPath.has(node.id)) for (const t of node.saved ?? []) t.dispose();
    const grads = engine.tidy('backward', () => {
      const acc = new Map<number, tf.Tensor>([[y.id, tf.onesLike(y)]]);
      // how many acc entries hold a tensor object: a gradient function may hand back its dy itself
      const refs = new Map<tf.Tensor, number>();
      const hold = (t: tf.Tensor) => refs.set(t, (refs.get(t) ?? 0) + 1);
      const release = (t: tf.Tensor) => {
        const n = (refs.get(t) ?? 0) - 1;
        if (n > 0) refs.set(t, n);
        else {
          refs.delete(t);
          t.dispose();
        }
      };
      hold(acc.get(y.id)!);
      const xIds = new Set(xs.map((x) => x.id));
      for (let i = nodes.length - 1; i >= 0; i--) {
        const node = nodes[i];
        if (!node.gradient) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
        const dys = node.outputs.map((o) => acc.get(o.id) ?? null);
        const fns = node.gradient(dys);
        for (const [name, x] of Object.entries(node.inputs)) {
          if (!(name in fns)) throw new Error(`Cannot backprop through input ${name} of ${node.kernelName}`);
          const dx = engine.tidy(() => fns[name]());
          if (dx.dtype !== 'float32') throw new Error(`Error in gradient for op ${node.kernelName}: the gradient of input ${name} must be float32, got ${dx.dtype}`);
          if (dx.shape.join(',') !== x.shape.join(',')) throw new Error(`Error in gradient for op ${node.kernelName}: gradient of input '${name}' has shape [${dx.shape}], input [${x.shape}]`);
          const cur = acc.get(x.id);
          if (cur === undefined) {
            acc.set(x.id, dx);
            hold(dx);
          } else {
            const sum = tf.add(cur, dx);
            acc.set(x.id, sum);
            hold(sum);
            release(cur);
            if (!refs.has(dx)) dx.dispose();
          }
        }
        // this node was the only producer of its outputs: their gradients and its saved tensors are done
        for (const o of node.outputs) {
          const g = acc.get(o.id);
          if (g === undefined || xIds.has(o.id)) continue;
          acc.delete(o.id);
          release(g);
        }
        for (const t of node.saved ?? []) if (!refs.has(t)) t.dispose();
      }
      return xs.map((x) => acc.get(x.id) ?? null);
    });
    return { value: y as tf.Scalar, grads };
  } finally {
    // as Engine.gradients does at depth 0: release what the forward saved (already-disposed tensors are skipped)
    for (const node of tape) for (const t of node.saved ?? []) t.dispose();
    engine.state.activeTape = null;
  }
}

/** tf.variableGrads(f, varList) with the lean backward: gradients by tf variable name (unreached ones left out) */
export function leanVariableGrads(f: () => tf.Scalar, varList: tf.Variable[]): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  const trainable = varList.filter((v) => v.trainable);
  if (trainable.length === 0) throw new Error(`leanVariableGrads: none of the ${varList.length} variables is trainable`);
  const { value, grads } = leanGradients(f, trainable);
  if (value.rank !== 0) {
    value.dispose();
    for (const g of grads) g?.dispose();
    throw new Error(`leanVariableGrads: f must return a scalar, got rank ${value.rank}`);
  }
  const named: tf.NamedTensorMap = {};
  trainable.forEach((v, i) => {
    const g = grads[i];
    if (g) named[v.name] = g;
  });
  if (Object.keys(named).length === 0) {
    value.dispose();
    throw new Error('leanVariableGrads: no variable is connected to the loss');
  }
  return { value, grads: named };
}

/** tf.valueAndGrad(f)(x) with the lean backward */
export function leanValueAndGrad<X extends tf.Tensor>(f: (x: X) => tf.Scalar, x: X): { value: tf.Scalar; grad: X } {
  const { value, grads } = leanGradients(() => f(x), [x]);
  const g = grads[0];
  if (!g) {
    value.dispose();
    throw new Error('leanValueAndGrad: the value does not depend on x');
  }
  return { value, grad: g as X };
}
