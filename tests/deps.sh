#!/usr/bin/env bash
# Install the Debian bookworm packages pgbust needs to build, test and run its examples.
# Idempotent: when everything is present it only runs dpkg-query and returns.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang-14
  libpq-dev libhiredis-dev libssl-dev libboost-program-options-dev libspdlog-dev libyaml-cpp-dev
  doctest-dev libsystemd-dev
  postgresql-15 postgresql-client-15 redis-server
  redis-sentinel              # the Sentinel failover tests run three sentinels
  systemd curl procps openssl  # openssl: the TLS tests make their certificates with it
  tzdata                      # zone files for tz:ZONE / timezone: (rules and unit tests)
  prometheus                  # promtool: checks and unit-tests monitoring/pgbust-alerts.yml
  groff-base man-db           # the docs.pages test checks the man pages with groff and man
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts packaged services on install; the project never uses them. Stop them so
# they do not hold the default ports or memory (tests use their own servers).
if command -v service >/dev/null 2>&1; then
  $sudo service redis-server stop >/dev/null 2>&1 || true
  $sudo service redis-sentinel stop >/dev/null 2>&1 || true
  $sudo service prometheus stop >/dev/null 2>&1 || true
fi
