#!/usr/bin/env bash
# Smoke test of bin/arm64/inspectd under qemu-user: `version`, then `score`
# of a good and a defective image with a Gaussian and a flow model, both
# calibrated by the amd64 binary on the tiny backbone. The arm64 binary runs
# the network (ONNX Runtime for arm64), the feature pooling and the density;
# its scores must equal the amd64 ones to float rounding.
#
#   INSPECTD_SYSROOT_ARM64=/path   sysroot (default .deps/sysroot-arm64)
#   SMOKE_STEP_TIMEOUT=120         seconds allowed for each emulated command
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
sysroot="${INSPECTD_SYSROOT_ARM64:-$root/.deps/sysroot-arm64}"
step_timeout="${SMOKE_STEP_TIMEOUT:-120}"
arm="$root/bin/arm64/inspectd"
ort_arm="$root/.deps/onnxruntime/arm64/libonnxruntime.so.1"
ort_x64="$root/.deps/onnxruntime/x64/libonnxruntime.so.1"
say() { printf 'smoke-arm64: %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

[ -x "$arm" ] || fail "$arm missing: run make arm64"
[ -f "$ort_arm" ] && [ -f "$ort_x64" ] || fail "ONNX Runtime libraries missing: run scripts/setup.sh"
qemu=$(command -v qemu-aarch64-static) || fail "qemu-aarch64-static missing: apt-get install qemu-user-static"

# qemu-user passes /proc/cpuinfo through from the x86 host; ONNX Runtime's
# cpuinfo finds no ARM core in it and crashes inside dlopen. qemu looks a
# path up under the sysroot first, so an ARM cpuinfo (Cortex-A78AE, as on
# Jetson Orin) there stands in, one entry per CPU that sysfs lists (not
# nproc: CPU affinity may hide some).
if [ ! -L "$sysroot/proc" ]; then
  mkdir -p "$sysroot/proc"
  ncpu=$(getconf _NPROCESSORS_CONF)
  for ((i = 0; i < ncpu; i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd42\nCPU revision\t: 1\n\n' "$i"
  done >"$sysroot/proc/cpuinfo.tmp"
  mv "$sysroot/proc/cpuinfo.tmp" "$sysroot/proc/cpuinfo"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
emu() { QEMU_LD_PREFIX="$sysroot" INSPECTD_ORT_LIB="$ort_arm" INSPECTD_BACKBONE="$work/tiny.onnx" \
          timeout "$step_timeout" "$qemu" "$arm" "$@"; }

start=$(date +%s.%N)
out=$(emu version) || fail "inspectd version under qemu"
case "$out" in "inspectd "*) say "version: $out" ;; *) fail "unexpected version output: $out" ;; esac

cd "$root"
amd="$work/inspectd-amd64"
go build -o "$amd" ./cmd/inspectd
go run ./packaging/tinybackbone "$work/tiny.onnx"
"$amd" synth --out "$work/d" --train 8 --size 96 --frames 0 >/dev/null
good="$work/d/parts/test/good/000.png"
bad=$(ls "$work"/d/parts/test/crack/*.png | head -1)

score() { sed -n 's/.*"score":\([^,]*\),.*"verdict":"\([a-z]*\)".*/\1 \2/p'; }
for method in gaussian flow; do
  INSPECTD_ORT_LIB="$ort_x64" INSPECTD_BACKBONE="$work/tiny.onnx" "$amd" calibrate \
    --good "$work/d/parts/train/good" --out "$work/$method.zip" --taps tap_s2,tap_s4 --scales 64,32 \
    --method "$method" --train-views 2 --transforms 2 --folds 2 --epochs 3 --hidden 16 --blocks 2 \
    >/dev/null 2>"$work/calibrate.log" || { cat "$work/calibrate.log" >&2; fail "calibrate $method (amd64)"; }
  want=$(INSPECTD_ORT_LIB="$ort_x64" INSPECTD_BACKBONE="$work/tiny.onnx" "$amd" score --model "$work/$method.zip" "$good" "$bad" | score)
  got=$(emu score --model "$work/$method.zip" "$good" "$bad" 2>"$work/score.log" | score) \
    || { tail -20 "$work/score.log" >&2; fail "score $method under qemu"; }
  [ "$(echo "$got" | wc -l)" = 2 ] || { tail -20 "$work/score.log" >&2; fail "score $method: want 2 results, got: $got"; }
  # Same verdicts, scores within 1e-4 relative: float rounding differs
  # between the x86 and ARM kernels, nothing else may.
  paste -d' ' <(echo "$want") <(echo "$got") | awk -v m="$method" '
    { d = $1 - $3; if (d < 0) d = -d; s = ($1 < 0 ? -$1 : $1) + 1e-9
      printf "smoke-arm64: %s score amd64 %s arm64 %s (rel diff %.1e) verdict %s/%s\n", m, $1, $3, d / s, $2, $4 > "/dev/stderr"
      if (d / s > 1e-4 || $2 != $4 || $3 != $3 + 0) bad = 1 }
    END { exit bad }' || fail "$method: arm64 scores differ from amd64"
done
say "PASS in $(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)") s"
