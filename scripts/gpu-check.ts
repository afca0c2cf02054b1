/**
 * What a GPU machine runs first (via scripts/gpu-check.sh, from the `npm run gpu-bundle` directory or the repo):
 * which backend 'auto' picks and why, the WebGPU adapter, and the dual encoder's loss/gradient parity on webgpu
 * against the cpu backend. Exit code 1 when webgpu is unavailable or parity fails.
 *
 *   node gpu-check.mjs [--json OUT]          (bundle)      npx tsx scripts/gpu-check.ts [--json OUT]   (repo)
 */
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { initBackend } from '../src/engine/backend.js';
import { compareSteps, dualEncoderStep } from '../training/backend-parity.js';
import { releaseWebgpu, webgpuDeviceErrors } from '../src/engine/webgpu.js';

/** Same bounds as test/engine/webgpu.test.ts (observed on llvmpipe: loss 5e-7, gradients 2e-6). */
const TOLERANCE = 1e-4;

const { values: args } = parseArgs({ options: { json: { type: 'string' } } });

const auto = await initBackend('auto');
console.log(`auto picks: ${auto.name} (${auto.reason})`);
let webgpu;
try {
  webgpu = await initBackend('webgpu');
} catch (e) {
  console.error(`FAIL: ${(e as Error).message}`);
  process.exit(1);
}
console.log(`webgpu: ${webgpu.reason}`);

let t0 = performance.now();
const gpu = await dualEncoderStep();
const gpuMs = performance.now() - t0;
t0 = performance.now();
const gpuAgain = await dualEncoderStep();
const gpuWarmMs = performance.now() - t0;
await initBackend('cpu');
const cpu = await dualEncoderStep();
const parity = compareSteps(gpu, cpu);
const determinism = compareSteps(gpuAgain, gpu);
const deviceErrors = webgpuDeviceErrors();
const ok =
  parity.lossAbsDiff < TOLERANCE &&
  parity.gradMaxRelErr < TOLERANCE &&
  parity.gradMaxAbsDiff < TOLERANCE &&
  gpu.tensorDelta === 0 &&
  deviceErrors.length === 0;
console.log(
  `parity webgpu vs cpu (tiny dual encoder, loss + ${cpu.grads.size} gradients): loss |diff| ${parity.lossAbsDiff.toExponential(2)}, ` +
    `gradient max |diff| ${parity.gradMaxAbsDiff.toExponential(2)}, max rel. L2 error ${parity.gradMaxRelErr.toExponential(2)} ` +
    `(${parity.worstVariable}); tolerance ${TOLERANCE}; tensors leaked ${gpu.tensorDelta}; WebGPU device errors ` +
    `${deviceErrors.length} -> ${ok ? 'OK' : 'FAIL'}`,
);
console.log(
  `same seed twice on webgpu: loss |diff| ${determinism.lossAbsDiff}, gradient max |diff| ${determinism.gradMaxAbsDiff} ` +
    `(${determinism.gradMaxAbsDiff === 0 && determinism.lossAbsDiff === 0 ? 'bit-identical' : 'NOT bit-identical'})`,
);
console.log(`webgpu step: first ${gpuMs.toFixed(0)} ms (includes shader compilation), second ${gpuWarmMs.toFixed(0)} ms`);
if (args.json) {
  const out = { auto, webgpu, tolerance: TOLERANCE, parity, determinism, tensorLeak: gpu.tensorDelta, deviceErrors, firstStepMs: Math.round(gpuMs), secondStepMs: Math.round(gpuWarmMs), ok, node: process.version, date: new Date().toISOString() };
  writeFileSync(args.json, JSON.stringify(out, null, 2) + '\n');
  console.log(`wrote ${args.json}`);
}
releaseWebgpu();
process.exit(ok ? 0 : 1);
