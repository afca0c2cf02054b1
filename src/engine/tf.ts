/**
 * The one place Manyfold imports TensorFlow.js from. Everything else does
 * `import * as tf from '../engine/tf.js'`, so that a single tfjs-core instance is shared by every module and by
 * the backends (wasm/cpu/tensorflow register themselves into that instance).
 *
 * tfjs-core's Node bundle does not install the chained tensor methods (x.add(y), x.div(2), ...) that the full
 * @tensorflow/tfjs package adds, although its types declare them. This module installs them (each simply calls
 * the functional op with the tensor as first argument), so chained code type-checks *and* runs.
 * Nor does it register any gradient: vendor/tfjs-gradients.js (generated from tfjs-core's own
 * register_all_gradients by vendor/build-gradients.mjs) does, unless someone registered them already.
 */
import * as tf from '@tensorflow/tfjs-core';
// types only (erased at runtime): the chained-method declarations (x.add(y), ...) installed below
import type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';

// tfjs-core's Node bundle registers no gradients (the full @tensorflow/tfjs does it); register them here.
import './vendor/tfjs-gradients.js';

export * from '@tensorflow/tfjs-core';
export { tf };

/** methods whose functional op has the same name */
const SAME_NAME = [
  'abs', 'acos', 'acosh', 'add', 'all', 'any', 'argMax', 'argMin', 'asin', 'asinh', 'atan', 'atan2', 'atanh',
  'avgPool', 'batchToSpaceND', 'batchNorm', 'broadcastTo', 'cast', 'ceil', 'clipByValue', 'concat', 'conv1d',
  'conv2d', 'conv2dTranspose', 'cos', 'cosh', 'cumprod', 'cumsum', 'depthToSpace', 'depthwiseConv2d',
  'dilation2d', 'div', 'divNoNan', 'dot', 'elu', 'equal', 'erf', 'euclideanNorm', 'exp', 'expandDims', 'expm1',
  'floor', 'floorDiv', 'gather', 'greater', 'greaterEqual', 'isFinite', 'isInf', 'isNaN', 'leakyRelu', 'less',
  'lessEqual', 'localResponseNormalization', 'log', 'log1p', 'logSigmoid', 'logSoftmax', 'logSumExp', 'logicalAnd',
  'logicalNot', 'logicalOr', 'logicalXor', 'matMul', 'max', 'maxPool', 'maximum', 'mean', 'min', 'minimum',
  'mirrorPad', 'mod', 'mul', 'neg', 'norm', 'notEqual', 'oneHot', 'onesLike', 'pad', 'pool', 'pow', 'prelu', 'prod',
  'reciprocal', 'relu', 'relu6', 'reshape', 'reverse', 'round', 'rsqrt', 'selu', 'separableConv2d', 'sigmoid',
  'sign', 'sin', 'sinh', 'slice', 'softmax', 'softplus', 'spaceToBatchND', 'split', 'sqrt', 'square',
  'squaredDifference', 'squeeze', 'stack', 'step', 'stridedSlice', 'sub', 'sum', 'tan', 'tanh', 'tile', 'topk',
  'transpose', 'unique', 'unsortedSegmentSum', 'unstack', 'where', 'zerosLike',
] as const;

function installChainedOps(): void {
  const proto = (tf.Tensor as unknown as { prototype: Record<string, unknown> }).prototype;
  const ops = tf as unknown as Record<string, (...a: unknown[]) => tf.Tensor>;
  const def = (name: string, fn: (this: tf.Tensor, ...a: unknown[]) => tf.Tensor) => {
    if (typeof proto[name] !== 'function') proto[name] = fn;
  };
  for (const name of SAME_NAME) {
    const op = ops[name];
    if (typeof op !== 'function') continue;
    // stack/concat take a list whose first element is this tensor
    if (name === 'stack' || name === 'concat') {
      def(name, function (this: tf.Tensor, x: unknown, axis?: unknown) {
        const rest = Array.isArray(x) ? x : [x];
        return op([this, ...rest], axis);
      });
    } else if (name === 'where') {
      // x.where(condition, other) == tf.where(condition, x, other)
      def(name, function (this: tf.Tensor, cond: unknown, other: unknown) {
        return op(cond, this, other);
      });
    } else {
      def(name, function (this: tf.Tensor, ...a: unknown[]) {
        return op(this, ...a);
      });
    }
  }
  def('as1D', function (this: tf.Tensor) { return tf.reshape(this, [this.size]); });
  def('as2D', function (this: tf.Tensor, r: unknown, c: unknown) { return tf.reshape(this, [r as number, c as number]); });
  def('as3D', function (this: tf.Tensor, ...s: unknown[]) { return tf.reshape(this, s as number[]); });
  def('as4D', function (this: tf.Tensor, ...s: unknown[]) { return tf.reshape(this, s as number[]); });
  def('as5D', function (this: tf.Tensor, ...s: unknown[]) { return tf.reshape(this, s as number[]); });
  def('asScalar', function (this: tf.Tensor) { return tf.reshape(this, []); });
  def('asType', function (this: tf.Tensor, d: unknown) { return tf.cast(this, d as tf.DataType); });
  def('toFloat', function (this: tf.Tensor) { return tf.cast(this, 'float32'); });
  def('toInt', function (this: tf.Tensor) { return tf.cast(this, 'int32'); });
  def('toBool', function (this: tf.Tensor) { return tf.cast(this, 'bool'); });
  def('flatten', function (this: tf.Tensor) { return tf.reshape(this, [this.size]); });
  def('reshapeAs', function (this: tf.Tensor, x: unknown) { return tf.reshape(this, (x as tf.Tensor).shape); });
}

installChainedOps();
