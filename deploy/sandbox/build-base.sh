#!/usr/bin/env bash
# Build the sandbox's base image without a registry: a Debian root filesystem made by debootstrap
# (python3, pytest, git), imported with `docker import`. The image is tagged by a hash of this script
# (wf-sandbox-base:<hash>, and wf-sandbox-base:latest), so it is built once and reused; the root
# filesystem tarball is cached too (WF_SANDBOX_CACHE, default ~/.cache/wf-sandbox).
#
# The Debian mirror is the one this machine's apt already uses (read from /etc/apt/sources.list and
# sources.list.d at run time), or WF_DEBIAN_MIRROR. Needs root (debootstrap) and a docker engine.
# Usage: build-base.sh [EXTRA_TAG]   (prints the image name on the last line)
set -euo pipefail

PACKAGES="python3,python3-pytest,git,ca-certificates,procps,bandit"  # bandit: SEC's scanner
tag=$(sha256sum "$0" | cut -c1-12)
image="wf-sandbox-base:$tag"
extra_tag=${1:-}

finish() {
    docker tag "$image" wf-sandbox-base:latest
    if [ -n "$extra_tag" ]; then docker tag "$image" "$extra_tag"; fi
    echo "$image"
}

if docker image inspect "$image" >/dev/null 2>&1; then
    finish
    exit 0
fi

suite=$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")
suite=${WF_DEBIAN_SUITE:-${suite:-bookworm}}

mirror_for() {  # the apt source (URI) that serves suite $1, from deb822 and one-line source files
    local suite=$1 f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v s="$suite" '
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) found = uri }
            /^$/ { uri = "" }
            END { if (found) print found }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v s="$suite" '$1 == "deb" { sub(/\[[^]]*\] */, ""); if ($3 == s) print $2 }' "$f"
    done
}

cache=${WF_SANDBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wf-sandbox}
tarball="$cache/rootfs-$suite-$tag.tar"
if [ ! -s "$tarball" ]; then
    mirror=${WF_DEBIAN_MIRROR:-$(mirror_for "$suite" | head -n 1)}
    if [ -z "$mirror" ]; then
        echo "build-base.sh: no apt source for Debian '$suite' on this machine; set WF_DEBIAN_MIRROR" >&2
        exit 1
    fi
    if ! command -v debootstrap >/dev/null; then
        echo "build-base.sh: debootstrap is not installed (apt-get install debootstrap)" >&2
        exit 1
    fi
    mkdir -p "$cache"
    root=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    echo "building a $suite root filesystem with debootstrap (about a minute)..." >&2
    debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$root" "$mirror" >&2
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
    tar -C "$root" -c . > "$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
fi
docker import -c 'WORKDIR /workspace' -c 'CMD ["/bin/sh"]' "$tarball" "$image" >&2
finish
