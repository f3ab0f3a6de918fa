#!/usr/bin/env bash
# One idempotent set-up for a fresh machine that has Go, gcc, npm and apt:
# Debian packages, the ONNX Runtime shared library, the pretrained backbone
# (from ../shared when present), Go modules and staticcheck. Safe to run
# again: each step checks what is already there.
#
#   INSPECTD_ORT_LIB=/path/libonnxruntime.so.1  use that library, download nothing
#   INSPECTD_BACKBONE=/path/model.onnx          use that backbone
#   INSPECTD_SHARED=/path/shared                where ../shared lives
#   INSPECTD_SKIP_APT=1                         do not touch Debian packages
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/.deps"
ort_version=1.30.0
mkdir -p "$deps"
say() { printf 'setup: %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------
pkgs=(libopencv-dev pkg-config libopenblas-dev mosquitto mosquitto-clients)
# Real cameras for the capture tests: an RTSP server (gst-rtsp-server through
# Debian's python3-gi), GStreamer's sources, encoders and decoders, and the
# Aravis GigE Vision simulator with its aravissrc element (and arv-tool-0.8,
# with which the tests reconfigure the simulator).
pkgs+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  python3-gi gir1.2-gst-rtsp-server-1.0 libaravis-0.8-0 aravis-tools aravis-tools-cli)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "${INSPECTD_SKIP_APT:-}" != 1 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- ONNX Runtime ----------------------------------------------------------
# Microsoft's build ships inside the npm package onnxruntime-node; only the
# shared library is taken from the tarball and none of its scripts run.
case "$(uname -m)" in
  aarch64|arm64) arch=arm64 ;;
  *) arch=x64 ;;
esac
if [ -n "${INSPECTD_ORT_LIB:-}" ]; then
  [ -f "$INSPECTD_ORT_LIB" ] || { say "INSPECTD_ORT_LIB=$INSPECTD_ORT_LIB does not exist"; exit 1; }
  say "using ONNX Runtime from INSPECTD_ORT_LIB=$INSPECTD_ORT_LIB"
elif [ ! -f "$deps/onnxruntime/$arch/libonnxruntime.so.1" ] || [ ! -f "$deps/onnxruntime/VERSION" ] \
     || [ "$(cat "$deps/onnxruntime/VERSION")" != "$ort_version" ]; then
  say "fetching ONNX Runtime $ort_version (npm package onnxruntime-node)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ort_version" >/dev/null)
  for a in x64 arm64; do
    tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" "package/bin/napi-v6/linux/$a/libonnxruntime.so.1"
    mkdir -p "$deps/onnxruntime/$a"
    mv "$tmp/package/bin/napi-v6/linux/$a/libonnxruntime.so.1" "$deps/onnxruntime/$a/libonnxruntime.so.1.tmp"
    mv "$deps/onnxruntime/$a/libonnxruntime.so.1.tmp" "$deps/onnxruntime/$a/libonnxruntime.so.1"
  done
  echo "$ort_version" > "$deps/onnxruntime/VERSION"
fi

# --- pretrained backbone ---------------------------------------------------
shared="${INSPECTD_SHARED:-$(dirname "$root")/shared}"
mkdir -p "$deps/models"
if [ -n "${INSPECTD_BACKBONE:-}" ]; then
  [ -f "$INSPECTD_BACKBONE" ] || { say "INSPECTD_BACKBONE=$INSPECTD_BACKBONE does not exist"; exit 1; }
  ln -sfn "$(realpath "$INSPECTD_BACKBONE")" "$deps/models/mobilenet_v2_taps.onnx"
elif [ -f "$shared/models/mobilenet_v2_taps.onnx" ]; then
  for f in "$shared"/models/*; do
    ln -sfn "$(realpath "$f")" "$deps/models/$(basename "$f")"
  done
else
  cat >&2 <<'MSG'
setup: no pretrained backbone found (INSPECTD_BACKBONE unset, ../shared/models absent).
setup: tests that need it will skip. To make one, on a machine with PyTorch:
  python3 -c "import torch, torchvision as tv
m = tv.models.mobilenet_v2(weights='IMAGENET1K_V1').features.eval()
torch.onnx.export(m, torch.zeros(1,3,224,224), 'mobilenet_v2_features.onnx', opset_version=13,
  input_names=['input'], output_names=['features'],
  dynamic_axes={'input': {0:'N',2:'H',3:'W'}, 'features': {0:'N',2:'h',3:'w'}})"
then set INSPECTD_BACKBONE to the file and calibrate with --taps features
(its one output; there is no INSPECTD_TAPS setting: the taps are a calibrate
flag, recorded in the model). The defaults expect mobilenet_v2_taps.onnx and,
for the patch method, resnet50v2_s16.onnx (see ../shared/models/README.md).
MSG
fi

# --- npm packages for tests ------------------------------------------------
# Eclipse Tahu's Sparkplug B codec (sparkplug-payload): the Sparkplug tests
# decode what the daemon publishes with it. Into .deps/node, no scripts run.
tahu_version=1.0.3
if [ -f "$deps/node/node_modules/sparkplug-payload/package.json" ] \
   && grep -q "\"version\": \"$tahu_version\"" "$deps/node/node_modules/sparkplug-payload/package.json"; then
  :
elif command -v npm >/dev/null 2>&1; then
  say "installing npm package sparkplug-payload@$tahu_version into .deps/node (for tests)"
  mkdir -p "$deps/node"
  npm install --silent --prefix "$deps/node" --ignore-scripts --no-audit --no-fund --no-save \
    "sparkplug-payload@$tahu_version" >/dev/null
else
  say "npm not found: the Sparkplug tests against Eclipse Tahu's decoder will skip"
fi

# --- Go modules and tools -------------------------------------------------
(cd "$root" && go mod download)
# staticcheck, pinned, built from the Go module proxy into .deps/bin (make
# test runs it); the version check makes a bump here rebuild it.
staticcheck_version=0.8.2
if ! "$deps/bin/staticcheck" -version 2>/dev/null | grep -qF "($staticcheck_version)"; then
  say "installing staticcheck v$staticcheck_version into .deps/bin"
  GOBIN="$deps/bin" go install "honnef.co/go/tools/cmd/staticcheck@v$staticcheck_version"
fi
say "done"
