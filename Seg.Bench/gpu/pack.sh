#!/usr/bin/env bash
# Packs Seg.Train and Seg.Bench as one self-contained linux-x64 publish with SegTorchBackend=external, for a
# machine that has a CUDA PyTorch but no .NET and no network (run it there with gpu-run.sh).
#   usage: Seg.Bench/gpu/pack.sh OUT.tar.xz      (from the repository root; about 60 MiB)
# What is left out to fit: the .NET debugger and tracing libraries, BenchmarkDotNet's disassembler, and the
# symbol tables of the big native libraries. What is added: stand-ins for the GTK/X11 libraries that OpenCV's GUI
# functions link (Seg never calls them), used by gpu-run.sh only where the machine lacks the real ones.
set -euo pipefail
out=$(realpath -m "$1"); root=$(mktemp -d); seg=$root/seg
for app in Seg.Train Seg.Bench; do
  dotnet publish "$app" -c Release -r linux-x64 --self-contained -p:SegTorchBackend=external \
    --artifacts-path "$root/artifacts" -o "$seg" -nologo -v quiet
done
rm -f "$seg"/{libmscordbi.so,libmscordaccore.so,createdump,libcapstone.so,libclrgcexp.so,libclrgc.so,libcoreclrtraceptprovider.so}
strip --strip-unneeded "$seg"/{libOpenCvSharpExtern.so,libSkiaSharp.so,libHarfBuzzSharp.so}
mkdir -p "$seg/stubs"
nm -D --undefined-only "$seg/libOpenCvSharpExtern.so" | awk '$2 !~ /@/ && $2 !~ /^(_ITM_|__gmon_start__)/ {print "void " $2 "(void){}"}' > "$root/stub.c"
for lib in $(readelf -d "$seg/libOpenCvSharpExtern.so" | sed -nE 's/.*NEEDED.*\[(.*)\]/\1/p' \
             | grep -vE '^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux-x86-64)\.so'); do
  gcc -shared -fPIC -nostdlib -Wl,-soname,"$lib" -o "$seg/stubs/$lib" "$root/stub.c"
done
tar -C "$root" -cf - seg | xz -9 -T0 > "$out"
rm -rf "$root"
ls -la "$out"
