#!/usr/bin/env bash
# Build the local base images the Compose test needs, since public registries cannot be reached here:
#   local/debian:bookworm               debootstrap --variant=minbase, then `docker import`
#   local/python:3.11-slim-bookworm     for docker/Dockerfile's PYTHON_IMAGE
#   local/nginx:bookworm, local/prometheus:bookworm, local/nginx-exporter:bookworm
#                                       for compose.yaml's NGINX_IMAGE, PROMETHEUS_IMAGE, NGINX_EXPORTER_IMAGE
# Cached between runs: an image is rebuilt only when it is missing or was built from another version of
# this script or of base-images.Dockerfile (a label holds their checksum). Needs root, debootstrap and a
# running Docker engine (tests/deploy/engine.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
docker=/usr/bin/docker    # the Debian client: BuildKit builds need no buildx plugin
recipe=$(cat "$0" "$here/base-images.Dockerfile" | sha256sum | cut -c1-16)
label=org.monoceros.recipe

current() {  # current IMAGE: is IMAGE present and built from this recipe?
    [ "$("$docker" image inspect -f "{{ index .Config.Labels \"$label\" }}" "$1" 2>/dev/null)" = "$recipe" ]
}

mirror() {  # the machine's Debian mirror (deb822 or one-line sources), else the public one
    local uri
    uri=$(grep -hoE '^URIs: *[^ ]+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 | awk '{print $2}')
    [ -n "$uri" ] || uri=$(grep -hoE '^deb +(\[[^]]*\] +)?[^ ]+' /etc/apt/sources.list 2>/dev/null | head -n 1 | awk '{print $NF}')
    echo "${uri:-http://deb.debian.org/debian}"
}

if ! current local/debian:bookworm; then
    command -v debootstrap >/dev/null || { echo "debootstrap not installed (apt-get install debootstrap)" >&2; exit 1; }
    rootfs=$(mktemp -d /var/tmp/monoceros-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    url=$(mirror)
    echo "debootstrap bookworm from $url ..." >&2
    debootstrap --variant=minbase bookworm "$rootfs" "$url" >"$rootfs.log" 2>&1 \
        || { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
    rm -f "$rootfs.log"
    # Updates and security fixes too, like the official Debian images; and no package lists or
    # downloaded .debs in the image (each derived image runs apt-get update itself).
    cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $url bookworm main
deb $url bookworm-updates main
deb ${url%/debian}/debian-security bookworm-security main
SOURCES
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | "$docker" import \
        --change 'CMD ["bash"]' \
        --change "LABEL $label=$recipe" \
        - local/debian:bookworm >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
fi

build() {  # build TARGET TAG
    current "$2" && return 0
    echo "building $2 ..." >&2
    DOCKER_BUILDKIT=1 "$docker" build --quiet --label "$label=$recipe" --target "$1" -t "$2" \
        -f "$here/base-images.Dockerfile" "$here" >/dev/null
}

build python local/python:3.11-slim-bookworm
build nginx local/nginx:bookworm
build prometheus local/prometheus:bookworm
build nginx-exporter local/nginx-exporter:bookworm
