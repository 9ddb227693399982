#!/usr/bin/env bash
# Build the local base images the Compose test needs, since public registries cannot be reached here:
#   local/debian:bookworm, local/debian:trixie
#                                       debootstrap --variant=minbase, then `docker import`
#   local/python:3.11-slim-bookworm, local/python:3.13-slim-trixie
#                                       for docker/Dockerfile's PYTHON_IMAGE: Debian's python3 (3.11 in
#                                       bookworm, 3.13 in trixie), the two image variants
#   local/nginx:bookworm, local/prometheus:bookworm, local/nginx-exporter:bookworm,
#   local/alertmanager:bookworm         for compose.yaml's NGINX_IMAGE, PROMETHEUS_IMAGE,
#                                       NGINX_EXPORTER_IMAGE, ALERTMANAGER_IMAGE
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

debian() {  # debian SUITE: local/debian:SUITE, a minimal Debian from debootstrap
    local suite=$1 rootfs url
    current "local/debian:$suite" && return 0
    command -v debootstrap >/dev/null || { echo "debootstrap not installed (apt-get install debootstrap)" >&2; exit 1; }
    rootfs=$(mktemp -d /var/tmp/monoceros-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
    url=$(mirror)
    echo "debootstrap $suite from $url ..." >&2
    debootstrap --variant=minbase "$suite" "$rootfs" "$url" >"$rootfs.log" 2>&1 \
        || { tail -n 20 "$rootfs.log" >&2; exit 1; }
    # Updates and security fixes too, like the official Debian images; and no package lists or
    # downloaded .debs in the image (each derived image runs apt-get update itself).
    cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $url $suite main
deb $url $suite-updates main
deb ${url%/debian}/debian-security $suite-security main
SOURCES
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | "$docker" import \
        --change 'CMD ["bash"]' \
        --change "LABEL $label=$recipe" \
        - "local/debian:$suite" >/dev/null
    rm -rf "$rootfs" "$rootfs.log"
    trap - EXIT
}

build() {  # build TARGET TAG SUITE
    current "$2" && return 0
    echo "building $2 ..." >&2
    DOCKER_BUILDKIT=1 "$docker" build --quiet --label "$label=$recipe" --target "$1" -t "$2" \
        --build-arg "SUITE=$3" -f "$here/base-images.Dockerfile" "$here" >/dev/null
}

debian bookworm
debian trixie
build python local/python:3.11-slim-bookworm bookworm
build python local/python:3.13-slim-trixie trixie
build nginx local/nginx:bookworm bookworm
build prometheus local/prometheus:bookworm bookworm
build nginx-exporter local/nginx-exporter:bookworm bookworm
build alertmanager local/alertmanager:bookworm bookworm
# Images this script built from an earlier recipe, now untagged: nothing else uses them.
"$docker" image prune --force --filter "label=$label" >/dev/null
