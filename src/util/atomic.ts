/**
 * Atomic writes: a file or directory is built under a temporary name beside its target (same directory, hence
 * same filesystem, so the final rename is atomic) and renamed into place. A reader sees the old content or the
 * new, never a torn file, and a process killed at any instant leaves at worst a temporary sibling behind.
 *
 * Temporary names start with '.' and end with '.tmp' (`.NAME.tmp-PID-RANDOM.tmp`) so that directory listings
 * which skip hidden or '.tmp' entries (the store, DirBucket) never take one for content.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { lstat, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /**
   * Flush the data to disk before the rename and the directory entry after it (default true), so a power loss
   * cannot leave the new name pointing at unwritten blocks. Turn off only for many regenerable files (cache
   * entries checked when read, generated images a rerun rewrites), where a flush per file costs more than
   * recomputing the rare one a power loss destroys.
   */
  fsync?: boolean;
}

/** A fresh hidden name beside `target`: `.NAME.TAG-PID-RANDOM.tmp`. */
export function tempSibling(target: string, tag: 'tmp' | 'old' = 'tmp'): string {
  return join(dirname(target), `.${basename(target)}.${tag}-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
}

/** fsync a directory so the renames inside it are durable. Best effort: some platforms (Windows) cannot open one. */
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, fsConstants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* best effort */
  }
}

function syncDirSync(dir: string): void {
  try {
    const fd = openSync(dir, fsConstants.O_RDONLY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}

/** Writes `data` to `file` atomically, creating its directory. */
export async function writeFileAtomic(file: string, data: Uint8Array | string, opts: AtomicWriteOptions = {}): Promise<void> {
  const durable = opts.fsync ?? true;
  await mkdir(dirname(file), { recursive: true });
  const tmp = tempSibling(file);
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
  if (durable) await syncDir(dirname(file));
}

/** `value` as JSON (one trailing newline; `indent` spaces per level, default none), written atomically. */
export async function writeJsonAtomic(file: string, value: unknown, opts: AtomicWriteOptions & { indent?: number } = {}): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, opts.indent)}\n`, opts);
}

/** bytes per write system call: a single call cannot take 2 GiB or more, and slices bound nothing else */
const WRITE_SLICE = 64 << 20;

/**
 * Synchronous variant for callers that stream large content (a training checkpoint): `parts` is consumed one
 * part at a time, so a generator can produce each part only when it is written.
 */
export function writeFileAtomicSync(file: string, parts: Iterable<Uint8Array>, opts: AtomicWriteOptions = {}): void {
  const durable = opts.fsync ?? true;
  mkdirSync(dirname(file), { recursive: true });
  const tmp = tempSibling(file);
  try {
    const fd = openSync(tmp, 'w');
    try {
      for (const part of parts) {
        for (let off = 0; off < part.length; ) off += writeSync(fd, part, off, Math.min(WRITE_SLICE, part.length - off));
      }
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      /* the original error matters more */
    }
    throw e;
  }
  if (durable) syncDirSync(dirname(file));
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds a directory atomically: `fill` writes its content into a temporary sibling, which is then flushed and
 * renamed to `target`. With `overwrite`, an existing target is first moved aside and removed only once the new
 * one is in place (put back if that rename fails); without it, the rename fails on a non-empty target.
 * The caller's files should be flushed by the caller when durability matters (the artifact writer does).
 * Returns what `fill` returned.
 */
export async function writeDirAtomic<T>(target: string, fill: (tmpDir: string) => Promise<T>, opts: { overwrite?: boolean } = {}): Promise<T> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempSibling(target);
  await mkdir(tmp);
  try {
    const result = await fill(tmp);
    await syncDir(tmp);
    if (opts.overwrite && (await exists(target))) {
      const old = tempSibling(target, 'old');
      await rename(target, old);
      try {
        await rename(tmp, target);
      } catch (e) {
        await rename(old, target).catch(() => undefined); // put the previous content back
        throw e;
      }
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, target);
    }
    await syncDir(dirname(target));
    return result;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}
