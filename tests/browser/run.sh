#!/usr/bin/env bash
# End-to-end browser test: starts the stack with its HTTP gateway serving web/, pushes a
# synthetic scan, and runs viewer_test.mjs against the slide in Debian's chromium.
#
#   tests/browser/run.sh build/cli/tessera
#
# Environment: TESSERA_ARTIFACTS (where the screenshots go; default: the current folder),
# CHROMIUM (default /usr/bin/chromium), TESSERA_TIMEOUT_MS (per step of the browser test).
# Needs what scripts/install-deps sets up: node, chromium, tests/browser/node_modules and
# web/vendor (npm ci + npm run build). The stack is stopped on exit, whatever happens.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 path/to/tessera   (the tessera binary, e.g. build/cli/tessera)" >&2
  exit 2
fi
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export TESSERA_ARTIFACTS="${TESSERA_ARTIFACTS:-$PWD}"

fail() { echo "run.sh: FAIL: $*" >&2; exit 1; }

# What the test needs, with what to do when it is missing.
command -v node >/dev/null || fail "node is not installed: run scripts/install-deps"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || fail "no chromium at ${CHROMIUM:-/usr/bin/chromium}: run scripts/install-deps"
[ -f "$here/node_modules/playwright-core/package.json" ] ||
  fail "$here/node_modules is missing: run scripts/install-deps (npm ci in tests/browser)"
[ -f "$repo/web/vendor/openseadragon/openseadragon.min.js" ] ||
  fail "$repo/web/vendor is missing: run scripts/install-deps (npm ci && npm run build in web/)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/tessera-browser.XXXXXX")"
up_pid=""
drain_pid=""
test_pid=""
status=1

cleanup() {
  [ -n "$test_pid" ] && kill -TERM "$test_pid" 2>/dev/null || true
  if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
    kill -TERM "$up_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$up_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$up_pid" 2>/dev/null || true
  fi
  [ -n "$up_pid" ] && wait "$up_pid" 2>/dev/null || true
  [ -n "$drain_pid" ] && kill "$drain_pid" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    echo "---- tessera up (last 40 lines of $tmp/up.log)" >&2
    tail -n 40 "$tmp/up.log" >&2 2>/dev/null || true
    echo "---- (logs kept in $tmp)" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# 1. The stack, with the gateway on a free port. Its one ready line names the endpoints.
mkfifo "$tmp/ready"
"$bin" up --data "$tmp/data" --port 0 --http-port 0 --web "$repo/web" >"$tmp/ready" 2>"$tmp/up.log" &
up_pid=$!
exec 3<"$tmp/ready"
line=""
if ! IFS= read -r -t 60 line <&3; then
  fail "tessera up printed no ready line within 60 s (it exited, or took too long)"
fi
cat <&3 >>"$tmp/up.log" &   # keep reading what it prints after, so it never blocks on a full pipe
drain_pid=$!
exec 3<&-
echo "run.sh: $line"
manager="" http="" credential="" token=""
for kv in $line; do
  case "$kv" in
    manager=*) manager="${kv#manager=}" ;;
    http=*) http="${kv#http=}" ;;
    credential=*) credential="${kv#credential=}" ;;
    token=*) token="${kv#token=}" ;;
  esac
done
[ -n "$credential" ] && [ -n "$token" ] || fail "the ready line names no credential= and token= (is the stack secured?): $line"
[ -n "$manager" ] || fail "the ready line names no manager=: $line"
[ -n "$http" ] || fail "the ready line names no http= (is the gateway part of tessera up?): $line"

# 2. A synthetic scan: 3 x 2 fields of view of 1024 x 1024, 2 channels. Its last line is the slide id.
if ! "$bin" scan --synthetic --cols 3 --rows 2 --width 1024 --height 1024 --channels 2 --name browser \
    --credential "$credential" >"$tmp/scan.log" 2>&1; then
  cat "$tmp/scan.log" >&2
  fail "tessera scan failed"
fi
slide="$(tail -n 1 "$tmp/scan.log" | tr -d '[:space:]')"
if ! [[ "$slide" =~ ^s[0-9]+$ ]]; then
  slide="$(grep -oE '\bs[0-9]{6}\b' "$tmp/scan.log" | tail -n 1 || true)"
fi
[ -n "$slide" ] || { cat "$tmp/scan.log" >&2; fail "cannot find the slide id in tessera scan's output"; }
# And a light-sheet volume: 2 x 2 stacks of 48 planes, for the z slider, the XZ section and
# Neuroglancer.
if ! "$bin" scan --synthetic --cols 2 --rows 2 --width 256 --height 256 --channels 1 --z 48 --no-stitch \
    --name volume --credential "$credential" >"$tmp/scan-volume.log" 2>&1; then
  cat "$tmp/scan-volume.log" >&2
  fail "tessera scan of the volume failed"
fi
volume="$(tail -n 1 "$tmp/scan-volume.log" | tr -d '[:space:]')"
[[ "$volume" =~ ^s[0-9]+$ ]] || { cat "$tmp/scan-volume.log" >&2; fail "cannot find the volume's slide id"; }
echo "run.sh: slide $slide, volume $volume, viewer $http/#$slide, screenshots to $TESSERA_ARTIFACTS"

# 3. The browser test (in the background, so that a TERM stops it at once).
node "$here/viewer_test.mjs" "$http" "$slide" "$token" "$volume" &
test_pid=$!
if wait "$test_pid"; then
  status=0
else
  status=$?
fi
test_pid=""
exit "$status"
