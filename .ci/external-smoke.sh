#!/usr/bin/env bash
# Smoke test of SegTorchBackend=external (docs/gpu.md): libtorch comes from a folder outside the build output,
# named by SEG_LIBTORCH_DIR; here the libtorch-cpu-linux-x64 2.10.0 natives in the NuGet cache stand in for a
# PyTorch installation's torch/lib. Checks that
#   1. Seg.Train built with -p:SegTorchBackend=external ships no libtorch*.so and trains 20 iterations;
#   2. a library user's project that references TorchSharp (no runtime package) and Seg.Core runs the README's
#      loss example against that libtorch;
#   3. a missing SEG_LIBTORCH_DIR fails with a message that names the variable and the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
packages=${NUGET_PACKAGES:-$HOME/.nuget/packages}
fail() { echo "external-smoke: FAILED: $*" >&2; exit 1; }

echo "external-smoke: building Seg.Train with -p:SegTorchBackend=external"
dotnet build Seg.Train -c Release -p:SegTorchBackend=external --artifacts-path "$work/artifacts" -nologo -v quiet >"$work/build.log" 2>&1 \
  || { cat "$work/build.log"; fail "build"; }
app=$work/artifacts/bin/Seg.Train/release
bundled=$(find "$app" -name 'libtorch*.so' | head -3)
[ -z "$bundled" ] || fail "the external build ships libtorch: $bundled"

export SEG_LIBTORCH_DIR
SEG_LIBTORCH_DIR=$(dirname "$(find "$packages/libtorch-cpu-linux-x64/2.10.0" -name libtorch.so | head -1)")
[ -f "$SEG_LIBTORCH_DIR/libtorch.so" ] || fail "libtorch-cpu-linux-x64 2.10.0 is not in the NuGet cache ($packages)"
echo "external-smoke: SEG_LIBTORCH_DIR=$SEG_LIBTORCH_DIR"

echo "external-smoke: 20 training iterations"
"$app/Seg.Train" train --set train.iterations=20 --set schedule.warmup_iters=5 --set train.eval_every=20 \
  --set data.train_count=200 --set data.val_count=40 -o "$work/run" >"$work/train.log" 2>&1 \
  || { tail -20 "$work/train.log"; fail "training"; }
grep -E '^done: val mIoU' "$work/train.log" || fail "training printed no result"

echo "external-smoke: the README loss example in a project that references TorchSharp only"
mkdir -p "$work/example"
cat > "$work/example/Example.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><ImplicitUsings>enable</ImplicitUsings><NoWarn>NU1603</NoWarn></PropertyGroup>
  <ItemGroup>
    <PackageReference Include="TorchSharp" Version="0.107.0" />
    <ProjectReference Include="$repo/Seg.Core/Seg.Core.csproj" />
  </ItemGroup>
</Project>
XML
# The fenced C# block of README.md's section:losses, as it stands.
awk '/<!-- section:losses -->/ {s=1} /<!-- \/section:losses -->/ {s=0} s && /^```csharp/ {c=1; next} s && c && /^```/ {c=0} s && c' README.md > "$work/example/Program.cs"
[ -s "$work/example/Program.cs" ] || fail "no C# example found in README.md's losses section"
dotnet build "$work/example" -c Release -o "$work/example/out" -nologo -v quiet >"$work/example.log" 2>&1 \
  || { cat "$work/example.log"; fail "README example build"; }
[ -z "$(find "$work/example/out" -name 'libtorch*.so' | head -1)" ] || fail "the example's output ships libtorch"
dotnet "$work/example/out/Example.dll" | tee "$work/example.out"
grep -q '^lovasz: ' "$work/example.out" || fail "README example printed no Lovász value"

echo "external-smoke: SEG_LIBTORCH_DIR unset"
if env -u SEG_LIBTORCH_DIR "$app/Seg.Train" train -o "$work/run2" >"$work/unset.log" 2>&1; then fail "ran without SEG_LIBTORCH_DIR"; fi
grep -q 'SEG_LIBTORCH_DIR is not set. Fix:' "$work/unset.log" || { cat "$work/unset.log"; fail "unclear message without SEG_LIBTORCH_DIR"; }
echo "external-smoke: passed"
