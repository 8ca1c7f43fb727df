#!/bin/sh
# Builds memberlist-loopback from bench/memberlist/main.go against Debian's
# memberlist source, offline, in GOPATH mode. Prints the binary's path.
#
#   bench/memberlist/build.sh OUTDIR
#
# Needs (Debian 12): golang-go (Go 1.19) and golang-github-hashicorp-memberlist-dev
# (memberlist 0.2.2 and its dependencies as golang-*-dev packages under
# /usr/share/gocode). As root, SHOAL_BENCH_INSTALL=1 installs them with apt-get.
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
outdir=$(cd "$1" && pwd)
gocode=/usr/share/gocode
ml=$gocode/src/github.com/hashicorp/memberlist

if [ "${SHOAL_BENCH_INSTALL:-0}" = 1 ] && [ "$(id -u)" = 0 ]; then
  if ! command -v go >/dev/null 2>&1 || [ ! -f "$ml/memberlist.go" ]; then
    apt-get install -y golang-go golang-github-hashicorp-memberlist-dev >&2
  fi
fi
if ! command -v go >/dev/null 2>&1; then
  echo "$0: no Go toolchain: apt-get install golang-go (Debian 12: Go 1.19)" >&2
  exit 3
fi
if [ ! -f "$ml/memberlist.go" ]; then
  echo "$0: memberlist source missing at $ml: apt-get install golang-github-hashicorp-memberlist-dev" >&2
  exit 3
fi

version=$(dpkg-query -W -f='${Version}' golang-github-hashicorp-memberlist-dev 2>/dev/null || echo unknown)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/memberlist-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/shoalbench/memberlist_loopback"
cp "$here/main.go" "$tmp/src/shoalbench/memberlist_loopback/main.go"

cd "$tmp/src/shoalbench/memberlist_loopback"
if ! GO111MODULE=off GOPATH="$tmp:$gocode" GOCACHE="$tmp/cache" GOFLAGS= GOPROXY=off \
    go build -o "$outdir/memberlist-loopback" \
      -ldflags "-X main.memberlistVersion=$version" . >&2; then
  echo "$0: go build failed (a missing import above names the golang-*-dev package to install)" >&2
  exit 1
fi
echo "$outdir/memberlist-loopback"
