#!/usr/bin/env bash
# The README's first command (after `make build`): the embedded default, with
# nothing configured. `inspectd demo` calibrates on the good frames of the
# sample camera video testdata/line.avi, starts an MQTT broker in-process, runs
# the daemon on the video, prints what a subscriber receives, saves the
# heatmaps under out/demo/heatmaps and ends with a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -e .deps/models/mobilenet_v2_taps.onnx ] && [ -z "${INSPECTD_BACKBONE:-}" ]; then
  echo "demo: no pretrained backbone: set INSPECTD_BACKBONE or place ../shared/models, then run scripts/setup.sh" >&2
  exit 1
fi
rm -rf out/demo/spool
exec bin/inspectd demo --out out/demo "$@"
