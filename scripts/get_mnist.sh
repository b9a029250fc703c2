#!/usr/bin/env bash
# get_mnist.sh — download the four MNIST files into data/mnist/ (`make data`).
#
#   scripts/get_mnist.sh          # into data/mnist/ under the repository root
#   scripts/get_mnist.sh DIR      # into DIR
#
# Each file is tried from a list of mirrors (override with MNIST_MIRRORS, a
# space-separated list of base URLs), downloaded to a temporary file, checked
# against the MD5 sum torchvision uses for it, and only then renamed into
# place, so an interrupted or corrupted download never leaves a file that
# looks complete. Files already present with the right sum are kept. The
# files stay gzipped: tapegrad reads .gz directly.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/data/mnist}
default_mirrors="https://ossci-datasets.s3.amazonaws.com/mnist/
                 https://storage.googleapis.com/cvdf-datasets/mnist/"
mirrors=${MNIST_MIRRORS:-$default_mirrors}

# name  md5 (torchvision.datasets.MNIST.resources)
files="train-images-idx3-ubyte.gz f68b3c2dcbeaaa9fbdd348bbdeb94873
train-labels-idx1-ubyte.gz d53e105ee54ea40749a09fcbcd1e9432
t10k-images-idx3-ubyte.gz 9fb629c4189551a2d022fa330f9573f3
t10k-labels-idx1-ubyte.gz ec29112dd5afa0611ce80d1b7f02629c"

if command -v curl >/dev/null 2>&1; then
    fetch() { curl -fsSL --connect-timeout 10 --max-time 600 --retry 2 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
    fetch() { wget -q --timeout=10 --tries=3 -O "$2" "$1"; }
else
    echo "get_mnist.sh: neither curl nor wget is installed" >&2
    exit 1
fi
command -v md5sum >/dev/null 2>&1 || { echo "get_mnist.sh: md5sum (coreutils) is missing" >&2; exit 1; }

md5_of() { md5sum "$1" | cut -d' ' -f1; }

give_up() {
    cat >&2 <<EOF

get_mnist.sh: could not download $1 from any mirror:
$(for m in $mirrors; do echo "    $m$1"; done)
Is this machine offline, or behind a proxy (set https_proxy)? Other ways to get data:
  * sudo apt-get install dataset-fashion-mnist
        Fashion-MNIST (same format, 28x28, 10 classes) in /usr/share/datasets/fashion-mnist,
        which tapegrad finds by itself.
  * Copy the four MNIST files (raw or .gz) from another machine into
        $dest/
    or point the program at any directory holding them with --data DIR.
EOF
    rmdir "$dest" 2>/dev/null || true   # leave no empty data/mnist behind
    exit 1
}

mkdir -p "$dest"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/get_mnist.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

while read -r name sum; do
    if [ -f "$dest/$name" ] && [ "$(md5_of "$dest/$name")" = "$sum" ]; then
        echo "  $name: present, MD5 ok"
        continue
    fi
    ok=0
    for m in $mirrors; do
        echo "  $name: downloading from $m"
        if fetch "$m$name" "$tmp/$name" 2>"$tmp/err"; then
            got=$(md5_of "$tmp/$name")
            if [ "$got" = "$sum" ]; then
                mv -f "$tmp/$name" "$dest/$name.part"   # same filesystem as dest, then atomic rename
                mv -f "$dest/$name.part" "$dest/$name"
                echo "  $name: MD5 ok"
                ok=1
                break
            fi
            echo "  $name: MD5 mismatch from $m (got $got, want $sum); trying the next mirror" >&2
        else
            echo "  $name: failed: $(tail -n 1 "$tmp/err" | head -c 300)" >&2
        fi
        rm -f "$tmp/$name"
    done
    [ "$ok" = 1 ] || give_up "$name"
done <<< "$files"

echo "MNIST is in $dest"
