#!/usr/bin/env bash
# Build ChurnGuard's three images (serve, train, ui) with no container registry:
#   1. a Debian bookworm base made by debootstrap from Debian's own packages (`docker import`),
#   2. a Python base on it from Debian's python3 (3.11),
#   3. Dockerfile.serve and Dockerfile.train on the Python base, Dockerfile.ui on the Debian base.
# The local bases carry this machine's CA bundle so that builds behind a TLS-inspecting proxy trust PyPI;
# the shipped Dockerfiles never do. Bases are reused while their recipe is unchanged; images are tagged
# with a hash of their inputs and rebuilt only when an input changes.
#
# Usage: k8s/local-images.sh [bases|images]   (default: images, which makes the bases first)
# Env:   DEBIAN_MIRROR, CA_BUNDLE, REPO_PREFIX (default: churnguard)
# Needs: root for debootstrap and a running Docker engine. Prints each image, its size and its build time.
set -euo pipefail
cd "$(dirname "$0")/.."

MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PREFIX="${REPO_PREFIX:-churnguard}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
# Debian's own Docker client drives the engine's built-in BuildKit; a newer client without the buildx plugin cannot.
DOCKER="${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}"
docker() { "$DOCKER" "$@"; }
export DOCKER_BUILDKIT=1
log() { printf '==> %s\n' "$*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

# shellcheck disable=SC2016  # ${BASE_IMAGE} is Docker's, not the shell's
PYTHON_LAYER='ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin'
# Both bases are tagged by a hash of their recipe: the mirror, the Python layer and the CA bundle they carry.
recipe="$({ echo "$MIRROR local-ca-bundle slim"; echo "$PYTHON_LAYER"; cat "$CA_BUNDLE"; } | sha256sum | cut -c1-12)"
DEBIAN_BASE="${PREFIX}-local/debian:bookworm-${recipe}"
PYTHON_BASE="${PREFIX}-local/python:3.11-bookworm-${recipe}"

make_bases() {
  if ! have "$DEBIAN_BASE"; then
    log "${DEBIAN_BASE}: debootstrap --variant=minbase bookworm from ${MIRROR}"
    local root start=$SECONDS
    root="$(mktemp -d /tmp/churnguard-rootfs.XXXXXX)"
    debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
    # Slim like Debian's -slim images: no documentation, manual pages or translations, now or from later packages.
    rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
    printf 'path-exclude /usr/share/%s/*\n' doc man info locale > "$root/etc/dpkg/dpkg.cfg.d/01-churnguard-slim"
    # A path of its own: Debian's ca-certificates package rewrites /etc/ssl/certs/ca-certificates.crt.
    install -D -m 0644 "$CA_BUNDLE" "$root/etc/ssl/local-ca-bundle.crt"
    tar -C "$root" -c . | docker import \
      -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
      -c 'ENV SSL_CERT_FILE=/etc/ssl/local-ca-bundle.crt PIP_CERT=/etc/ssl/local-ca-bundle.crt' \
      -c 'CMD ["/bin/bash"]' - "$DEBIAN_BASE" >/dev/null
    rm -rf "$root"
    log "${DEBIAN_BASE}: made in $((SECONDS - start)) s"
  fi
  if ! have "$PYTHON_BASE"; then
    log "${PYTHON_BASE}: Debian python3"
    local start=$SECONDS
    docker build -q -t "$PYTHON_BASE" --build-arg "BASE_IMAGE=${DEBIAN_BASE}" - <<<"$PYTHON_LAYER" >/dev/null
    log "${PYTHON_BASE}: built in $((SECONDS - start)) s"
  fi
}

# Hash of an image's inputs: its base, its Dockerfile, and the tracked files of the build context.
input_hash() {
  { echo "$2"; cat "$1" .dockerignore; git ls-files -z -- pyproject.toml requirements.lock contract training predictor ui \
      data/churn.spec.yaml data/raw/churn.csv | xargs -0 cat; } | sha256sum | cut -c1-12
}

build() {
  local name="$1" dockerfile="$2" base="$3"
  local image start=$SECONDS
  image="${PREFIX}-${name}:$(input_hash "$dockerfile" "$base")"
  if have "$image"; then
    log "${image}: up to date"
  else
    log "${image}: ${dockerfile} on ${base}"
    local buildlog="${TMPDIR:-/tmp}/churnguard-build-${name}.log"
    docker build --progress=plain -f "$dockerfile" --build-arg "BASE_IMAGE=${base}" -t "$image" . >"$buildlog" 2>&1 \
      || { tail -n 40 "$buildlog" >&2; log "${image}: build failed (log: ${buildlog})"; exit 1; }
  fi
  docker tag "$image" "${PREFIX}-${name}:local"
  printf '%s\t%s\t%s MB\t%s s\n' "$name" "$image" "$(($(docker image inspect -f '{{.Size}}' "$image") / 1000000))" \
    "$((SECONDS - start))"
}

make_bases
if [ "${1:-images}" = bases ]; then
  printf '%s\n%s\n' "$DEBIAN_BASE" "$PYTHON_BASE"
  exit 0
fi
build serve Dockerfile.serve "$PYTHON_BASE"
build train Dockerfile.train "$PYTHON_BASE"
build ui Dockerfile.ui "$DEBIAN_BASE"
