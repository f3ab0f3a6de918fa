#!/usr/bin/env bash
# The README's first command (after `make build`): the whole method end to end
# on the project's own synthetic parts, with nothing configured.
#   1. writes synthetic parts (16 good for calibration, good and defective test parts)
#   2. calibrates a model on the 16 good parts (threshold from out-of-sample scores)
#   3. scores every test part with heatmap overlays, one JSON line each
#   4. prints a summary: verdicts per class
# Output lands in out/demo (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=bin/inspectd
out=out/demo
mkdir -p "$out"

if [ ! -e .deps/models/mobilenet_v2_taps.onnx ] && [ -z "${INSPECTD_BACKBONE:-}" ]; then
  echo "demo: no pretrained backbone: set INSPECTD_BACKBONE or place ../shared/models, then run scripts/setup.sh" >&2
  exit 1
fi

"$bin" synth --out "$out" --frames 60
"$bin" calibrate --good "$out/parts/train/good" --out "$out/model.zip"
# score exits non-zero only when an image cannot be read; defects are verdicts.
"$bin" score --model "$out/model.zip" --heatmap "$out/heatmaps" "$out"/parts/test/* > "$out/scores.jsonl"

echo
echo "demo summary (model $out/model.zip, overlays in $out/heatmaps):"
for class in $(ls "$out/parts/test"); do
  total=$(grep -c "/test/$class/" "$out/scores.jsonl" || true)
  defect=$(grep "/test/$class/" "$out/scores.jsonl" | grep -c '"verdict":"defect"' || true)
  printf '  %-8s %2d parts, %2d flagged defective\n' "$class" "$total" "$defect"
done
