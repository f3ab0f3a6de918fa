#!/usr/bin/env bash
# Prints the version for binaries and packages: the git tag (without a
# leading v) when HEAD has one, else 0.0.0~git<date>.<sha>; Debian versions
# must start with a digit, and ~ sorts before any release.
set -euo pipefail
cd "$(dirname "$0")/.."
if tag=$(git describe --tags --exact-match 2>/dev/null); then
  echo "${tag#v}"
elif sha=$(git rev-parse --short=8 HEAD 2>/dev/null); then
  echo "0.0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d HEAD).$sha"
else
  echo "0.0.0~dev"
fi
