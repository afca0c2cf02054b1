#!/usr/bin/env bash
# Offline typecheck of sst.config.ts (STACK.md recipe): `sst install` generates .sst/platform/config.d.ts with
# the bundled bun (no Pulumi download), then tsc checks sst.config.ts + infra/sst/*.ts; errors inside .sst/ are
# the generated providers' and are ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f .sst/platform/config.d.ts ]; then
  SST_BUN_PATH="$PWD/node_modules/bun/bin/bun.exe" SST_SKIP_DEPENDENCY_CHECK=1 SST_TELEMETRY_DISABLED=1 \
    npx sst install --stage dev >/dev/null
fi
out=$(npx tsc -p infra/tsconfig.sst.json 2>&1 || true)
mine=$(printf '%s\n' "$out" | grep -E '^(sst\.config\.ts|infra/)' || true)
if [ -n "$mine" ]; then printf '%s\n' "$mine"; exit 1; fi
echo "sst.config.ts: typecheck ok ($(printf '%s\n' "$out" | grep -c 'error TS' || true) errors inside generated .sst/ ignored)"
