#!/bin/sh
# Install the system packages modelpier's tests and benchmarks need, only those that are missing:
#   postgresql (initdb/pg_ctl for the registry's PostgreSQL tests), wrk (load benchmarks),
#   redis-server (the gateway's Redis cache and job queue tests), chromium (the dashboard's browser
#   tests and `make screenshots`, driven by Playwright with Debian's build, not a downloaded one),
#   docker-registry, skopeo, umoci and debootstrap (the OCI image tests: a real registry on loopback,
#   tools that read what `pier build image` pushed, and a Debian base made without Docker Hub).
# Idempotent: exits 0 without touching anything when all are present. Needs root to install.
set -eu

have_initdb() {
    command -v initdb >/dev/null 2>&1 && return 0
    for bin in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$bin" ] && return 0
    done
    return 1
}

have() { command -v "$1" >/dev/null 2>&1; }

missing=""
if have_initdb; then echo "ok: postgresql (initdb)"; else missing="$missing postgresql"; fi
if have wrk; then echo "ok: wrk"; else missing="$missing wrk"; fi
if have redis-server; then echo "ok: redis-server"; else missing="$missing redis-server"; fi
if [ -x /usr/bin/chromium ]; then echo "ok: chromium"; else missing="$missing chromium"; fi
for tool in docker-registry skopeo umoci; do
    if have "$tool"; then echo "ok: $tool"; else missing="$missing $tool"; fi
done
if have debootstrap || [ -x /usr/sbin/debootstrap ]; then echo "ok: debootstrap"; else missing="$missing debootstrap"; fi

if [ -z "$missing" ]; then
    echo "all system dependencies are present"
    exit 0
fi

echo "missing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "error: run this script as root to install:$missing" >&2
    echo "  (or: sudo apt-get update && sudo apt-get install -y$missing)" >&2
    exit 1
fi

echo "+ apt-get update"
apt-get update
echo "+ apt-get install -y$missing"
# shellcheck disable=SC2086  # word splitting of the package list is intended
DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
echo "installed:$missing"
