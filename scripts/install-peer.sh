#!/usr/bin/env bash
# Installs the peer engine of the peer benchmark (bench/peer.ts): llama.cpp through the
# node-llama-cpp npm package, pinned, into bench/peer/node_modules (ignored by git; never a
# dependency of ctcspec itself).
#
# Small and offline after the registry: optional dependencies are omitted (node-llama-cpp
# lists one prebuilt binary package per platform and GPU, several hundred MB together) and
# only the linux-x64 CPU binary package is added; install scripts are off, so its
# postinstall step never downloads llama.cpp sources or builds them. bench/peer.ts also asks
# node-llama-cpp for the prebuilt CPU binary only (gpu: false, build: 'never', skipDownload).
#
#   scripts/install-peer.sh          # prints the time it took and the size on disk
set -euo pipefail

readonly NODE_LLAMA_CPP_VERSION=3.21.1
readonly CPU_BINARY_PACKAGE=@node-llama-cpp/linux-x64 # llama.cpp built for x64 CPUs, no GPU backend

if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
  echo "install-peer.sh: only linux x86_64 is set up (found $(uname -s)-$(uname -m)): $CPU_BINARY_PACKAGE is the linux-x64 CPU binary" >&2
  exit 1
fi

cd "$(dirname "$0")/../bench/peer"
start=$(date +%s)
# no package.json here: --no-save and --no-package-lock leave nothing but node_modules behind
NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_POSTINSTALL=skip \
  npm install --prefix . --no-save --no-package-lock --omit=optional --ignore-scripts \
  --no-audit --no-fund --loglevel=error \
  "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" "$CPU_BINARY_PACKAGE@$NODE_LLAMA_CPP_VERSION"
end=$(date +%s)
echo "install-peer.sh: node-llama-cpp $NODE_LLAMA_CPP_VERSION and $CPU_BINARY_PACKAGE in bench/peer/node_modules" \
  "($(du -sh node_modules | cut -f1)) in $((end - start)) s"
