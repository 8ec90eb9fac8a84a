#!/usr/bin/env bash
# Builds the .deb from a copy of the source tree (`dpkg-buildpackage -us -uc -b`), checks it
# with lintian (no errors), unpacks it into a throwaway root and runs `pgbust --version` and
# `pgbust check` from the installed paths, and checks the package's contents: the unit with
# RestartPreventExitStatus=78, the sysusers snippet, /etc/pgbust/pgbust.yaml as a conffile,
# the man pages and the bash completion.
set -euo pipefail
src=${1:?usage: test_deb.sh SOURCE_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir "$work/pgbust"
# The source tree without build trees or git metadata.
tar -C "$src" --exclude=./build --exclude=./.git --exclude='./build-*' -cf - . | tar xf - -C "$work/pgbust"
version=$(cd "$work/pgbust" && dpkg-parsechangelog -S Version)
project=$(sed -n 's/^project(pgbust VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[ "$version" = "$project" ] || fail "debian/changelog says $version, CMakeLists.txt $project"

# ccache (when present) makes a second run cheap; CMake takes the launcher from the environment.
if command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CCACHE_BASEDIR="$work" CCACHE_NOHASHDIR=1
fi
start=$(date +%s)
(cd "$work/pgbust" && DEB_BUILD_OPTIONS="parallel=2 nocheck" dpkg-buildpackage -us -uc -b) \
  >"$work/build.log" 2>&1 || { tail -50 "$work/build.log"; fail "dpkg-buildpackage"; }
echo "dpkg-buildpackage: $(( $(date +%s) - start )) s"
deb=$(ls "$work"/pgbust_*.deb)
echo "built $(basename "$deb")"

if command -v lintian >/dev/null; then
  lintian --fail-on error "$deb" | tee "$work/lintian.log" || fail "lintian reports errors"
fi

# Contents.
dpkg-deb -c "$deb" >"$work/contents"
for path in ./usr/bin/pgbust ./lib/systemd/system/pgbust.service ./lib/systemd/system/pgbust@.service \
            ./usr/lib/sysusers.d/pgbust.conf \
            ./etc/pgbust/pgbust.yaml ./etc/pgbust/rules.d/ ./usr/share/doc/pgbust/README.md \
            ./usr/share/doc/pgbust/examples/work-orders/rules.yaml \
            ./usr/share/doc/pgbust/monitoring/pgbust-alerts.yml \
            ./usr/share/man/man1/pgbust.1.gz ./usr/share/man/man5/pgbust.yaml.5.gz \
            ./usr/share/bash-completion/completions/pgbust; do
  grep -q " $path\$" "$work/contents" || grep -q " $path -> " "$work/contents" ||
    fail "the package lacks $path"
done
dpkg-deb --ctrl-tarfile "$deb" | tar xOf - ./conffiles | grep -qx /etc/pgbust/pgbust.yaml ||
  fail "/etc/pgbust/pgbust.yaml is not a conffile"
dpkg-deb --ctrl-tarfile "$deb" | tar xOf - ./postinst | grep -q systemd-sysusers ||
  fail "postinst does not create the pgbust user"

# A throwaway root.
root="$work/root"
dpkg -x "$deb" "$root"
unit="$root/lib/systemd/system/pgbust.service"
grep -qx 'ExecStart=/usr/bin/pgbust run --config /etc/pgbust/pgbust.yaml' "$unit" ||
  fail "unexpected ExecStart in the packaged unit"
grep -qx 'RestartPreventExitStatus=78' "$unit" || fail "no RestartPreventExitStatus=78"
out=$("$root/usr/bin/pgbust" --version)
echo "$out"
[[ "$out" == "pgbust $project ($version)" ]] || fail "--version: $out"
# The shipped config names rules.d relative to itself: give it the work-orders rules.
cp "$root/usr/share/doc/pgbust/examples/work-orders/rules.yaml" "$root/etc/pgbust/rules.d/"
"$root/usr/bin/pgbust" check --config "$root/etc/pgbust/pgbust.yaml" || fail "pgbust check"
# The installed man pages render without warnings; the completion completes a command.
for page in man1/pgbust.1.gz man5/pgbust.yaml.5.gz; do
  warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$root/usr/share/man/$page" 2>&1 >/dev/null)
  [ -z "$warnings" ] || fail "man $page: $warnings"
done
completed=$(bash -c 'source "$1"; COMP_WORDS=(pgbust ch); COMP_CWORD=1; _pgbust; echo "${COMPREPLY[*]}"' \
  _ "$root/usr/share/bash-completion/completions/pgbust")
[ "$completed" = check ] || fail "completing 'pgbust ch': '$completed'"
echo "OK"
