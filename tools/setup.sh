#!/usr/bin/env bash
# Installs everything sluice needs from Debian 12 packages. Idempotent: when every package is
# already installed it changes nothing and takes a second. Run as root (or with sudo available).
#
# Later modules add their packages to the list below, nowhere else.
set -euo pipefail

packages=(
  # toolchain
  build-essential g++ cmake ninja-build pkg-config git python3 clang-format clang-tidy
  # common, cli
  libfmt-dev libspdlog-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libhwloc-dev
  # para, zicio: io_uring, O_DIRECT reads; peers in the benchmarks: fio, nginx driven by wrk
  liburing-dev fio nginx wrk
  # wayfinder: real targets and per-trial network namespaces
  redis-server redis-tools curl iproute2
  # dbos: SQLite (embedded default), PostgreSQL 15 server and client library
  libsqlite3-dev sqlite3 libpq-dev postgresql-15 postgresql-client-15
  # dbos IPC: the hash that checks each payload kept beside the SQLite file
  libxxhash-dev
  # dbos filesystems: served through FUSE; the tools test drives them with rsync
  libfuse3-dev fuse3 rsync
  # dbos IPC's peer in the benchmarks: gRPC
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  # wayfinder: linear algebra for the Bayesian search
  libeigen3-dev
  # wayfinder: DeepTune (neural searcher, CPU libtorch) and Optuna's TPE as its peer
  libtorch-dev python3-optuna
  # tests and benchmarks
  libgtest-dev libgmock-dev googletest libbenchmark-dev librapidcheck-dev
  python3-matplotlib
  # oqueue's peers in the benchmarks
  libatomic-queue-dev libxenium-dev libboost-dev libconcurrentqueue-dev libreaderwriterqueue-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: run as root to install: ${missing[*]}" >&2; exit 1; }
  as_root=(sudo)
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: done"
