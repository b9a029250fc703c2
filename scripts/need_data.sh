#!/bin/sh
# Makes sure a default dataset exists: data/mnist/ if present, else
# Fashion-MNIST from the Debian package dataset-fashion-mnist (installed here
# if possible), else an attempt to download MNIST.
FASHION=/usr/share/datasets/fashion-mnist
has() { ls "$1"/train-images-idx3-ubyte* >/dev/null 2>&1; }
has data/mnist && exit 0
has "$FASHION" && exit 0
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if command -v apt-get >/dev/null 2>&1; then
    echo "No dataset found: installing Fashion-MNIST (apt-get install dataset-fashion-mnist)" >&2
    { $SUDO apt-get update -q && $SUDO apt-get install -y -q dataset-fashion-mnist; } >&2 && has "$FASHION" && exit 0
fi
echo "Trying to download MNIST instead (make data)" >&2
exec scripts/get_mnist.sh
