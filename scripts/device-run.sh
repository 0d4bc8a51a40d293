# On the GPU machine, from the repo root with dist/ and .gpukit/ (scripts/device-kit.sh) copied
# there: WebGPU on a real NVIDIA GPU (Dawn Vulkan). Usage: bash scripts/device-run.sh [steps...]
# steps: spec (webgpu speculative bench), cpu (cpu speculative bench), engine (tinybench engine)
set -e
cd "$(dirname "$0")/.."
T0=$(date +%s)
[ -n "$SKIP_GL" ] || { for f in .gpukit/*.deb .gl/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done; ldconfig; }
mkdir -p node_modules/webgpu/dist/linux-x64
python3 - <<'PY'
import lzma, tarfile, shutil
with lzma.open('.gpukit/node.xz') as s, open('/tmp/node', 'wb') as d: shutil.copyfileobj(s, d)
with lzma.open('.gpukit/dawn.node.xz') as s, open('node_modules/webgpu/dist/linux-x64/dawn.node', 'wb') as d: shutil.copyfileobj(s, d)
tarfile.open('.gpukit/nm.tar.xz', 'r:xz').extractall('node_modules')
PY
chmod +x /tmp/node
/tmp/node -e 1 2>/dev/null || export LD_LIBRARY_PATH=$PWD/.gpukit/lib
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
nvidia-smi -L || true; lscpu | grep "Model name" || true
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
echo "setup $(( $(date +%s) - T0 )) s"
N=/tmp/node; C=dist/src/cli/main.js
for step in "$@"; do
  S=$(date +%s)
  case $step in
    smoke) $N $C generate --backend webgpu --max-new-tokens 32 --json 2>&1 | grep -v '^Warning' | tee $OUT/smoke.json ;;
    spec) $N $C bench --backends webgpu --drafters ${DRAFTERS:-none,lookup,medusa,ctc,ctc:best-path,ctc:short:best-path,ctc:no-collapse,ctc-ce,ctc-l6,ctc-l6:best-path} --out $OUT/spec-gpu $SPEC_ARGS 2>&1 | grep -v '^Warning' | tee $OUT/spec-gpu.log ;;
    spec16) $N $C bench --backends webgpu --tree-budget 16 --drafters ${DRAFTERS16:-lookup,ctc,ctc:best-path,ctc-l6} --out $OUT/spec-gpu-b16 2>&1 | grep -v '^Warning' | tee $OUT/spec-gpu-b16.log ;;
    cpu) $N $C bench --backends cpu --drafters ${CPU_DRAFTERS:-none,lookup,ctc,ctc:best-path,ctc:short:best-path} --out $OUT/spec-devcpu 2>&1 | grep -v '^Warning' | tee $OUT/spec-devcpu.log ;;
    engine) $N dist/bench/run.js --backend webgpu --time-ms 1000 --json $OUT/engine-gpu.json 2>&1 | grep -v '^Warning' | tee $OUT/engine.log ;;
  esac
  echo "step $step: $(( $(date +%s) - S )) s"
done
