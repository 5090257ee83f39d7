#!/usr/bin/env bash
# Packs Seg.Train and Seg.Bench as one self-contained linux-x64 publish with SegTorchBackend=external, for a
# machine that has a CUDA PyTorch but no .NET and no network (run it there with gpu-run.sh).
#   usage: Seg.Bench/gpu/pack.sh OUTDIR      (from the repository root; about 60 MiB in two xz files)
# To fit a 64 MiB transfer it leaves out what the GPU run never loads: ONNX Runtime's native library (8 MiB packed;
# only `predict --model` and the ONNX checks use it, so they are not available from this pack), the .NET debugger
# and tracing libraries,
# BenchmarkDotNet's in-process build, disassembly and ETW tracing assemblies (the GPU run uses Seg.Bench's
# loss-step and train-step harnesses, not BenchmarkDotNet), symbols, and the symbol tables of the big native
# libraries. It adds stand-ins for the GTK/X11 libraries that OpenCV's GUI functions link (Seg never calls them),
# which gpu-run.sh uses only where the machine lacks the real ones. OpenCV's library is packed on its own so that
# both halves compress at once (xz with the x86 filter).
set -euo pipefail
out=$(realpath -m "$1"); mkdir -p "$out"; root=$(mktemp -d); seg=$root/seg
for app in Seg.Train Seg.Bench; do
  dotnet publish "$app" -c Release -r linux-x64 --self-contained -p:SegTorchBackend=external \
    --artifacts-path "$root/artifacts" -o "$seg" -nologo -v quiet
done
unused=(Microsoft.CodeAnalysis.dll Microsoft.CodeAnalysis.CSharp.dll Microsoft.Diagnostics.Tracing.TraceEvent.dll
        Microsoft.Diagnostics.NETCore.Client.dll Microsoft.Diagnostics.Runtime.dll Microsoft.Diagnostics.FastSerialization.dll
        Iced.dll Dia2Lib.dll TraceReloggerLib.dll Gee.External.Capstone.dll libonnxruntime.so libonnxruntime_providers_shared.so)
for app in Seg.Train Seg.Bench; do
python3 - "$seg/$app.deps.json" "${unused[@]}" <<'PY'
import json, sys
path, drop = sys.argv[1], set(sys.argv[2:])
deps = json.load(open(path))
for libs in deps["targets"].values():
    for entry in libs.values():
        for kind in ("runtime", "native", "resources"):
            for f in list(entry.get(kind, {})):
                if f.split("/")[-1] in drop or "amd64/" in f:
                    del entry[kind][f]
json.dump(deps, open(path, "w"), indent=2)
PY
done
( cd "$seg" && rm -rf amd64 "${unused[@]}" ./*.pdb ./*.xml libmscordbi.so libmscordaccore.so createdump libcapstone.so \
    libclrgcexp.so libclrgc.so libcoreclrtraceptprovider.so )
strip --strip-unneeded "$seg"/{libOpenCvSharpExtern.so,libSkiaSharp.so,libHarfBuzzSharp.so}
mkdir -p "$seg/stubs"
nm -D --undefined-only "$seg/libOpenCvSharpExtern.so" | awk '$2 !~ /@/ && $2 !~ /^(_ITM_|__gmon_start__)/ {print "void " $2 "(void){}"}' > "$root/stub.c"
for lib in $(readelf -d "$seg/libOpenCvSharpExtern.so" | sed -nE 's/.*NEEDED.*\[(.*)\]/\1/p' \
             | grep -vE '^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux-x86-64)\.so'); do
  gcc -shared -fPIC -nostdlib -Wl,-soname,"$lib" -o "$seg/stubs/$lib" "$root/stub.c"
done
mv "$seg/libOpenCvSharpExtern.so" "$root/"
xz -T1 --x86 --lzma2=preset=9 -c "$root/libOpenCvSharpExtern.so" > "$out/libOpenCvSharpExtern.so.xz" &
tar -C "$root" -cf - seg | xz -T1 --x86 --lzma2=preset=9 > "$out/seg.tar.xz"
wait
rm -rf "$root"
ls -la "$out"
