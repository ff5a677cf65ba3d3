#!/usr/bin/env bash
# Makes a Docker engine and the base image available for the Docker-backed tests.
# Idempotent: installs docker.io and debootstrap when missing, starts dockerd when no
# daemon answers, and builds debian:bookworm-slim with debootstrap when the image is absent
# (no image registry is reachable from our machines).
set -euo pipefail

log() { printf '[setup-docker] %s\n' "$*" >&2; }

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  log "installing docker.io and debootstrap"
  apt-get update -qq
  apt-get install -y -qq docker.io debootstrap >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log >&2; exit 1; }
fi

if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  log "building debian:bookworm-slim with debootstrap"
  rootfs="$(mktemp -d /var/tmp/bookworm.XXXXXX)"
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/var/log/debootstrap.log 2>&1 \
    || { tail -20 /var/log/debootstrap.log >&2; exit 1; }
  tar -C "$rootfs" -c . | docker import - debian:bookworm-slim >/dev/null
  rm -rf "$rootfs"
fi
log "docker $(docker version --format '{{.Server.Version}}') ready; debian:bookworm-slim present"
