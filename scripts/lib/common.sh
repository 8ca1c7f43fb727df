# Shared by scripts/*: package installation and paths. Source it, don't run it.

SHOAL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Debian packages the build and the test suite need.
SHOAL_BUILD_PACKAGES=(
  cmake g++ make pkg-config
  libboost-dev libmsgpack-cxx-dev libspdlog-dev catch2 libbenchmark-dev
  libsodium-dev zlib1g-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libre2-dev
  python3 python3-msgpack
)

# What the fuzz stage of scripts/test adds: clang and libFuzzer.
SHOAL_FUZZ_PACKAGES=(clang libfuzzer-14-dev libclang-rt-14-dev)

# ensure_packages PKG...: installs what is missing with apt-get (as root),
# running `apt-get update` only when something is missing. A no-op otherwise.
ensure_packages() {
  local missing=()
  local p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
      echo "missing packages (${missing[*]}) and not root: install them and re-run" >&2
      return 1
    fi
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

# configure BUILD_DIR [CMAKE ARGS...]: RelWithDebInfo, warnings as errors,
# ccache when it is installed.
configure() {
  local dir="$1"
  shift
  local launcher=()
  command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S "$SHOAL_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHOAL_WERROR=ON \
    "${launcher[@]}" "$@"
}

# build_targets BUILD_DIR [TARGET...]: builds the targets (default: all), -j2.
build_targets() {
  local dir="$1"
  shift
  local targets=()
  [ $# -gt 0 ] && targets=(--target "$@")
  cmake --build "$dir" -j2 "${targets[@]}"
}

# configure_and_build BUILD_DIR [CMAKE ARGS...]
configure_and_build() {
  configure "$@" && build_targets "$1"
}
