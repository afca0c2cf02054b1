/**
 * Reading tensors back to the host. Dawn (the webgpu backend in Node) maps GPU buffers asynchronously only, so
 * `dataSync()` of GPU data cannot work there (webgpu.ts turns it into a clear error): code that must run on every
 * backend reads with this. On cpu / wasm the values are the same bytes dataSync returns.
 */
import { tf } from './tf.js';

/** the tensor's values, then the tensor disposed (also when the read fails) */
export async function takeData<T extends tf.DataType = 'float32'>(t: tf.Tensor): Promise<tf.DataTypeMap[T]> {
  try {
    return (await t.data()) as tf.DataTypeMap[T];
  } finally {
    t.dispose();
  }
}
