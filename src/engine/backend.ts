/**
 * Backend selection for tfjs.
 *
 * - 'tensorflow': the native TensorFlow binding, `@tensorflow/tfjs-node-gpu` first, then `@tensorflow/tfjs-node`.
 *   Both are optionalDependencies (their install script downloads libtensorflow, which fails offline), so they
 *   are loaded with a dynamic import and may simply be absent.
 * - 'wasm': `@tensorflow/tfjs-backend-wasm` (XNNPACK, SIMD). Its .wasm binaries are read from node_modules on
 *   disk (never fetched). Manyfold's missing-kernel registrations (see kernels.ts) are installed.
 * - 'webgpu': `@tensorflow/tfjs-backend-webgpu` on Dawn (npm `webgpu`), both optionalDependencies; the adapter
 *   (hardware APIs first, OpenGL compatibility last) and whether it is a software rasteriser are in the reason
 *   (see webgpu.ts). An explicit 'webgpu' accepts a software adapter (llvmpipe: correct, slow).
 * - 'cpu': `@tensorflow/tfjs-backend-cpu`, plain JS; the reference in parity tests, slow.
 * - 'auto': 'tensorflow' when it loads, else 'webgpu' on a hardware adapter (never a software one: wasm is faster
 *   than a CPU rasteriser), else 'wasm' (else 'cpu' if even wasm fails), with the reason recorded. Every command
 *   reads tensors asynchronously (src/engine/read.ts), so all of them run on webgpu, where Dawn has no synchronous
 *   GPU->CPU read.
 *
 * Backends are process-global: initBackend is idempotent. A second call with 'auto' or with the active kind
 * returns the active backend unchanged; a call with a different explicit kind switches to it.
 */
import * as tf from './tf.js';
import '@tensorflow/tfjs-backend-cpu';
import { registerMissingKernels } from './kernels.js';
import { BACKEND_KINDS } from '../config.js';

export type BackendKind = (typeof BACKEND_KINDS)[number];

export interface BackendInfo {
  /** tfjs backend name now active: 'tensorflow' | 'webgpu' | 'wasm' | 'cpu' */
  name: string;
  /** why this backend was chosen (and why others were not) */
  reason: string;
}

export interface InitBackendOptions {
  /**
   * wasm only: directory holding the tfjs-backend-wasm .wasm files (trailing slash optional), or a map from
   * file name to path/URL. Defaults to the installed package's dist/ directory in node_modules.
   */
  wasmPaths?: string | Record<string, string>;
  /**
   * wasm only: number of XNNPACK threads. 1 (default) is the stock single-threaded build. Values > 1 enable the
   * experimental Node multithreading workaround (see wasm-threads.ts); on any failure the backend falls back
   * to one thread and the reason says so.
   */
  threads?: number;
  /** 'tensorflow' only: module specifiers to try, in order (default: tfjs-node-gpu, tfjs-node). */
  tensorflowModules?: string[];
}

const DEFAULT_TF_MODULES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];

let active: (BackendInfo & { kind: Exclude<BackendKind, 'auto'> }) | null = null;
let pending: Promise<BackendInfo> | null = null;
let wasmLoaded = false;

/** The active backend chosen by initBackend, or null if initBackend has not completed. */
export function activeBackend(): BackendInfo | null {
  return active ? { name: active.name, reason: active.reason } : null;
}

/** Select, load and activate a tfjs backend. See the module comment for the semantics of each kind. */
export async function initBackend(kind: BackendKind = 'auto', opts: InitBackendOptions = {}): Promise<BackendInfo> {
  // serialise concurrent calls: backends are process-global
  while (pending) await pending.catch(() => undefined);
  if (active && (kind === 'auto' || kind === active.kind) && tf.getBackend() === active.name) {
    return { name: active.name, reason: active.reason };
  }
  pending = select(kind, opts);
  try {
    return await pending;
  } finally {
    pending = null;
  }
}

async function select(kind: BackendKind, opts: InitBackendOptions): Promise<BackendInfo> {
  switch (kind) {
    case 'tensorflow': {
      const r = await tryTensorflow(opts);
      if (!r.ok) {
        throw new Error(
          `Backend 'tensorflow' is not available: ${r.why}. Install @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node ` +
            `(optionalDependencies; their install script downloads libtensorflow, so they are absent when that ` +
            `download is blocked), or request backend 'auto' (falls back to wasm), 'wasm' or 'cpu'.`,
        );
      }
      return done('tensorflow', r.name, `requested 'tensorflow': loaded ${r.module}`);
    }
    case 'wasm': {
      const why = await activateWasm(opts);
      return done('wasm', 'wasm', `requested 'wasm'${why}`);
    }
    case 'webgpu': {
      const { activateWebgpu, describeAdapter } = await import('./webgpu.js');
      let adapter;
      try {
        adapter = await activateWebgpu();
      } catch (e) {
        throw new Error(
          `Backend 'webgpu' is not available: ${errMsg(e)}. It needs the optionalDependencies 'webgpu' (Dawn) and ` +
            `'@tensorflow/tfjs-backend-webgpu' and a GPU driver (or Mesa's llvmpipe; see docs/gpu.md), or request ` +
            `backend 'auto', 'wasm' or 'cpu'.`,
        );
      }
      return done('webgpu', 'webgpu', `requested 'webgpu': ${describeAdapter(adapter)}`);
    }
    case 'cpu': {
      await activateCpu();
      return done('cpu', 'cpu', "requested 'cpu' (pure JS reference backend; slow)");
    }
    case 'auto': {
      const r = await tryTensorflow(opts);
      if (r.ok) return done('tensorflow', r.name, `auto: loaded native TensorFlow via ${r.module}`);
      const g = await tryHardwareWebgpu();
      if (g.ok) {
        return done('webgpu', 'webgpu', `auto: chose webgpu on a ${g.adapter} because the tensorflow backend is unavailable (${r.why})`);
      }
      try {
        const why = await activateWasm(opts);
        return done('wasm', 'wasm', `auto: chose wasm because the tensorflow backend is unavailable (${r.why}) and webgpu was not chosen (${g.why})${why}`);
      } catch (e) {
        await activateCpu();
        return done(
          'cpu',
          'cpu',
          `auto: chose cpu because tensorflow is unavailable (${r.why}), webgpu was not chosen (${g.why}) and wasm failed (${errMsg(e)})`,
        );
      }
    }
    default:
      throw new Error(`Unknown backend kind '${String(kind)}' (expected one of ${BACKEND_KINDS.join(', ')})`);
  }
}

function done(kind: Exclude<BackendKind, 'auto'>, name: string, reason: string): BackendInfo {
  active = { kind, name, reason };
  return { name, reason };
}

function errMsg(e: unknown): string {
  if (e instanceof Error) return e.message.split('\n')[0];
  if (e && typeof e === 'object' && 'message' in e) return String((e as { message: unknown }).message);
  return String(e);
}

/**
 * 'auto's webgpu step: only a hardware adapter is activated. Probing loads Dawn and asks each of its backends for
 * an adapter (~0.5 s, docs/gpu.md), so on Linux it is skipped when no GPU device node exists (no hardware adapter
 * is possible there); MANYFOLD_DAWN_BACKENDS (an explicit Dawn backend list) always probes.
 */
export async function tryHardwareWebgpu(): Promise<{ ok: true; adapter: string } | { ok: false; why: string }> {
  const { discoverWebgpuAdapter, activateWebgpu, describeAdapter, releaseWebgpu, linuxGpuDeviceNodes } = await import('./webgpu.js');
  const nodes = linuxGpuDeviceNodes();
  if (nodes !== null && nodes.length === 0 && !process.env.MANYFOLD_DAWN_BACKENDS) {
    return { ok: false, why: 'webgpu not probed: no GPU device node (/dev/dri/renderD*, /dev/dri/card*, /dev/nvidia*, /dev/dxg), so no hardware adapter; --backend webgpu uses a software one' };
  }
  const d = await discoverWebgpuAdapter();
  if (!d.ok) return { ok: false, why: `webgpu: ${d.why}` };
  if (d.adapter.software) {
    // drop Dawn's instance: nothing will use it, and a live one keeps Node from exiting
    releaseWebgpu();
    return { ok: false, why: `webgpu found only a ${describeAdapter(d.adapter)}, which auto never picks; use --backend webgpu to force it` };
  }
  try {
    const a = await activateWebgpu();
    return { ok: true, adapter: describeAdapter(a) };
  } catch (e) {
    releaseWebgpu();
    return { ok: false, why: `webgpu: ${errMsg(e)}` };
  }
}

type TfResult = { ok: true; name: string; module: string } | { ok: false; why: string };

async function tryTensorflow(opts: InitBackendOptions): Promise<TfResult> {
  const modules = opts.tensorflowModules ?? DEFAULT_TF_MODULES;
  const failures: string[] = [];
  for (const spec of modules) {
    try {
      // a variable specifier: the packages are optional and have no types here
      await import(/* @vite-ignore */ spec);
    } catch (e) {
      const m = errMsg(e);
      failures.push(`${spec}: ${/Cannot find (package|module)/.test(m) ? 'not installed' : m}`);
      continue;
    }
    try {
      if (tf.findBackendFactory('tensorflow') == null) {
        failures.push(`${spec}: loaded but did not register a 'tensorflow' backend (different tfjs-core instance?)`);
        continue;
      }
      const ok = await tf.setBackend('tensorflow');
      if (!ok) {
        failures.push(`${spec}: tf.setBackend('tensorflow') failed`);
        continue;
      }
      await tf.ready();
      return { ok: true, name: tf.getBackend(), module: spec };
    } catch (e) {
      failures.push(`${spec}: ${errMsg(e)}`);
    }
  }
  return { ok: false, why: failures.join('; ') };
}

/**
 * The cpu backend prints a "install tfjs-node" banner on its first write; Manyfold reports its backend choice
 * (and why tfjs-node is not used) itself, and uses cpu as a reference and kernel bridge, so silence it.
 */
export function silenceCpuBanner(): void {
  const cpu = tf.engine().findBackend('cpu') as unknown as { firstUse?: boolean } | null;
  if (cpu && 'firstUse' in cpu) cpu.firstUse = false;
}

async function activateCpu(): Promise<void> {
  silenceCpuBanner();
  const ok = await tf.setBackend('cpu');
  if (!ok) throw new Error("tf.setBackend('cpu') failed");
  await tf.ready();
}

/** Load and activate wasm; returns a suffix for the reason (threads info). */
async function activateWasm(opts: InitBackendOptions): Promise<string> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  if (!wasmLoaded) {
    const paths = opts.wasmPaths ?? (await defaultWasmDir());
    if (paths != null) {
      if (typeof paths === 'string') wasm.setWasmPaths(paths.endsWith('/') ? paths : `${paths}/`);
      else wasm.setWasmPaths(paths);
    }
    registerMissingKernels();
    silenceCpuBanner();
    wasmLoaded = true;
  }
  const threads = Math.max(1, Math.floor(opts.threads ?? 1));
  if (tf.engine().findBackendFactory('wasm') && wasmInstance()) {
    // already initialised (possibly with threads): just activate it
    await setOrThrow();
    return wasmThreadsNote;
  }
  if (threads > 1) {
    const { prepareWasmThreads } = await import('./wasm-threads.js');
    const prep = await prepareWasmThreads(threads);
    if (prep.ok) {
      wasm.setThreadsCount(threads);
      let ok = false;
      let why = '';
      try {
        ok = await tf.setBackend('wasm');
      } catch (e) {
        why = errMsg(e);
      } finally {
        prep.restore();
      }
      const got = ok ? wasm.getThreadsCount() : 0;
      if (ok && got > 1) {
        await tf.ready();
        wasmThreadsRunning = got;
        wasmThreadsNote = `; ${got} XNNPACK threads (${prep.message})`;
        return wasmThreadsNote;
      }
      if (ok) {
        // the threaded build is up but runs one thread: keep it (it is correct), say so
        await tf.ready();
        wasmThreadsNote = `; ${threads} threads requested but XNNPACK runs ${got}`;
        return wasmThreadsNote;
      }
      // fall back to the stock single-threaded build
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
      wasm.setThreadsCount(1);
      await setOrThrow();
      wasmThreadsNote = `; single-threaded XNNPACK (SIMD): ${threads} threads requested but the workaround failed (${why || 'init failed'})`;
      return wasmThreadsNote;
    }
    await setOrThrow();
    wasmThreadsNote = `; single-threaded XNNPACK (SIMD): ${threads} threads requested but unavailable (${prep.message})`;
    return wasmThreadsNote;
  }
  await setOrThrow();
  wasmThreadsNote = '; single-threaded XNNPACK (SIMD)';
  return wasmThreadsNote;
}

let wasmThreadsNote = '';
let wasmThreadsRunning = 0;

/**
 * XNNPACK worker threads running (0 = the single-threaded build). Their workers keep Node's event loop alive,
 * so a batch command that started them must end with process.exit().
 */
export function wasmWorkerThreads(): number {
  return wasmThreadsRunning;
}

function wasmInstance(): boolean {
  try {
    return (tf.engine().registry as Record<string, unknown>)['wasm'] != null;
  } catch {
    return false;
  }
}

async function setOrThrow(): Promise<void> {
  let ok = false;
  try {
    ok = await tf.setBackend('wasm');
  } catch (e) {
    throw new Error(`wasm backend failed to initialise: ${errMsg(e)}`);
  }
  if (!ok) throw new Error("wasm backend failed to initialise (tf.setBackend('wasm') returned false)");
  await tf.ready();
}

/** dist/ of the installed tfjs-backend-wasm, as a filesystem path; null outside Node. */
async function defaultWasmDir(): Promise<string | null> {
  const isNode = typeof process !== 'undefined' && process.versions != null && process.versions.node != null;
  if (!isNode) return null;
  try {
    const { createRequire } = await import('node:module');
    const path = await import('node:path');
    const require = createRequire(import.meta.url);
    const pkg = require.resolve('@tensorflow/tfjs-backend-wasm/package.json');
    return path.join(path.dirname(pkg), 'dist') + path.sep;
  } catch {
    return null;
  }
}
