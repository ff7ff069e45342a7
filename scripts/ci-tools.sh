#!/usr/bin/env bash
# Tools the checks use beyond npm: helm and promtool (built once from the Go module proxy into the
# agentmeter cache) and Chromium (Debian's package, for the dashboard's browser test). Each is skipped
# when already there; a missing one is named, and the tests that need it fail in CI (AGENTMETER_REQUIRE_TOOLS).
set -euo pipefail
go_home="${AGENTMETER_CACHE:-$HOME/.cache/agentmeter}/go"
bin="$go_home/bin"
mkdir -p "$bin"
# Go's module, checksum and build caches stay under the agentmeter cache too, as the FerretDB build's do,
# so removing that one directory removes everything these builds left.
export GOPATH="$go_home/path" GOMODCACHE="$go_home/mod" GOCACHE="$go_home/build"
build() { # name module@version
  if [ -x "$bin/$1" ]; then echo "$1: cached ($bin/$1)"; return; fi
  if ! command -v go >/dev/null; then echo "$1: no go on the PATH, not built"; return; fi
  local started=$SECONDS
  GOBIN="$bin" GOFLAGS="-mod=mod -modcacherw" go install "$2"
  echo "$1: built from the Go module proxy in $((SECONDS - started)) s"
}
build helm helm.sh/helm/v3/cmd/helm@v3.22.0
build promtool github.com/prometheus/prometheus/cmd/promtool@v0.316.0
if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  started=$SECONDS
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  echo "chromium: installed from Debian in $((SECONDS - started)) s"
else
  echo "chromium: not installed (not root or no apt-get); the browser test will say so"
fi
