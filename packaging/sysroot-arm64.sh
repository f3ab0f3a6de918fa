#!/usr/bin/env bash
# Builds (once) the Debian bookworm arm64 sysroot that `make arm64` links
# against, and installs the cross tool-chain on the host. Idempotent: a stamp
# records the package list, so a second run does nothing.
#
# Only the packages are unpacked (debootstrap --foreign, no second stage):
# their maintainer scripts never run, so the links they would make (Debian's
# alternatives for BLAS/LAPACK and cblas.h) are made here, and absolute
# symlinks are made relative so that they resolve inside the sysroot.
#
#   INSPECTD_SYSROOT_ARM64=/path   where the sysroot lives (default .deps/sysroot-arm64)
#   INSPECTD_DEBIAN_MIRROR=URL     Debian mirror (default: the one apt uses)
#   INSPECTD_SKIP_APT=1            do not install host packages
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
sysroot="${INSPECTD_SYSROOT_ARM64:-$root/.deps/sysroot-arm64}"
mirror="${INSPECTD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
include=libc6-dev,libstdc++-12-dev,libopencv-dev,libopenblas-dev
stamp="$sysroot/.inspectd-sysroot"
say() { printf 'sysroot-arm64: %s\n' "$*" >&2; }

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo

# --- host tools -------------------------------------------------------------
host_pkgs=(debootstrap gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user-static binfmt-support pkg-config)
missing=()
for p in "${host_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "${INSPECTD_SKIP_APT:-}" = 1 ]; then
    say "missing host packages (INSPECTD_SKIP_APT=1): ${missing[*]}"; exit 1
  fi
  say "installing host packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

want="$suite $include"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "up to date: $sysroot"
  exit 0
fi

# --- unpack the packages ----------------------------------------------------
# Into a fresh folder beside the final one, renamed at the end, so that an
# interrupted run never leaves a half sysroot that looks complete.
tmp="$sysroot.tmp"
$sudo rm -rf "$tmp"
mkdir -p "$(dirname "$sysroot")"
say "debootstrap $suite arm64 (--foreign, minbase) with $include into $tmp"
$sudo debootstrap --arch=arm64 --foreign --variant=minbase --include="$include" \
  "$suite" "$tmp" "$mirror" >"$tmp.log" 2>&1 || { tail -20 "$tmp.log" >&2; exit 1; }
# The first stage unpacks only the Required set; the rest (what --include
# asked for and its dependencies) waits in the archive cache for the second
# stage, which needs an arm64 machine. Unpacking them is all a sysroot needs.
n=0
for deb in "$tmp/var/cache/apt/archives"/*.deb; do
  $sudo dpkg-deb -x "$deb" "$tmp"
  n=$((n + 1))
done
say "unpacked $n packages"
$sudo rm -f "$tmp/var/cache/apt/archives"/*.deb

# --- links that maintainer scripts would have made --------------------------
triplet=aarch64-linux-gnu
lib="$tmp/usr/lib/$triplet"
inc="$tmp/usr/include/$triplet"
# Debian's alternatives point libblas.so.3, liblapack.so.3, libopenblas.so*
# and cblas.h at the OpenBLAS flavour that is installed.
for flavour in openblas-pthread openblas-openmp openblas-serial; do
  [ -d "$lib/$flavour" ] || continue
  for f in "$lib/$flavour"/lib*.so*; do
    n=$(basename "$f")
    [ -e "$lib/$n" ] || $sudo ln -sfn "$flavour/$n" "$lib/$n"
  done
  if [ -d "$inc/$flavour" ]; then
    for f in "$inc/$flavour"/*.h; do
      n=$(basename "$f")
      [ -e "$inc/$n" ] || $sudo ln -sfn "$flavour/$n" "$inc/$n"
    done
  fi
  break
done

# Absolute symlinks would point into the host; make them relative.
while IFS= read -r -d '' link; do
  target=$(readlink "$link")
  case "$target" in
    /*) rel=$(realpath -m --relative-to="$(dirname "$link")" "$tmp$target")
        $sudo ln -sfn "$rel" "$link" ;;
  esac
done < <(find "$tmp/usr" "$tmp/etc" -xdev -type l -print0)

# Dangling library links break the link step late and obscurely: report them.
dangling=$(find "$tmp/usr/lib/$triplet" -xtype l -name 'lib*.so*' | sed "s|^$tmp||" | head -20)
[ -z "$dangling" ] || say "warning: dangling library links: $dangling"

echo "$want" | $sudo tee "$tmp/.inspectd-sysroot" >/dev/null
$sudo rm -rf "$sysroot"
$sudo mv "$tmp" "$sysroot"
say "done: $sysroot ($(du -sh "$sysroot" | cut -f1))"
