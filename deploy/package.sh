#!/usr/bin/env bash
# Builds the Debian package (microcare_<version>_<arch>.deb) from an already-built build dir with
# CPack (deploy/debian/cpack.cmake). The build dir must be configured with
# -DCMAKE_INSTALL_PREFIX=/usr (deploy/setup.sh does): the paths are compiled into the binary and
# written into the unit. Prints the .deb's path on its last line.
#
# Environment:
#   MICROCARE_BUILD_DIR  the build to package (build)
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${MICROCARE_BUILD_DIR:-build}"
prefix="$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$dir/CMakeCache.txt")"
if [ "$prefix" != /usr ]; then
    echo "package: $dir is configured with prefix '$prefix'; a package needs /usr" >&2
    exit 1
fi
# dpkg-shlibdeps (dpkg-dev) computes the library dependencies; fakeroot-free: cpack sets the
# owners in the archive itself.
command -v dpkg-shlibdeps >/dev/null || { echo "package: needs dpkg-dev (deploy/setup.sh)" >&2; exit 1; }
# The microcare binary must be built; cpack's install step would otherwise build it, with
# neither the build lock nor the -j the caller chose.
[ -x "$dir/microcare" ] || { echo "package: build $dir/microcare first" >&2; exit 1; }

out="$dir/package"
rm -rf "$out" && mkdir -p "$out"
(cd "$dir" && cpack -G DEB -B "$PWD/package" --config CPackConfig.cmake) >"$dir/package.log" 2>&1 ||
    { tail -n 30 "$dir/package.log" >&2; echo "package: cpack failed ($dir/package.log)" >&2; exit 1; }
deb="$(realpath "$out"/microcare_*.deb)"
echo "package: built $deb"
echo "$deb"
