#!/usr/bin/env bash
# System packages the local stack needs: a JDK 17+ and Maven (for the Kafka broker), and
# Prometheus and Alertmanager from Debian, Chromium (invoice rendering test); then the pinned deploy-check tools
# (install-dev-tools.sh). Installs only what is missing.
set -euo pipefail

need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v openssl >/dev/null || need+=(openssl)
# Headless Chromium renders `tokenops invoice --format html` in its test. Pinned to the
# build the test was written against; Debian's security archive keeps only the newest
# Chromium build, so when this one is gone the newest is installed, with a warning.
CHROMIUM_VERSION=156.0.8078.114-1~deb12u1
command -v chromium >/dev/null || need+=("chromium=$CHROMIUM_VERSION")

# Pinned deploy-check tools (helm, checkov), cached under ~/.cache/tokenops.
bash "$(dirname "$0")/install-dev-tools.sh"

[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "tokenops needs these Debian packages: ${need[*]}" >&2
  echo "install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if ! apt-get install -y -qq "${need[@]}" >/dev/null; then
  echo "warning: a pinned package version is no longer in Debian's archive; installing the newest" >&2
  apt-get install -y -qq "${need[@]%%=*}" >/dev/null
fi
# Debian's packages start their services where an init system runs; the local stack
# starts its own instances on its own ports.
for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
  if command -v service >/dev/null && service "$svc" status >/dev/null 2>&1; then
    service "$svc" stop >/dev/null 2>&1 || true
  fi
done
