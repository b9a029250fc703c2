#!/usr/bin/env python3
"""PyTorch's conv2d / conv_transpose2d forward + backward on the conv VAE's
layers (batch 128, k 4, stride 2, padding 1), float32: median ms over the
repetitions, next to build/conv_bench.

    /usr/bin/python3 bench/torch_conv.py [threads] [reps]
"""
import sys
import time

import torch
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 30
torch.set_num_threads(threads)
N = 128
layers = [("conv2d 1->32 28x28", False, False, 1, 32, 28), ("conv2d 32->64 14x14", False, True, 32, 64, 14),
          ("conv_transpose2d 64->32 7x7", True, True, 64, 32, 7), ("conv_transpose2d 32->1 14x14", True, True, 32, 1, 14)]
print("torch %s, threads %d, batch %d, float32, mkldnn %s" % (torch.__version__, threads, N,
                                                            torch.backends.mkldnn.is_available()))
total = 0.0
for name, tr, xg, cin, cout, hw in layers:
    x = torch.rand(N, cin, hw, hw) * 2 - 1
    w = (torch.rand((cin, cout, 4, 4) if tr else (cout, cin, 4, 4)) - 0.5) * 0.2
    b = (torch.rand(cout) - 0.5) * 0.2
    x.requires_grad_(xg), w.requires_grad_(True), b.requires_grad_(True)
    fn = F.conv_transpose2d if tr else F.conv2d
    ho = 2 * hw if tr else hw // 2
    seed = torch.rand(N, cout, ho, ho)
    pix, chans, taps = (N * hw * hw, cin, cout * 16) if tr else (N * ho * ho, cout, cin * 16)
    flops = 2.0 * pix * chans * taps * (3 if xg else 2)
    ms, fw = [], []
    for k in range(reps + 3):
        t0 = time.perf_counter()
        y = fn(x, w, b, stride=2, padding=1)
        t1 = time.perf_counter()
        y.backward(seed)
        t2 = time.perf_counter()
        x.grad = w.grad = b.grad = None
        if k >= 3:
            ms.append((t2 - t0) * 1e3), fw.append((t1 - t0) * 1e3)
    ms.sort(), fw.sort()
    total += ms[reps // 2]
    print("%-30s fwd %7.3f ms  fwd+bwd %7.3f ms  %6.1f GFLOP/s" % (name, fw[reps // 2], ms[reps // 2],
                                                                    flops / ms[reps // 2] / 1e6))
print("%-30s fwd+bwd %7.3f ms" % ("total", total))
