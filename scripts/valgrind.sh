#!/bin/sh
# make valgrind: a short run of each vae command under valgrind memcheck, on
# the small dataset in tests/fixtures/data/mini: no invalid reads or writes,
# no use of uninitialised values, no leaks (definitely, indirectly or
# possibly lost). Blocks still reachable at exit are the GEMM's per-thread
# packing buffers and the thread pool, kept for reuse by design.
# Installs valgrind with apt-get when it is missing.
set -e
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind not found: installing it" >&2
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    command -v apt-get >/dev/null 2>&1 || { echo "error: no valgrind and no apt-get to install it" >&2; exit 1; }
    $SUDO apt-get update -q && $SUDO apt-get install -y -q valgrind
fi
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
VG="valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible"
DATA=tests/fixtures/data/mini
set -x
$VG build/vae train --model cvae --prior learned --binarize dynamic --epochs 2 --batch 16 --hidden 32 \
    --latent 4 --threads 2 --data $DATA --out "$DIR/run" > /dev/null
$VG build/vae train --resume "$DIR/run" --epochs 3 > /dev/null
$VG build/vae eval --run "$DIR/run" --iw 20 > /dev/null
$VG build/vae sample --run "$DIR/run" --n 20 --out "$DIR/s.png"
$VG build/vae sample --run "$DIR/run" --n 20 --label 3 --out "$DIR/s.idx"
$VG build/seed_vae --data $DATA --epochs 1 > /dev/null
set +x
echo "valgrind: clean (train, resume, eval, sample, seed_vae)"
