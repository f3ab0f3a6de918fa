#!/usr/bin/env bash
# Cross-builds bin/arm64/inspectd (cgo: GoCV/OpenCV, OpenBLAS) on an amd64
# host against the Debian bookworm arm64 sysroot of sysroot-arm64.sh.
#
#   INSPECTD_SYSROOT_ARM64=/path   sysroot (default .deps/sysroot-arm64)
#   VERSION=x.y.z                  version stamped into the binary
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
sysroot="${INSPECTD_SYSROOT_ARM64:-$root/.deps/sysroot-arm64}"
out="${OUT:-$root/bin/arm64/inspectd}"
version="${VERSION:-$(bash "$root/packaging/version.sh")}"
triplet=aarch64-linux-gnu

bash "$root/packaging/sysroot-arm64.sh"

export CGO_ENABLED=1 GOOS=linux GOARCH=arm64
export CC="$triplet-gcc" CXX="$triplet-g++"
export PKG_CONFIG_SYSROOT_DIR="$sysroot"
export PKG_CONFIG_LIBDIR="$sysroot/usr/lib/$triplet/pkgconfig:$sysroot/usr/share/pkgconfig"
# The linker must find the libraries' own dependencies (libopencv_* need
# GDAL, FFmpeg, LAPACK...) in the sysroot, never on the host.
export CGO_CFLAGS="-O2 -g --sysroot=$sysroot"
export CGO_CXXFLAGS="-O2 -g --sysroot=$sysroot"
export CGO_LDFLAGS="--sysroot=$sysroot -Wl,-rpath-link=$sysroot/usr/lib/$triplet -Wl,-rpath-link=$sysroot/usr/lib/$triplet/blas -Wl,-rpath-link=$sysroot/usr/lib/$triplet/lapack"

mkdir -p "$(dirname "$out")"
# go build writes to a temp file and renames, so an interrupted build never
# leaves a truncated binary at $out.
cd "$root"
go build -trimpath -ldflags "-X github.com/inspectd/inspectd/internal/cli.Version=$version" -o "$out" ./cmd/inspectd
file "$out" 2>/dev/null || true
