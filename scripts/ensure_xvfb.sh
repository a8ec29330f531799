#!/usr/bin/env bash
# The GUI tests need a virtual X server (Qt's offscreen platform cannot host napari's
# canvas) and Mesa for OpenGL. Install them with apt when missing.
set -euo pipefail
if command -v Xvfb >/dev/null 2>&1; then exit 0; fi
packages="xvfb xauth libgl1-mesa-dri libegl1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 \
libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 libxcb-shape0 libxcb-randr0 \
libxcb-xfixes0 libdbus-1-3 libfontconfig1"
sudo=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "napari-cebra: Xvfb is missing; install it with: apt-get install $packages" >&2
        exit 1
    fi
fi
echo "napari-cebra: installing Xvfb and Mesa with apt-get..."
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $packages >/dev/null
