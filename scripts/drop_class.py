#!/usr/bin/env python3
"""Write a copy of an MNIST-format dataset whose training set lacks one
class, for anomaly detection: train on the other classes, then score the
whole test set (`vae eval --scores`) and measure how well the scores pick out
the missing class (scripts/auroc.py). Standard library only.

    /usr/bin/python3 scripts/drop_class.py /usr/share/datasets/fashion-mnist data/no-bag --class 8
    build/vae train --data data/no-bag --epochs 10 --out runs/no-bag
    build/vae eval --run runs/no-bag --data /usr/share/datasets/fashion-mnist --scores scores.csv
    /usr/bin/python3 scripts/auroc.py scores.csv --class 8

IN holds train-images-idx3-ubyte, train-labels-idx1-ubyte and the t10k
pair, each raw or gzipped; OUT (created) gets the training pair without
class C, raw, and the test pair unchanged (raw).
"""

import argparse
import gzip
import os
import struct
import sys


def read(d, name):
    for f in (name, name + ".gz"):
        p = os.path.join(d, f)
        if os.path.exists(p):
            with (gzip.open(p) if f.endswith(".gz") else open(p, "rb")) as h:
                return h.read()
    sys.exit("drop_class.py: %s: no %s[.gz]" % (d, name))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--class", dest="cls", type=int, required=True)
    a = ap.parse_args()
    os.makedirs(a.dst, exist_ok=True)
    img, lab = read(a.src, "train-images-idx3-ubyte"), read(a.src, "train-labels-idx1-ubyte")
    n, rows, cols = struct.unpack(">III", img[4:16])
    if struct.unpack(">I", lab[4:8])[0] != n:
        sys.exit("drop_class.py: %s: image and label counts differ" % a.src)
    keep = [i for i in range(n) if lab[8 + i] != a.cls]
    size = rows * cols
    with open(os.path.join(a.dst, "train-images-idx3-ubyte"), "wb") as f:
        f.write(img[:4] + struct.pack(">III", len(keep), rows, cols))
        f.write(b"".join(img[16 + i * size:16 + (i + 1) * size] for i in keep))
    with open(os.path.join(a.dst, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(lab[:4] + struct.pack(">I", len(keep)) + bytes(lab[8 + i] for i in keep))
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with open(os.path.join(a.dst, name), "wb") as f:
            f.write(read(a.src, name))
    print("%s: %d of %d training images (class %d left out), test set unchanged" % (a.dst, len(keep), n, a.cls))


if __name__ == "__main__":
    main()
