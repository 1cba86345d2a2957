#!/bin/sh
# Installs the Debian packages the project's description names, in the image being built,
# from the base image's own package manager.
#
# usage: system-packages.sh KEY [PACKAGE...]
#   KEY   build-packages or run-packages, the description's key (named in errors)
#
# Every name is looked up before anything is installed, so a package the base image's suite
# does not have stops the build with one line naming it. Nothing to install, nothing done.
set -eu
key=$1
shift
[ "$#" -gt 0 ] || exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
missing=""
for package in "$@"; do
    apt-cache show --no-all-versions "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
    . /etc/os-release
    echo "error: $key in [workspace.metadata.django] of Cargo.toml:$missing: no such package in $PRETTY_NAME: fix the name (https://packages.debian.org/$VERSION_CODENAME/)" >&2
    exit 1
fi
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
rm -rf /var/lib/apt/lists/*
