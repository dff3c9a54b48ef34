#!/usr/bin/env bash
# Installs every Debian package fiberscope needs to build, test and benchmark, skipping what is present.
# Run as root (or with sudo available) on Debian 12 or newer.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config
  # inspector
  libdwarf-dev libelf-dev libncurses-dev
  # tests
  catch2 gdb elfutils tmux binutils
  # fuzzing and sanitizers (clang's libFuzzer runtime). clang 16 for the fuzz build: clang 14 cannot compile
  # libstdc++ 12's std::expected (it lacks P0848, conditionally trivial special members).
  clang libclang-rt-14-dev clang-16 libclang-rt-16-dev
  # benchmark peers
  libboost-context-dev libboost-fiber-dev golang-go delve time
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
