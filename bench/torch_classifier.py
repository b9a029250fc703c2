#!/usr/bin/env python3
"""PyTorch reference for examples/mlp_classifier.c: the same 784-256-10 MLP
(ReLU, cross-entropy, Adam lr 1e-3, batch 128, shuffled every epoch) on
MNIST-format IDX files, printing the test accuracy after each epoch and
`test accuracy: 0.XXXX` at the end, as the C program does.

Example:
    OPENBLAS_CORETYPE=SkylakeX python3 bench/torch_classifier.py --epochs 1 --seed 1
"""

import argparse
import gzip
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(data_dir, stem, images):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            with (gzip.open if name.endswith(".gz") else open)(path, "rb") as f:
                buf = f.read()
            if images:
                n, r, c = struct.unpack(">III", buf[4:16])
                x = np.frombuffer(buf, np.uint8, n * r * c, 16).reshape(n, r * c).astype(np.float32) / 255
                return torch.from_numpy(x)
            n, = struct.unpack(">I", buf[4:8])
            return torch.from_numpy(np.frombuffer(buf, np.uint8, n, 8).astype(np.int64))
    raise SystemExit("error: %s(.gz) not found in %s" % (stem, data_dir))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = read_idx(a.data, "train-images-idx3-ubyte", True), read_idx(a.data, "train-labels-idx1-ubyte", False)
    xte, yte = read_idx(a.data, "t10k-images-idx3-ubyte", True), read_idx(a.data, "t10k-labels-idx1-ubyte", False)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    acc = 0.0
    for epoch in range(1, a.epochs + 1):
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
        with torch.no_grad():
            logits = model(xte)
            loss = F.cross_entropy(logits, yte).item()
            acc = (logits.argmax(1) == yte).double().mean().item()
        print("epoch %d: test loss %.4f, test accuracy %.4f" % (epoch, loss, acc))
    print("test accuracy: %.4f" % acc)


if __name__ == "__main__":
    main()
