#!/bin/sh
# Installs what the backup agent runs (restic, ssh, python3) with the base image's package
# manager, unless the image has them, and adds the unprivileged user it runs as: uid 10001,
# web's, so that every media file web wrote is readable, with a home for ssh's files and
# restic's cache.
set -eu
if command -v restic >/dev/null && command -v ssh >/dev/null && command -v python3 >/dev/null; then
    :
elif command -v apk >/dev/null; then
    apk add --no-cache restic openssh-client python3
else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends restic openssh-client python3 ca-certificates >/dev/null
    rm -rf /var/lib/apt/lists/*
fi
if command -v useradd >/dev/null; then
    useradd --no-log-init --uid 10001 --create-home --home-dir /home/snapshot snapshot
else
    adduser -D -u 10001 -h /home/snapshot snapshot
fi
mkdir -p /backup/staging /backup/release
chown snapshot /backup/staging
restic version
