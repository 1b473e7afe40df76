#!/usr/bin/env bash
# The install a user gets, away from the source tree:
#   1. `cmake --install BUILD --prefix TMP`: the binary, the viewer page with its bundled scripts,
#      the systemd units (naming the installed binary) and the docs; the installed `tessera up`,
#      run from elsewhere, serves its page, a scan's slide over IIIF and OME-Zarr; a gateway
#      without a page says so at start and at /.
#   2. the Debian package (cpack -G DEB): its files and declared dependencies; as root (CI), it is
#      installed with dpkg, serves a slide the same way from /usr/bin/tessera, and is removed.
#
#   tests/package/run.sh BUILD_DIR      (TESSERA_PACKAGE_INSTALL=0: never dpkg -i)
set -euo pipefail
[ $# -eq 1 ] && [ -f "$1/CMakeCache.txt" ] || { echo "usage: $0 BUILD_DIR (a configured, built tree)" >&2; exit 2; }
build="$(cd "$1" && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/tessera-package.XXXXXX")"
up_pid="" installed=0 status=1
fail() { echo "package test: FAIL: $*" >&2; exit 1; }
cleanup() {
  if [ -n "$up_pid" ]; then kill -TERM "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
  if [ "$installed" = 1 ]; then dpkg -r tessera >/dev/null 2>&1 || echo "package test: could not remove the package" >&2; fi
  if [ "$status" -ne 0 ]; then
    for f in "$tmp"/*.log; do [ -f "$f" ] && { echo "---- $f (last 20 lines)" >&2; tail -n 20 "$f" >&2; }; done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Starts `$1 up` with the rest of the arguments in $tmp (not the source tree), sets up_pid, url,
# token and credential from its ready line.
start() {
  local bin=$1 name=$2; shift 2
  mkfifo "$tmp/$name.ready"
  (cd "$tmp" && exec "$bin" up --data "$tmp/$name" --port 0 --http-port 0 "$@" >"$tmp/$name.ready" 2>"$tmp/$name.log") &
  up_pid=$!
  exec 3<"$tmp/$name.ready"
  IFS= read -r -t 60 line <&3 || fail "$bin up printed no ready line within 60 s"
  cat <&3 >/dev/null &
  exec 3<&-
  url="" token="" credential=""
  for kv in $line; do
    case "$kv" in
      http=*) url="${kv#http=}" ;;
      token=*) token="${kv#token=}" ;;
      credential=*) credential="${kv#credential=}" ;;
    esac
  done
  [ -n "$url" ] && [ -n "$token" ] || fail "no http= and token= in the ready line: $line"
}
stop() { kill -TERM "$up_pid"; wait "$up_pid" 2>/dev/null || true; up_pid=""; }
get() { curl -s -o "$tmp/body" -w '%{http_code}' -H "Authorization: Bearer $token" "$url$1"; }

# A slide through the installed binary, and what the gateway serves of it.
serve_a_slide() {
  local bin=$1 name=$2
  start "$bin" "$name"
  (cd "$tmp" && "$bin" scan --synthetic --cols 2 --rows 2 --width 256 --height 256 --credential "$credential" \
     >"$tmp/$name-scan.log" 2>&1) || fail "$bin scan failed"
  local slide; slide="$(tail -n 1 "$tmp/$name-scan.log" | tr -d '[:space:]')"
  [ "$(get /)" = 200 ] && grep -qi "<html" "$tmp/body" || fail "$bin: / is not the viewer page"
  [ "$(get /vendor/openseadragon/openseadragon.min.js)" = 200 ] || fail "$bin: the page's bundled OpenSeadragon is missing"
  [ "$(get "/iiif/3/$slide/info.json")" = 200 ] || fail "$bin: no IIIF info for $slide"
  [ "$(get "/iiif/3/$slide/full/256,/0/default.jpg")" = 200 ] || fail "$bin: no IIIF image of $slide"
  [ "$(get "/zarr/$slide/.zmetadata")" = 200 ] && grep -q multiscales "$tmp/body" || fail "$bin: no OME-Zarr metadata"
  [ "$(get "/zarr/$slide/fields/0/0/0/0/0/0")" = 200 ] || fail "$bin: no stored chunk over OME-Zarr"
  stop
  echo "package test: $bin served $slide (page, IIIF, OME-Zarr)"
}

# 1. cmake --install into a prefix.
prefix="$tmp/prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || fail "cmake --install failed"
for f in bin/tessera share/tessera/web/index.html share/tessera/web/app.js share/tessera/web/vendor/openseadragon \
         lib/systemd/system/tessera.service lib/systemd/system/tessera-manager.service \
         share/doc/tessera/LICENSE share/doc/tessera/README.md share/doc/tessera/docs/protocol.md; do
  [ -e "$prefix/$f" ] || fail "cmake --install put no $f under the prefix"
done
grep -q "^ExecStart=$prefix/bin/tessera up " "$prefix/lib/systemd/system/tessera.service" ||
  fail "tessera.service does not run the installed binary: $(grep ExecStart "$prefix/lib/systemd/system/tessera.service")"
serve_a_slide "$prefix/bin/tessera" installed
# A gateway with no page says so, at start and at /.
start "$prefix/bin/tessera" nopage --web ""
code="$(get /)"
[ "$code" = 404 ] && grep -q "no viewer page" "$tmp/body" || fail "a gateway without a page answered / with $code"
[ "$(get /api/slides)" = 200 ] || fail "a gateway without a page serves no API"
stop
grep -q "serves no viewer page" "$tmp/nopage.log" || fail "a gateway without a page did not say so at start"
echo "package test: cmake --install gives a working stack with its viewer page; without one the gateway says so"

# 2. The Debian package.
(cd "$build" && cpack -G DEB -B "$tmp/deb" >"$tmp/cpack.log" 2>&1) || fail "cpack -G DEB failed"
deb="$(ls "$tmp"/deb/tessera_*.deb)"
depends="$(dpkg-deb -f "$deb" Depends)"
for lib in libhdf5 libzmq5 libblosc1 libsqlite3 libfftw3; do
  [[ "$depends" == *"$lib"* ]] || fail "the package does not declare $lib: Depends: $depends"
done
contents="$(dpkg-deb -c "$deb")"
grep -q "usr/bin/tessera$" <<<"$contents" || fail "the package holds no usr/bin/tessera"
grep -q "usr/share/tessera/web/index.html$" <<<"$contents" || fail "the package holds no viewer page"
grep -q "systemd/system/tessera.service$" <<<"$contents" || fail "the package holds no systemd unit"
echo "package test: $(basename "$deb"), Depends: $depends"
if [ "$(id -u)" = 0 ] && [ "${TESSERA_PACKAGE_INSTALL:-1}" != 0 ] && ! dpkg -s tessera >/dev/null 2>&1; then
  dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1 || fail "dpkg -i failed"
  installed=1
  grep -q "^ExecStart=/usr/bin/tessera up " /usr/lib/systemd/system/tessera.service /lib/systemd/system/tessera.service 2>/dev/null ||
    fail "the packaged unit does not run /usr/bin/tessera"
  serve_a_slide /usr/bin/tessera packaged
  dpkg -r tessera >/dev/null
  installed=0
  echo "package test: the Debian package installs, serves a slide and is removed"
else
  echo "package test: not installing the package (needs root, no tessera package installed, TESSERA_PACKAGE_INSTALL not 0)"
fi
status=0
echo "package test: PASS"
