/**
 * The tfjs WebGPU backend in Node: `@tensorflow/tfjs-backend-webgpu` on Google's Dawn (npm `webgpu`, which ships
 * a prebuilt `dawn.node`). Both are optionalDependencies, loaded by dynamic import.
 *
 * Adapter discovery tries Dawn's native backends in order, hardware APIs first: Vulkan / Metal / D3D12 (core
 * WebGPU), then D3D11 / OpenGL / OpenGL ES in compatibility mode (`featureLevel: 'compatibility'`), which is how
 * a machine without a Vulkan driver (here: Mesa's llvmpipe, whose Vulkan sibling lavapipe Dawn rejects) still
 * gets an adapter. The first adapter found wins; whether it is a software rasteriser is decided from its name
 * (Dawn reports `isFallbackAdapter: false` for llvmpipe, so the flag alone is not enough).
 *
 * Dawn's GL path on a headless Linux box needs `EGL_PLATFORM=surfaceless` and a writable `XDG_RUNTIME_DIR`
 * (Mesa opens its shader cache there): both are set here when absent, before Dawn loads EGL.
 */
import { mkdirSync, accessSync, readdirSync, constants as fsConstants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from './tf.js';

/** One Dawn backend to try, with the WebGPU feature level it needs. */
export interface DawnCandidate {
  backend: string;
  featureLevel: 'core' | 'compatibility';
}

export interface WebgpuAdapterInfo {
  /** Dawn backend that produced the adapter ('vulkan', 'metal', 'd3d12', 'opengl', ...) */
  dawnBackend: string;
  featureLevel: 'core' | 'compatibility';
  /** device name as the driver reports it, e.g. 'llvmpipe-llvm-15-0-6-256-bits-' or 'NVIDIA GeForce RTX 4090' */
  name: string;
  /** driver description, e.g. 'OpenGL version 4.5 (Core Profile) Mesa 22.3.6' */
  description: string;
  vendor: string;
  /** a CPU rasteriser (llvmpipe, lavapipe, SwiftShader, WARP, ...): correct, but slower than wasm */
  software: boolean;
}

export type WebgpuDiscovery =
  | { ok: true; adapter: WebgpuAdapterInfo; tried: string[] }
  | { ok: false; why: string; tried: string[] };

/** Dawn backends in the order they are tried on each platform: hardware APIs first, GL compatibility last. */
export function dawnCandidates(platform: NodeJS.Platform = process.platform): DawnCandidate[] {
  const core = (backend: string): DawnCandidate => ({ backend, featureLevel: 'core' });
  const compat = (backend: string): DawnCandidate => ({ backend, featureLevel: 'compatibility' });
  if (platform === 'darwin') return [core('metal')];
  if (platform === 'win32') return [core('d3d12'), core('vulkan'), compat('d3d11'), compat('opengl')];
  return [core('vulkan'), compat('opengl'), compat('opengles')];
}

/**
 * Linux: the device nodes through which a hardware GPU driver is reached (DRM render / card nodes, NVIDIA's
 * proprietary nodes, WSL's /dev/dxg). None means no hardware adapter can exist, so 'auto' need not load Dawn,
 * which costs ~0.5 s per command start and prints warnings about a missing Vulkan loader. null on other platforms
 * (not checked: Metal / D3D12 are always there to ask).
 */
export function linuxGpuDeviceNodes(platform: NodeJS.Platform = process.platform, devDir = '/dev'): string[] | null {
  if (platform !== 'linux') return null;
  const list = (dir: string, pattern: RegExp): string[] => {
    try {
      return readdirSync(dir)
        .filter((n) => pattern.test(n))
        .map((n) => join(dir, n));
    } catch {
      return [];
    }
  };
  return [...list(join(devDir, 'dri'), /^(renderD|card)\d+$/), ...list(devDir, /^(nvidia\d+|dxg)$/)];
}

const SOFTWARE_NAMES = /llvmpipe|lavapipe|softpipe|swiftshader|swrast|microsoft basic render|\bwarp\b|software/i;

/** Whether an adapter is a CPU rasteriser, from Dawn's fallback flag and the driver's names. */
export function isSoftwareAdapter(info: { isFallbackAdapter?: boolean; device?: string; description?: string; vendor?: string; architecture?: string }): boolean {
  if (info.isFallbackAdapter) return true;
  return [info.device, info.description, info.vendor, info.architecture].some((s) => s != null && SOFTWARE_NAMES.test(s));
}

/** One-line description of an adapter for BackendInfo.reason and logs. */
export function describeAdapter(a: WebgpuAdapterInfo): string {
  const name = a.name || a.description || 'unnamed adapter';
  const kind = a.software ? 'software adapter' : 'hardware adapter';
  const detail = a.description && a.description !== name ? `, ${a.description}` : '';
  return `${kind} '${name}' via Dawn ${a.dawnBackend} (${a.featureLevel}${detail})`;
}

// The minimal WebGPU surface used here (the DOM's GPU types are not in this project's lib).
interface GpuAdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
  features: { has(name: string): boolean };
  limits: Record<string, number>;
  requestDevice(desc?: unknown): Promise<GpuDeviceLike>;
}
interface GpuDeviceLike {
  destroy(): void;
  addEventListener?(type: 'uncapturederror', listener: (ev: unknown) => void): void;
  lost?: Promise<unknown>;
}
interface GpuLike {
  requestAdapter(opts?: Record<string, unknown>): Promise<GpuAdapterLike | null>;
}
interface DawnModule {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
}

interface Found {
  gpu: GpuLike;
  adapter: GpuAdapterLike;
  info: WebgpuAdapterInfo;
}

let dawn: DawnModule | null = null;
let found: Found | null = null;
let registered = false;
let device: GpuDeviceLike | null = null;
let factoryError = '';
const uncapturedErrors: string[] = [];

/** Validation / out-of-memory errors the WebGPU device reported since the process started (tests assert none). */
export function webgpuDeviceErrors(): string[] {
  return [...uncapturedErrors];
}

function errMsg(e: unknown): string {
  if (e instanceof Error) return e.message.split('\n')[0];
  return String(e);
}

/** EGL_PLATFORM and XDG_RUNTIME_DIR for Dawn's GL backends on a headless Linux machine; a no-op elsewhere. */
export function prepareHeadlessGl(env: NodeJS.ProcessEnv = process.env): void {
  if (process.platform !== 'linux') return;
  env.EGL_PLATFORM ??= 'surfaceless';
  const dir = env.XDG_RUNTIME_DIR;
  let writable = false;
  if (dir) {
    try {
      accessSync(dir, fsConstants.W_OK);
      writable = true;
    } catch {
      writable = false;
    }
  }
  if (!writable) {
    // one private directory per user, reused by every process (a fresh one per run would pile up in /tmp)
    const own = join(tmpdir(), `manyfold-xdg-${process.getuid?.() ?? 'user'}`);
    mkdirSync(own, { recursive: true, mode: 0o700 });
    env.XDG_RUNTIME_DIR = own;
  }
}

async function loadDawn(): Promise<DawnModule> {
  if (dawn) return dawn;
  prepareHeadlessGl();
  let mod: DawnModule;
  try {
    // a literal specifier, so that scripts/gpu-bundle.ts can bundle it (dawn.node is loaded beside the bundle)
    mod = (await import('webgpu')) as unknown as DawnModule;
  } catch (e) {
    const m = errMsg(e);
    throw new Error(/Cannot find (package|module) 'webgpu'/.test(m) ? "npm package 'webgpu' (Dawn) is not installed" : `loading Dawn (npm 'webgpu') failed: ${m}`);
  }
  // GPUBufferUsage, GPUMapMode, ...: the tfjs backend reads these as globals, as in a browser
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  dawn = mod;
  return mod;
}

/**
 * Find a WebGPU adapter (cached: the first success is kept for the process). `candidates` overrides the
 * platform's order (tests, or MANYFOLD_DAWN_BACKENDS=opengl,vulkan).
 */
export async function discoverWebgpuAdapter(candidates: DawnCandidate[] = candidatesFromEnv()): Promise<WebgpuDiscovery> {
  if (found) return { ok: true, adapter: found.info, tried: [] };
  const tried: string[] = [];
  let mod: DawnModule;
  try {
    mod = await loadDawn();
  } catch (e) {
    return { ok: false, why: errMsg(e), tried };
  }
  for (const c of candidates) {
    const label = `${c.backend}${c.featureLevel === 'compatibility' ? ' (compatibility)' : ''}`;
    try {
      const gpu = mod.create([`backend=${c.backend}`]);
      const opts: Record<string, unknown> = { powerPreference: 'high-performance' };
      if (c.featureLevel === 'compatibility') opts.featureLevel = 'compatibility';
      const adapter = await gpu.requestAdapter(opts);
      if (!adapter) {
        tried.push(`${label}: no adapter`);
        continue;
      }
      // Dawn's info fields are prototype getters: read them one by one (a spread copies nothing)
      const i = adapter.info ?? {};
      const info: WebgpuAdapterInfo = {
        dawnBackend: c.backend,
        featureLevel: c.featureLevel,
        name: (i.device ?? '').replace(/-+$/, ''),
        description: i.description ?? '',
        vendor: i.vendor ?? '',
        software: isSoftwareAdapter({
          device: i.device,
          description: i.description,
          vendor: i.vendor,
          architecture: i.architecture,
          isFallbackAdapter: i.isFallbackAdapter ?? adapter.isFallbackAdapter,
        }),
      };
      found = { gpu, adapter, info };
      tried.push(`${label}: ${info.name || 'adapter'}`);
      return { ok: true, adapter: info, tried };
    } catch (e) {
      tried.push(`${label}: ${errMsg(e)}`);
    }
  }
  return {
    ok: false,
    why: `no WebGPU adapter from Dawn (tried ${tried.join('; ') || 'nothing'}); on Linux without a GPU driver install Mesa (libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri)`,
    tried,
  };
}

function candidatesFromEnv(): DawnCandidate[] {
  const raw = process.env.MANYFOLD_DAWN_BACKENDS;
  if (!raw) return dawnCandidates();
  const platformOrder = dawnCandidates();
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((b) => platformOrder.find((c) => c.backend === b) ?? { backend: b, featureLevel: /^(opengl|opengles|d3d11)$/.test(b) ? 'compatibility' : 'core' });
}

/**
 * Register tfjs's 'webgpu' backend on the discovered adapter and activate it. The stock package registers its
 * backend only when `navigator.gpu` exists at import time and asks for the default adapter; Manyfold registers
 * its own factory with the adapter found above, and exposes `navigator.gpu` because WebGPUBackend checks it.
 */
export async function activateWebgpu(): Promise<WebgpuAdapterInfo> {
  const d = await discoverWebgpuAdapter();
  if (!d.ok) throw new Error(d.why);
  const f = found!;
  type BackendCtor = new (device: unknown, adapterInfo?: unknown) => tf.KernelBackend;
  let WebGPUBackend: BackendCtor;
  try {
    // literal, so that the bundle carries it: it must share the bundle's single tfjs-core instance
    const m = (await import('@tensorflow/tfjs-backend-webgpu')) as unknown as { WebGPUBackend?: BackendCtor; default?: { WebGPUBackend?: BackendCtor } };
    // a CommonJS build imported from ESM (as in the esbuild bundle) exposes its exports under `default`
    const ctor = m.WebGPUBackend ?? m.default?.WebGPUBackend;
    if (!ctor) throw new Error('@tensorflow/tfjs-backend-webgpu exports no WebGPUBackend');
    WebGPUBackend = ctor;
  } catch (e) {
    const m = errMsg(e);
    throw new Error(/Cannot find (package|module)/.test(m) ? "npm package '@tensorflow/tfjs-backend-webgpu' is not installed" : `loading @tensorflow/tfjs-backend-webgpu failed: ${m}`);
  }
  exposeNavigatorGpu(f.gpu);
  if (!registered) {
    if (tf.findBackendFactory('webgpu') != null) tf.removeBackend('webgpu');
    tf.registerBackend('webgpu', async () => {
      const a = f.adapter;
      const requiredFeatures = ['timestamp-query'].filter((n) => a.features.has(n));
      const limitNames = [
        'maxComputeWorkgroupStorageSize',
        'maxComputeWorkgroupsPerDimension',
        'maxStorageBufferBindingSize',
        'maxBufferSize',
        'maxComputeWorkgroupSizeX',
        'maxComputeInvocationsPerWorkgroup',
        // the adapter's maximum, not WebGPU's default of 8: fewer chunks in AddN-like kernels (kernels.ts)
        'maxStorageBuffersPerShaderStage',
      ];
      const requiredLimits = Object.fromEntries(limitNames.map((n) => [n, a.limits[n]]));
      try {
        device = await a.requestDevice({ requiredFeatures, requiredLimits });
        // a failed pipeline or dispatch is reported only here (the kernel's output is then garbage): never silent
        device.addEventListener?.('uncapturederror', (ev: unknown) => {
          const msg = String((ev as { error?: { message?: string } }).error?.message ?? ev).split('\n')[0];
          uncapturedErrors.push(msg);
          console.error(`webgpu device error (results of the failing kernel are invalid): ${msg}`);
        });
        const backend = new WebGPUBackend(device, a.info);
        guardReadSync(backend);
        return backend;
      } catch (e) {
        // tf.setBackend only returns false: keep the cause for the error below
        factoryError = errMsg(e);
        throw e;
      }
    }, 1);
    const { registerWebgpuKernels } = await import('./kernels.js');
    registerWebgpuKernels();
    registered = true;
  }
  let ok = false;
  factoryError = '';
  try {
    ok = await tf.setBackend('webgpu');
  } catch (e) {
    throw new Error(`tfjs webgpu backend failed to initialise on ${describeAdapter(f.info)}: ${errMsg(e)}`);
  }
  if (!ok) throw new Error(`tfjs webgpu backend failed to initialise on ${describeAdapter(f.info)} (${factoryError || 'tf.setBackend returned false'})`);
  await tf.ready();
  return f.info;
}

/**
 * tfjs-backend-webgpu's readSync copies through an OffscreenCanvas, which Node lacks, and Dawn for Node has no
 * synchronous buffer map (mapAsync completes only when Node's event loop turns). So on webgpu a synchronous read
 * (dataSync, arraySync, bufferSync) of data that lives on the GPU cannot work: fail with an error that says so
 * and what to call instead, rather than "OffscreenCanvas is not defined". Data still on the CPU (just uploaded,
 * or already downloaded by an async read) reads as before.
 */
function guardReadSync(backend: tf.KernelBackend): void {
  const b = backend as unknown as {
    readSync(dataId: object): unknown;
    tensorMap: { get(dataId: object): { values?: unknown; dtype: string } | undefined };
  };
  const stock = b.readSync.bind(b);
  b.readSync = (dataId: object) => {
    const d = b.tensorMap.get(dataId);
    if (d && d.values == null && d.dtype !== 'string' && d.dtype !== 'complex64') {
      throw new Error(
        'webgpu backend: synchronous read (dataSync/arraySync/bufferSync) of GPU data is not possible in Node ' +
          '(Dawn maps buffers asynchronously only); use `await tensor.data()` (or tf.data on many tensors at once)',
      );
    }
    return stock(dataId);
  };
}

function exposeNavigatorGpu(gpu: GpuLike): void {
  const g = globalThis as unknown as { navigator?: Record<string, unknown> };
  if (g.navigator == null) {
    Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  }
  if (g.navigator!.gpu !== gpu) {
    Object.defineProperty(g.navigator!, 'gpu', { value: gpu, configurable: true, writable: true });
  }
}

/**
 * Drop every reference to Dawn so Node can exit (a live `navigator.gpu` keeps the process running). Disposes
 * the tfjs 'webgpu' backend if it was created; call it at the end of a command that used webgpu.
 */
export function releaseWebgpu(): void {
  if (tf.engine().registry['webgpu'] != null) tf.removeBackend('webgpu');
  registered = false;
  device?.destroy();
  device = null;
  found = null;
  const nav = (globalThis as unknown as { navigator?: Record<string, unknown> }).navigator;
  if (nav && 'gpu' in nav) delete nav.gpu;
}
