#!/usr/bin/env bash
# GPU check: the backend auto picks, the WebGPU adapter, dual-encoder parity webgpu vs cpu, and bench:engine on
# webgpu (all cases) and cpu (the image-tower cases only: the full steps take minutes on cpu); same JSON as
# `npm run bench:engine`. Runs from the `npm run gpu-bundle` directory (copied
# anywhere; needs only node >= 20) or from the repository (needs `npm ci`). JSON results go to ./gpu-check-out/
# (from the repository: dist/gpu-check-out/, which git ignores).
#   ./gpu-check.sh [bench flags, e.g. --batch 64 --repeats 10]   (defaults: --batch 16 --repeats 3 --warmup 1)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bench_args=("$@")
if [ ${#bench_args[@]} -eq 0 ]; then bench_args=(--batch 16 --repeats 3 --warmup 1); fi

if [ -f "$here/gpu-check.mjs" ]; then
  outdir="$PWD/gpu-check-out"
  run_check() { node "$here/gpu-check.mjs" "$@"; }
  run_bench() { node "$here/bench-engine.mjs" "$@"; }
else
  repo="$(cd "$here/.." && pwd)"
  outdir="$repo/dist/gpu-check-out"
  run_check() { (cd "$repo" && node --import tsx scripts/gpu-check.ts "$@"); }
  run_bench() { (cd "$repo" && node --import tsx scripts/bench-engine.ts "$@"); }
fi

mkdir -p "$outdir"
start=$(date +%s)
echo "== node $(node --version), $(uname -sm)"
echo "== backend, adapter, parity"
run_check --json "$outdir/check.json"
echo "== bench:engine --backend webgpu ${bench_args[*]}"
run_bench --backend webgpu "${bench_args[@]}" --json "$outdir/bench-webgpu.json"
echo "== bench:engine --backend cpu ${bench_args[*]} --skip-full"
run_bench --backend cpu "${bench_args[@]}" --skip-full --json "$outdir/bench-cpu.json"

echo "== gpu-check done in $(( $(date +%s) - start )) s; JSON in $outdir"
