#!/usr/bin/env bash
# The GPU run of issue 11 (docs/gpu.md): on a machine with a CUDA PyTorch installation but no .NET and no
# network, unpack a self-contained `SegTorchBackend=external` publish of Seg.Train + Seg.Bench, point
# SEG_LIBTORCH_DIR at PyTorch's torch/lib, check with `ldd -r` that TorchSharp's shim resolves against that
# libtorch, then train the default config on CUDA and on the CPU and run the step benchmarks.
#   usage: Seg.Bench/gpu/gpu-run.sh PACKDIR OUTDIR
# PACKDIR is what Seg.Bench/gpu/pack.sh made on a build machine. Every step has a time limit; logs go to OUTDIR.
set -u
pack=$1; out=$2; mkdir -p "$out"
work=$(mktemp -d); tar -xJf "$pack/seg.tar.xz" -C "$work"; seg=$work/seg
xz -dc "$pack/libOpenCvSharpExtern.so.xz" > "$seg/libOpenCvSharpExtern.so"
py=$(command -v python3)
lib=$("$py" -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export SEG_LIBTORCH_DIR=$lib DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
{
  echo "== machine"; nvidia-smi -L; nproc; grep PRETTY /etc/os-release; ldd --version | head -1
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  echo "SEG_LIBTORCH_DIR=$lib"; ls "$lib" | grep -E '^lib(torch|c10)' | tr '\n' ' '; echo
} 2>&1 | tee "$out/machine.txt"

echo "== ldd -r libLibTorchSharp.so against $lib"
LD_LIBRARY_PATH=$lib ldd -r "$seg/libLibTorchSharp.so" > "$out/ldd-shim.txt" 2>&1
missing=$(grep -c 'undefined symbol' "$out/ldd-shim.txt")
echo "undefined symbols: $missing"
grep 'undefined symbol' "$out/ldd-shim.txt" | sed -E 's/^\s*undefined symbol: ([^ ,]+).*/\1/' | sort -u > "$out/missing-symbols.txt"
c++filt < "$out/missing-symbols.txt" > "$out/missing-symbols-demangled.txt" 2>/dev/null || true
head -40 "$out/missing-symbols-demangled.txt"
grep 'not found' "$out/ldd-shim.txt"

# OpenCV's native library links GTK and X11 for its GUI functions, which Seg never calls. Where this machine lacks
# them, stand-ins that define the names (and do nothing) let the library load.
fix=$work/fix; mkdir -p "$fix"
for l in $(ldd "$seg/libOpenCvSharpExtern.so" | awk '/not found/ {print $1}'); do
  [ -e "$seg/stubs/$l" ] && ln -sf "$seg/stubs/$l" "$fix/$l" && echo "stand-in for missing $l"
done
export LD_LIBRARY_PATH=$fix

t() { local limit=$1; shift; echo "== $* (limit ${limit}s)"; local s=$SECONDS; timeout "$limit" "$@"; local rc=$?; echo "rc=$rc wall=$((SECONDS - s))s"; }
t 20 "$seg/Seg.Train" --help > "$out/help.txt" 2>&1; tail -3 "$out/help.txt"
t 180 "$seg/Seg.Train" train --set train.device=cuda -o "$out/run-cuda" > "$out/train-cuda.log" 2>&1; grep -vE '^train [0-9]+/' "$out/train-cuda.log" | tail -12
t 45 "$seg/Seg.Train" train --set train.device=cpu --set train.iterations=300 --set train.eval_every=300 --set schedule.warmup_iters=20 -o "$out/run-cpu" > "$out/train-cpu.log" 2>&1; grep -vE '^train [0-9]+/' "$out/train-cpu.log" | tail -5
t 90 "$seg/Seg.Bench" loss-step --device cuda --rounds 5 --steps 20 2>&1 | tee "$out/loss-step-cuda.txt" | tail -9
t 100 "$seg/Seg.Bench" train-step --device cuda --rounds 5 --steps 30 --threads 4 --python "$py" --json "$out/train-step-cuda.json" 2>&1 | tee "$out/train-step-cuda.txt" | grep -vE '^  ce(_lovasz)? round'
SEG_BENCH_DEVICE=cuda t 60 "$seg/Seg.Bench" sync-check 2>&1 | tee "$out/sync-check.txt" | tail -15
cp "$out"/run-*/metrics.json "$out/" 2>/dev/null
rm -rf "$out"/run-*/checkpoints
echo "== done"
