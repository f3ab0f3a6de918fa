#!/usr/bin/env bash
# Builds out/deb/inspectd_<version>_<arch>.deb with dpkg-deb.
#
#   packaging/deb.sh amd64|arm64
#   VERSION=x.y.z              package version (default packaging/version.sh)
#   DEB_OUT=/path              where to write it (default out/deb)
#
# The binary is built natively for the host's architecture (amd64 here, or
# arm64 on a Jetson), or cross-built for arm64 on amd64 against the sysroot
# of sysroot-arm64.sh. Depends comes from dpkg-shlibdeps.
set -euo pipefail

arch="${1:-amd64}"
root=$(cd "$(dirname "$0")/.." && pwd)
version="${VERSION:-$(bash "$root/packaging/version.sh")}"
outdir="${DEB_OUT:-$root/out/deb}"
say() { printf 'deb: %s\n' "$*" >&2; }

case "$arch" in
  amd64) ort_arch=x64 ;;
  arm64) ort_arch=arm64 ;;
  *) say "unknown architecture $arch: want amd64 or arm64"; exit 2 ;;
esac
# INSPECTD_DEB_ORT_LIB packages another ONNX Runtime, e.g. one built on a
# Jetson with CUDA and TensorRT; its libonnxruntime_providers_*.so go along.
ort="${INSPECTD_DEB_ORT_LIB:-$root/.deps/onnxruntime/$ort_arch/libonnxruntime.so.1}"
[ -f "$ort" ] || { say "$ort missing: run scripts/setup.sh"; exit 1; }
command -v dpkg-shlibdeps >/dev/null || { say "dpkg-shlibdeps missing: apt-get install dpkg-dev"; exit 1; }

ldflags="-X github.com/inspectd/inspectd/internal/cli.Version=$version"
host=$(dpkg --print-architecture)
bin="$root/bin/$arch/inspectd"
cd "$root"
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -v '^ld-linux' | sort; }
if [ "$arch" = "$host" ]; then
  # Native (also on a Jetson): the binary links the system's own OpenCV, and
  # dpkg-shlibdeps names the packages that hold it.
  say "building bin/$arch/inspectd ($version)"
  CGO_ENABLED=1 go build -trimpath -ldflags "$ldflags" -o "$bin" ./cmd/inspectd
  deps_bin="$bin" deps_ort="$ort"
elif [ "$arch" = arm64 ] && [ "$host" = amd64 ]; then
  # Cross: the sysroot's packages are unpacked, not installed, so dpkg knows
  # nothing of them; the amd64 build against the same Debian release needs
  # the same libraries, which its NEEDED list must show.
  say "building bin/amd64/inspectd and bin/arm64/inspectd ($version)"
  CGO_ENABLED=1 go build -trimpath -ldflags "$ldflags" -o bin/amd64/inspectd ./cmd/inspectd
  VERSION="$version" bash packaging/build-arm64.sh >/dev/null
  if ! diff <(needed bin/amd64/inspectd) <(needed "$bin") >&2; then
    say "the arm64 and amd64 binaries need different libraries (diff above): Depends would be wrong"
    exit 1
  fi
  deps_bin="$root/bin/amd64/inspectd" deps_ort="$root/.deps/onnxruntime/x64/libonnxruntime.so.1"
else
  say "cannot build $arch on $host: only native builds and arm64 on amd64"
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg="$work/pkg"

# --- dependencies -----------------------------------------------------------
# dpkg-shlibdeps wants a debian/control to read; an empty one will do.
mkdir -p "$work/src/debian"
: >"$work/src/debian/control"
# Its warnings (RPATH $ORIGIN, files outside a package tree) do not apply here.
deps=$(cd "$work/src" && dpkg-shlibdeps -O "$deps_bin" "$deps_ort" 2>"$work/shlibdeps.log" | sed -n 's/^shlibs:Depends=//p')
[ -n "$deps" ] || { cat "$work/shlibdeps.log" >&2; say "dpkg-shlibdeps found no dependencies"; exit 1; }

# --- files --------------------------------------------------------------------
install -D -m 0755 "$bin" "$pkg/usr/bin/inspectd"
install -D -m 0644 systemd/inspectd@.service "$pkg/lib/systemd/system/inspectd@.service"
install -D -m 0644 systemd/cam0.env.example "$pkg/etc/inspectd/cam0.env.example"
install -D -m 0644 systemd/cam1.env.example "$pkg/etc/inspectd/cam1.env.example"
install -D -m 0644 systemd/argus.conf "$pkg/usr/share/inspectd/argus.conf"
install -D -m 0644 README.md "$pkg/usr/share/doc/inspectd/README.md"
install -D -m 0644 "$ort" "$pkg/usr/lib/inspectd/libonnxruntime.so.1"
for p in "$(dirname "$ort")"/libonnxruntime_providers_*.so; do
  [ -f "$p" ] && install -m 0644 "$p" "$pkg/usr/lib/inspectd/"
done
install -d -m 0755 "$pkg/var/lib/inspectd" "$pkg/usr/share/inspectd"
cat >"$pkg/usr/share/doc/inspectd/copyright" <<'TXT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: inspectd
Comment: /usr/lib/inspectd/libonnxruntime.so.1 is ONNX Runtime by Microsoft,
 MIT licence, from the npm package onnxruntime-node.
TXT
# Stripped of debug info, not symbols: Go panics still name functions.
if [ "$arch" = "$host" ]; then strip_tool=strip; else strip_tool=aarch64-linux-gnu-strip; fi
"$strip_tool" --strip-debug "$pkg/usr/bin/inspectd"

# --- control ------------------------------------------------------------------
mkdir -p "$pkg/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<TXT
Package: inspectd
Version: $version
Architecture: $arch
Maintainer: inspectd maintainers <inspectd@localhost>
Installed-Size: $size
Depends: $deps
Recommends: mosquitto-clients, inspectd-models (= $version)
Section: misc
Priority: optional
Homepage: https://github.com/inspectd/inspectd
Description: edge inspection daemon (DifferNet anomaly detection on camera frames)
 inspectd scores camera frames with DifferNet, a normalizing flow over pooled
 CNN features, and publishes verdicts over MQTT. One systemd instance per
 camera: systemctl enable --now inspectd@cam0 reads /etc/inspectd/cam0.env.
TXT
printf '%s\n' /etc/inspectd/cam0.env.example /etc/inspectd/cam1.env.example >"$pkg/DEBIAN/conffiles"

# The unit is a template enabled per camera by the administrator, so the
# scripts only make systemd see it and restart the instances on upgrade; the
# unit's DynamicUser means no user to create. They honour DPKG_ROOT (dpkg
# --root with --force-script-chrootless, as the package test installs it):
# then they touch only files below it and leave the host's systemd alone.
cat >"$pkg/DEBIAN/postinst" <<'SH'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
  [ -z "$2" ] || systemctl try-restart 'inspectd@*.service' || true
fi
SH
cat >"$pkg/DEBIAN/prerm" <<'SH'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
  systemctl stop 'inspectd@*.service' || true
fi
SH
cat >"$pkg/DEBIAN/postrm" <<'SH'
#!/bin/sh
set -e
if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
  # DynamicUser keeps state under /var/lib/private behind the symlinks.
  rm -rf "$DPKG_ROOT/var/lib/inspectd" "$DPKG_ROOT/var/lib/private/inspectd"
fi
SH
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"

mkdir -p "$outdir"
deb="$outdir/inspectd_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb.tmp" >/dev/null
mv "$deb.tmp" "$deb"
ln -sfn "$(basename "$deb")" "$outdir/inspectd_${arch}.deb"
say "wrote $deb ($(du -h "$deb" | cut -f1))"
say "Depends: $deps"

# --- models package -----------------------------------------------------------
# The pretrained backbones, so an install needs no copy by hand: the flow's
# default (mobilenet_v2_taps.onnx, INSPECTD_BACKBONE's default path) and the
# patch method's (resnet50v2_s16.onnx, found beside it). They are never in
# git: taken from beside INSPECTD_BACKBONE, else .deps/models (scripts/setup.sh
# links them there from ../shared/models). A separate package of architecture
# "all": one download for amd64 and arm64, and a new binary does not resend
# 43 MB of weights. Without the files it is not built (say so); with
# INSPECTD_DEB_REQUIRE_MODELS=1 that is an error.
find_model() {
  local name=$1 dir
  for dir in ${INSPECTD_BACKBONE:+"$(dirname "$INSPECTD_BACKBONE")"} "$root/.deps/models"; do
    if [ -f "$dir/$name" ]; then realpath "$dir/$name"; return 0; fi
  done
  return 1
}
mpkg="$work/models"
found=0
for name in mobilenet_v2_taps.onnx resnet50v2_s16.onnx; do
  if f=$(find_model "$name"); then
    install -D -m 0644 "$f" "$mpkg/usr/share/inspectd/$name"
    found=$((found + 1))
  else
    say "backbone $name not found beside INSPECTD_BACKBONE or in .deps/models"
  fi
done
if [ "$found" = 0 ]; then
  say "no backbone found: inspectd-models not built (install the backbone by hand, README \"Jetson\")"
  [ "${INSPECTD_DEB_REQUIRE_MODELS:-0}" != 1 ] || exit 1
  exit 0
fi
mkdir -p "$mpkg/usr/share/doc/inspectd-models"
cat >"$mpkg/usr/share/doc/inspectd-models/copyright" <<'TXT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: inspectd-models
Comment: ImageNet-pretrained backbones exported to ONNX (torchvision weights,
 BSD-3-Clause) for inspectd: mobilenet_v2_taps.onnx (MobileNetV2 feature
 taps) and resnet50v2_s16.onnx (ResNet-50 v2, stride 16).
TXT
mkdir -p "$mpkg/DEBIAN"
cat >"$mpkg/DEBIAN/control" <<TXT
Package: inspectd-models
Version: $version
Architecture: all
Maintainer: inspectd maintainers <inspectd@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$mpkg" | cut -f1)
Section: misc
Priority: optional
Homepage: https://github.com/inspectd/inspectd
Description: pretrained backbones for inspectd
 The ONNX feature extractors inspectd calibrates and inspects with, in
 /usr/share/inspectd (INSPECTD_BACKBONE's default location).
TXT
mdeb="$outdir/inspectd-models_${version}_all.deb"
# Weights hardly compress: gzip is as small as xz here and much faster.
dpkg-deb --root-owner-group -Zgzip --build "$mpkg" "$mdeb.tmp" >/dev/null
mv "$mdeb.tmp" "$mdeb"
ln -sfn "$(basename "$mdeb")" "$outdir/inspectd-models_all.deb"
say "wrote $mdeb ($(du -h "$mdeb" | cut -f1)): $found backbone(s)"
