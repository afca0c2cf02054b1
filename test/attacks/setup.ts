import { tf } from '../../src/engine/tf.js';
import '@tensorflow/tfjs-backend-cpu';

/** the cpu backend: exact, and fast enough for the small fake model */
export async function useCpu(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
}
