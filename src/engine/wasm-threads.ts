/**
 * Experimental: multithreaded XNNPACK for the tfjs wasm backend under Node (see STACK.md "Threads").
 *
 * tfjs-backend-wasm 4.22 hard-codes multithreading off under Node (WASM_HAS_MULTITHREAD_SUPPORT is false when
 * IS_NODE) because its Emscripten pthread workers are started from Blob URLs, which Node's worker_threads cannot
 * load; and its C++ caps the thread count at half the logical cores. This module works around both, only while
 * the backend initialises:
 * - the flag is forced on;
 * - `Blob` is replaced by a capturing stand-in whose text is written to a temp file, and `URL.createObjectURL`
 *   returns that file's path, so the worker script and the main script the workers import are real files;
 *   the worker script gets a prologue that (a) defines the module-scope `require$$N` aliases of the tfjs
 *   bundle the factory source refers to and (b) hands the main-script path to Emscripten's 'load' message;
 * - `os.cpus()` reports twice the requested thread count, so the C++ cap allows the requested threads.
 * Everything is restored right after initialisation. On any failure the caller falls back to one thread.
 *
 * Single-threaded use never touches this module.
 *
 * Measured (tiny preset, 2-core machine shared with other jobs, load average 7-9): 2 threads gave about the same
 * wall time as 1 for the training step but ~1.6x the CPU time (400 vs 248 ms per step). XNNPACK parallelises
 * each op separately and its pthreadpool workers spin before they sleep (the extra CPU time); a step is ~1000
 * small ops, so whenever the second core is busy with another process, ops wait for a descheduled worker. The
 * likely reason threads lose on a loaded machine; and it cannot be fixed from here (the pool is global to the wasm module; tfjs gives no
 * per-op control). Keep it opt-in; it can only pay off on otherwise idle cores. Note that the pthread workers
 * keep Node's event loop alive: a script that used threads must end with process.exit().
 */
import * as tf from './tf.js';

export interface ThreadPatch {
  ok: boolean;
  message: string;
  /** undo the global patches (idempotent) */
  restore: () => void;
}

/** Patch the globals the threaded wasm init needs. Call restore() after tf.setBackend('wasm') settles. */
export async function prepareWasmThreads(threads: number): Promise<ThreadPatch> {
  const noop = () => undefined;
  const isNode = typeof process !== 'undefined' && process.versions?.node != null;
  if (!isNode) return { ok: false, message: 'thread workaround is Node-only', restore: noop };
  if (typeof SharedArrayBuffer === 'undefined') return { ok: false, message: 'no SharedArrayBuffer', restore: noop };
  let fs: typeof import('node:fs');
  let os: typeof import('node:os');
  let path: typeof import('node:path');
  try {
    fs = await import('node:fs');
    const osMod = await import('node:os');
    os = (osMod as unknown as { default?: typeof import('node:os') }).default ?? osMod;
    path = await import('node:path');
  } catch (e) {
    return { ok: false, message: `node modules unavailable (${String(e)})`, restore: noop };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'manyfold-wasm-'));
  let counter = 0;
  let mainScriptPath: string | null = null;

  const OrigBlob = globalThis.Blob;
  const origCreate = URL.createObjectURL;
  const origCpus = os.cpus;

  class CapturingBlob {
    readonly text: string;
    readonly filePath: string;
    constructor(parts: unknown[], _opts?: unknown) {
      this.text = parts.map((p) => String(p)).join('');
      const isWorker = this.text.includes('parentPort.on("message"') || this.text.includes("parentPort.on('message'");
      this.filePath = path.join(dir, `${isWorker ? 'worker' : 'main'}-${counter++}.cjs`);
      let body = this.text;
      if (isWorker) {
        // prologue: the bundle's hoisted require aliases, and the main-script path for the 'load' message
        const prologue =
          `var require$$0=require('fs'),require$$1=require('path'),require$$2=require('worker_threads'),` +
          `require$$3=require('perf_hooks'),require$$4=require('os');` +
          `(function(){var wt=require('worker_threads');var pp=wt.parentPort;var on=pp.on.bind(pp);` +
          `pp.on=function(ev,h){if(ev!=='message')return on(ev,h);return on(ev,function(d){` +
          `if(d&&d.cmd==='load'&&typeof d.urlOrBlob!=='string')d.urlOrBlob=${JSON.stringify(mainScriptPath)};h(d);});};})();\n`;
        // the original starts with "use strict"; keep the prologue outside strict mode issues by prepending
        body = prologue + body.replace(/^"use strict";/, '');
      } else {
        mainScriptPath = this.filePath;
        body =
          `var require$$0=require('fs'),require$$1=require('path'),require$$2=require('worker_threads'),` +
          `require$$3=require('perf_hooks'),require$$4=require('os'),commonjsGlobal=globalThis;if(typeof __dirname==='undefined')globalThis.__dirname=${JSON.stringify(dir)};\n` +
          body;
      }
      fs.writeFileSync(this.filePath, body);
    }
  }

  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    globalThis.Blob = OrigBlob;
    URL.createObjectURL = origCreate;
    os.cpus = origCpus;
    // the workers read the files asynchronously: remove them at exit, not now
    process.once('exit', () => {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // ignore
      }
    });
  };

  try {
    (globalThis as { Blob: unknown }).Blob = CapturingBlob;
    URL.createObjectURL = ((obj: unknown) =>
      obj instanceof CapturingBlob ? obj.filePath : origCreate.call(URL, obj as Blob)) as typeof URL.createObjectURL;
    const cpus = origCpus.call(os);
    const want = Math.max(2 * threads, cpus.length);
    os.cpus = () => {
      const c = origCpus.call(os);
      const out = [...c];
      while (out.length < want) out.push(c[0]);
      return out;
    };
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  } catch (e) {
    restore();
    return { ok: false, message: `could not patch globals (${String(e)})`, restore: noop };
  }
  return { ok: true, message: `experimental Node worker workaround, ${threads} requested`, restore };
}
