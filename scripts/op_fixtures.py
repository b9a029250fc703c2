#!/usr/bin/env python3
"""Generate tests/fixtures/ops.bin: PyTorch's value and gradients of every
differentiable tapegrad op, one record per case, all in float64.

Usage:
    /usr/bin/python3 scripts/op_fixtures.py            # write tests/fixtures/ops.bin
    /usr/bin/python3 scripts/op_fixtures.py --out P    # write another path

Needs PyTorch (Debian python3-torch). Deterministic: the inputs of every case
come from torch.Generator seeded with the case's index, so two runs on the
same PyTorch give the same bytes. CI never runs this; it only reads the file
(tests/test_torch_ops.c).

For each case the script draws float64 inputs and an upstream gradient u of
the output's shape, computes out = op(inputs) and the gradient of
sum(out * u) with respect to every differentiable input.

File format (little-endian, no padding; also in tests/fixtures/README.md):

    8 bytes   magic "TGOPS001"
    u32       number of records
    each record:
      u32       name length n, then n bytes: the op's name as in tg_ops ("add")
      u32       case id (0, 1, ... within the op)
      u32       number of scalar arguments m, then m x f64 (meaning per op below)
      u32       number of inputs k (at most 3)
      k x       u32 requires_grad (1: a gradient follows; 0: a constant such
                as reparam's eps), then a tensor
      tensor    upstream gradient u (the output's shape)
      tensor    output
      tensor    per input with requires_grad = 1, in input order: its gradient
    tensor = u32 ndim, ndim x u64 dims, prod(dims) x f64 (row-major; ndim 0
             holds one value)

Scalar arguments:
    add_scalar, mul_scalar, pow   [s]
    matmul                        [ta, tb]  (0/1: operand read transposed; N-d: its last two dims)
    affine                        [relu]    (0: x W^T + b, 1: relu of it)
    sum, mean                     []: all elements; [axis, keepdim]: one axis
    reshape                       the new dims
    transpose                     [d0, d1]
    concat                        [axis]
    narrow                        [axis, start, length]
    max, min                      []: all elements; [axis, keepdim]: one axis (torch.max(x, axis).values)
    logsumexp                     [axis, keepdim]
    std                           [axis, correction, keepdim]: torch.std, built whole by tg_std_axis
    softmax, log_softmax          [axis]
    nll                           [ignore_index]; input 1 the int64 labels as float64 (a constant)
    custom                        []  (tests/custom_op.c's y = a^3 b)
    hardtanh                      [min_val, max_val]
    others                        []

A second file, tests/fixtures/reduce.bin (TGFIX001 named tensors, the format
of tests/fixtures/README.md), holds the compositions that are not ops of the
table: torch.var / torch.std and F.nll_loss / F.cross_entropy with each
reduction, as records "<k>.x", "<k>.labels", "<k>.args", "<k>.up", "<k>.out",
"<k>.gx" for case k < "count"; args = [kind, a, b, c]: kind 0 var, 1 std
(a axis, b correction, c keepdim); 2 nll_loss, 3 cross_entropy (a the
reduction as tg_reduction: 0 sum, 1 mean, 2 none).
"""

import argparse
import os
import struct
import sys

import torch
import torch.nn.functional as F

MAGIC = b"TGOPS001"
F64 = torch.float64


class Cases:
    """Collects (name, case id, args, inputs, upstream, output, grads)."""

    def __init__(self):
        self.records = []
        self.per_op = {}

    def add(self, name, fn, inputs, args=(), const=()):
        """inputs: list of (shape, lo, hi) or a ready tensor; indices in const
        get no gradient. fn(*tensors) -> output."""
        cid = self.per_op.get(name, 0)
        self.per_op[name] = cid + 1
        g = torch.Generator().manual_seed(len(self.records) + 1)
        ts = []
        for i, spec in enumerate(inputs):
            t = spec.clone() if torch.is_tensor(spec) else uniform(g, *spec)
            ts.append(t.requires_grad_(i not in const))
        out = fn(*ts)
        up = uniform(g, tuple(out.shape), -1.0, 1.0)
        grads = torch.autograd.grad(out, [t for i, t in enumerate(ts) if i not in const], up)
        self.records.append((name, cid, [float(a) for a in args],
                             [(i not in const, t.detach()) for i, t in enumerate(ts)],
                             up, out.detach(), [gr.detach() for gr in grads]))


def uniform(g, shape, lo, hi):
    return torch.rand(shape, generator=g, dtype=F64) * (hi - lo) + lo


def away_from_zero(g, shape, lo, hi, gap=0.05):
    """Uniform in [lo, hi) with |x| >= gap (relu's kink is not compared)."""
    x = uniform(g, shape, lo, hi)
    return torch.where(x.abs() < gap, torch.copysign(torch.full_like(x, gap), x), x)


def build():
    c = Cases()
    g = torch.Generator().manual_seed(12345)   # for inputs that need shaping

    pairs = [((3, 5), (3, 5)), ((2, 3), (3,)), ((4, 1), (1, 5)), ((2, 1, 3), (4, 1))]
    binary = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
    for name, fn in binary.items():
        lo = 0.5 if name == "div" else -2.0        # denominators in [0.5, 2)
        for sa, sb in pairs:
            c.add(name, fn, [(sa, -2.0, 2.0), (sb, lo, 2.0)])

    c.add("neg", torch.neg, [((3, 5), -2.0, 2.0)])
    c.add("neg", torch.neg, [((7,), -2.0, 2.0)])
    for s in (2.5, -0.75):
        c.add("add_scalar", lambda x, s=s: x + s, [((3, 5), -2.0, 2.0)], [s])
    for s in (-1.5, 0.3):
        c.add("mul_scalar", lambda x, s=s: x * s, [((3, 5), -2.0, 2.0)], [s])
    c.add("exp", torch.exp, [((3, 5), -3.0, 3.0)])
    c.add("log", torch.log, [((3, 5), 0.1, 5.0)])
    c.add("sqrt", torch.sqrt, [((3, 5), 0.1, 5.0)])
    c.add("square", torch.square, [((3, 5), -2.0, 2.0)])
    for p in (0.5, 2.0, 3.0, -1.5, 2.7):
        c.add("pow", lambda x, p=p: torch.pow(x, p), [((3, 5), 0.2, 3.0)], [p])
    c.add("relu", torch.relu, [away_from_zero(g, (5, 7), -2.0, 2.0)])
    c.add("sigmoid", torch.sigmoid, [((5, 7), -6.0, 6.0)])
    c.add("tanh", torch.tanh, [((5, 7), -3.0, 3.0)])
    c.add("softplus", F.softplus, [((5, 7), -6.0, 6.0)])

    m, k, n = 3, 5, 7
    for ta in (0, 1):
        for tb in (0, 1):
            def mm(a, b, ta=ta, tb=tb):
                return (a.T if ta else a) @ (b.T if tb else b)
            c.add("matmul", mm, [((k, m) if ta else (m, k), -1.0, 1.0),
                                 ((n, k) if tb else (k, n), -1.0, 1.0)], [ta, tb])
    # batched (torch.matmul on N-d operands): batch dims of a and b, broadcast
    for ba, bb in (((4,), ()), ((), (3,)), ((2, 1), (3,)), ((3,), (3,)), ((1, 2), (3, 1)), ((2, 1, 2), (1, 2, 1))):
        for ta in (0, 1):
            for tb in (0, 1):
                def bmm(a, b, ta=ta, tb=tb):
                    return torch.matmul(a.transpose(-1, -2) if ta else a, b.transpose(-1, -2) if tb else b)
                c.add("matmul", bmm, [(ba + ((k, m) if ta else (m, k)), -1.0, 1.0),
                                      (bb + ((n, k) if tb else (k, n)), -1.0, 1.0)], [ta, tb])

    for act in (0, 1):
        x, w, b = uniform(g, (5, 7), -1, 1), uniform(g, (3, 7), -1, 1), uniform(g, (3,), -1, 1)
        pre = x @ w.T + b
        b = b + torch.where(pre.abs().min(0).values < 0.02, 0.05, 0.0)   # no pre-activation near 0
        assert (x @ w.T + b).abs().min() >= 0.01
        c.add("affine", lambda x, w, b, act=act: (torch.relu if act else (lambda v: v))(x @ w.T + b),
              [x, w, b], [act])

    shape = (3, 2, 5)
    for name, fn in (("sum", torch.sum), ("mean", torch.mean)):
        c.add(name, fn, [(shape, -2.0, 2.0)])
        for axis in (0, 1, 2, -1):
            for keep in (0, 1):
                c.add(name, lambda x, fn=fn, axis=axis, keep=keep: fn(x, axis, keepdim=bool(keep)),
                      [(shape, -2.0, 2.0)], [axis, keep])

    for new in ((5, 6), (30,), (3, 1, 10)):
        c.add("reshape", lambda x, new=new: x.reshape(new), [((2, 3, 5), -2.0, 2.0)], new)
    for src, d0, d1 in (((3, 5), 0, 1), ((2, 3, 5), 0, 2), ((2, 3, 5), 1, 2), ((2, 3, 5), 0, 1)):
        c.add("transpose", lambda x, d0=d0, d1=d1: x.transpose(d0, d1), [(src, -2.0, 2.0)], [d0, d1])
    for sa, sb, axis in (((2, 3), (3, 3), 0), ((3, 2), (3, 5), 1), ((2, 3, 1), (2, 3, 2), 2)):
        c.add("concat", lambda a, b, axis=axis: torch.cat([a, b], axis),
              [(sa, -2.0, 2.0), (sb, -2.0, 2.0)], [axis])
    for src, axis, start, length in (((3, 7), 1, 2, 3), ((3, 7), 0, 1, 2), ((2, 3, 5), 2, 0, 4)):
        c.add("narrow", lambda x, axis=axis, start=start, length=length: x.narrow(axis, start, length),
              [(src, -2.0, 2.0)], [axis, start, length])

    eps = torch.randn((3, 5), generator=g, dtype=F64)
    c.add("reparam", lambda mu, lv, eps: mu + torch.exp(lv / 2) * eps,
          [((3, 5), -2.0, 2.0), ((3, 5), -2.0, 2.0), eps], const=(2,))

    hard = (torch.rand((3, 5), generator=g, dtype=F64) < 0.5).to(F64)
    for y in [((3, 5), 0.0, 1.0), hard]:
        c.add("bce", lambda p, y: F.binary_cross_entropy(p, y, reduction="none"), [((3, 5), 0.02, 0.98), y])
        c.add("bce_logits", lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="none"),
              [((3, 5), -4.0, 4.0), y])

    # elementwise maps, comparisons and where
    # Scalar arguments: clamp [lo, hi] (+-inf: no bound), leaky_relu [slope],
    # elu [alpha]; where's first input is its cond, a constant (nonzero: true).
    def away_from(shape, lo, hi, points, gap=0.05):
        """Uniform in [lo, hi), every element at least gap from each of points (kinks)."""
        x = uniform(g, shape, lo, hi)
        for p in points:
            near = (x - p).abs() < gap
            x = torch.where(near, p + torch.where(x >= p, gap, -gap), x)
        return x

    c.add("abs", torch.abs, [away_from((5, 7), -2.0, 2.0, [0.0])])
    c.add("abs", torch.abs, [away_from((3, 1, 5), -2.0, 2.0, [0.0])])
    for lo, hi in ((-0.5, 0.7), (-float("inf"), 0.3), (-0.2, float("inf"))):
        kinks = [b for b in (lo, hi) if abs(b) != float("inf")]
        c.add("clamp", lambda x, lo=lo, hi=hi: torch.clamp(x, lo, hi), [away_from((4, 7), -2.0, 2.0, kinks)], [lo, hi])
    ties_a = uniform(g, (4, 5), -2.0, 2.0)
    ties_b = torch.where(torch.rand((4, 5), generator=g, dtype=F64) < 0.4, ties_a, uniform(g, (4, 5), -2.0, 2.0))
    for name, fn in (("maximum", torch.maximum), ("minimum", torch.minimum)):
        for sa, sb in (((3, 5), (3, 5)), ((2, 3), (3,)), ((4, 1), (1, 5)), ((2, 1, 3), (4, 1)), ((1,), (3, 7))):
            c.add(name, fn, [(sa, -2.0, 2.0), (sb, -2.0, 2.0)])
        c.add(name, fn, [ties_a, ties_b])        # ties: half the gradient each
    c.add("log1p", torch.log1p, [((3, 5), -0.9, 3.0)])
    c.add("log1p", torch.log1p, [((7,), -1e-9, 1e-9)])
    c.add("expm1", torch.expm1, [((3, 5), -3.0, 3.0)])
    c.add("expm1", torch.expm1, [((7,), -1e-9, 1e-9)])
    for slope in (0.01, 0.2, -0.3):
        c.add("leaky_relu", lambda x, s=slope: F.leaky_relu(x, s), [away_from((5, 7), -2.0, 2.0, [0.0])], [slope])
    for alpha in (1.0, 0.5):
        c.add("elu", lambda x, a=alpha: F.elu(x, a), [away_from((5, 7), -3.0, 2.0, [0.0])], [alpha])
    for shape in ((5, 7), (2, 1, 3)):
        c.add("gelu", F.gelu, [(shape, -4.0, 4.0)])
        c.add("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), [(shape, -4.0, 4.0)])
        c.add("silu", F.silu, [(shape, -6.0, 6.0)])
    for sc, sa, sb in (((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), (3, 4)), ((2, 1, 5), (3, 1), (5,)),
                       ((2, 1, 1), (2, 3), (1, 3))):
        cond = (torch.rand(sc, generator=g, dtype=F64) < 0.5).to(F64) * uniform(g, sc, -3.0, 3.0)
        cond.view(-1)[:2] = torch.tensor([2.5, 0.0])   # both branches taken (an all-zero gradient is not compared)
        c.add("where", lambda cnd, a, b: torch.where(cnd != 0, a, b), [cond, (sa, -2.0, 2.0), (sb, -2.0, 2.0)],
              const=(0,))

    # bce, bce_logits and reparam broadcast their inputs
    c.add("bce", lambda p, y: F.binary_cross_entropy(p.expand(3, 5), y.expand(3, 5), reduction="none"),
          [((3, 1), 0.02, 0.98), ((5,), 0.0, 1.0)])
    c.add("bce_logits", lambda x, y: F.binary_cross_entropy_with_logits(x.expand(2, 3, 4), y.expand(2, 3, 4),
                                                                        reduction="none"),
          [((3, 4), -4.0, 4.0), ((2, 1, 4), 0.0, 1.0)])
    eps_b = torch.randn((3, 5), generator=g, dtype=F64)
    c.add("reparam", lambda mu, lv, eps: mu + torch.exp(lv / 2) * eps,
          [((3, 5), -2.0, 2.0), ((5,), -2.0, 2.0), eps_b], const=(2,))
    c.add("reparam", lambda mu, lv, eps: mu + torch.exp(lv / 2) * eps,
          [((3, 1), -2.0, 2.0), ((1, 5), -2.0, 2.0), eps_b], const=(2,))

    # reductions and the softmax family
    shapes = [(5,), (3, 1, 5), (4, 7), (1, 6), (2, 3, 1, 3)]
    for k in range(3):                          # and random ones, odd sizes
        nd = int(torch.randint(1, 4, (1,), generator=g))
        shapes.append(tuple(int(d) for d in torch.randint(1, 6, (nd,), generator=g)))
    for name, fn in (("max", torch.max), ("min", torch.min)):
        c.add(name, fn, [((3, 5), -2.0, 2.0)])
        c.add(name, fn, [torch.tensor([[1.0, 3.0, -3.0], [3.0, -3.0, 2.0]], dtype=F64)])   # ties share
        c.add(name, lambda x, fn=fn: fn(x, 1).values,                                      # ties: first index
              [torch.tensor([[1.0, 3.0, 3.0], [-2.0, -2.0, 0.0]], dtype=F64)], [1, 0])
        for shape in shapes:
            for axis in range(-len(shape), len(shape)):
                for keep in (0, 1):
                    c.add(name, lambda x, fn=fn, axis=axis, keep=keep: fn(x, axis, keepdim=bool(keep)).values,
                          [(shape, -2.0, 2.0)], [axis, keep])
    for shape in shapes:
        for axis in range(-len(shape), len(shape)):
            for keep in (0, 1):
                c.add("logsumexp", lambda x, axis=axis, keep=keep: torch.logsumexp(x, axis, keepdim=bool(keep)),
                      [(shape, -3.0, 3.0)], [axis, keep])
            if shape[axis] == 1:
                continue   # softmax 1, log_softmax 0, gradient 0: all-zero tensors the comparison cannot scale
            for name, fn in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
                c.add(name, lambda x, fn=fn, axis=axis: fn(x, axis), [(shape, -3.0, 3.0)], [axis])
    for shape in ((4, 3), (2, 3, 5), (7,)):    # std: the whole torch.std, built by tg_std_axis
        for axis in range(-len(shape), len(shape)):
            for corr, keep in ((1, 0), (0, 1), (2, 0)):
                if shape[axis] <= corr:
                    continue                   # inf and NaN: test_ops_reduce.c pins those
                c.add("std", lambda x, axis=axis, corr=corr, keep=keep: torch.std(x, axis, correction=corr,
                                                                                  keepdim=bool(keep)),
                      [(shape, -2.0, 2.0)], [axis, corr, keep])
    big = torch.tensor([[1e4, -1e4, 0.0], [-50.0, 700.0, 699.0]], dtype=F64)  # max-subtracted exactly
    for name, fn in (("logsumexp", lambda x: torch.logsumexp(x, 1)), ("softmax", lambda x: torch.softmax(x, 1)),
                     ("log_softmax", lambda x: torch.log_softmax(x, 1))):
        c.add(name, fn, [big], [1, 0] if name == "logsumexp" else [1])
    for lshape, ignore in (((4, 5), -100), ((3, 4, 2), -100), ((2, 3, 2, 3), -100), ((6,), -100), ((4, 5), 2)):
        cls = lshape[1] if len(lshape) > 1 else lshape[0]
        yshape = (lshape[0],) + lshape[2:] if len(lshape) > 1 else ()
        y = torch.randint(0, cls, yshape, generator=g)
        if y.dim():
            y.view(-1)[0] = -100 if ignore == -100 else ignore           # one ignored label
        c.add("nll", lambda lp, y, ignore=ignore: F.nll_loss(lp, y.long(), reduction="none", ignore_index=ignore),
              [(lshape, -3.0, 0.0), y.to(F64)], [ignore], const=(1,))

    # shape and indexing
    # Scalar arguments: permute the dims; expand the new shape (-1 keeps a
    # size); concat [axis] (3 inputs here: the variadic cat); pad the F.pad
    # pads; slice [axis, start, stop, step] (stop 1e18: to the end); gather,
    # index_select, scatter_add [axis]; embedding []. Index tensors are float64
    # constants (requires_grad 0), cast to int64 on both sides.
    for src, dims in (((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (1, 2, 0)), ((2, 3, 4), (0, 2, 1)),
                      ((2, 3, 4), (-1, 0, 1)), ((2, 3, 4, 5), (3, 1, 0, 2)), ((2, 3, 4, 5), (0, 1, 2, 3))):
        c.add("permute", lambda x, dims=dims: x.permute(dims), [(src, -2.0, 2.0)], dims)
    for src, new in (((3, 1), (2, 3, 4)), ((3, 1), (2, -1, 4)), ((1, 4), (3, 4)), ((2, 1, 3), (2, 5, 3)),
                     ((4,), (2, 3, 4)), ((1, 1), (5, 1, 3))):
        c.add("expand", lambda x, new=new: x.expand(new), [(src, -2.0, 2.0)], new)
    base = (2, 3, 4)
    for axis in (0, 1, 2, -1):
        shapes = [tuple(n if k == axis % 3 else d for k, d in enumerate(base)) for n in (1, 3, 2)]
        c.add("concat", lambda a, b, d, axis=axis: torch.cat([a, b, d], axis), [(s_, -2.0, 2.0) for s_ in shapes], [axis])
    for src, pads in (((3, 4), (1, 2)), ((2, 3, 4), (0, 1, 2, 0)), ((2, 3, 4), (-1, 2, 1, -1)),
                      ((2, 3, 4), (1, 1, 1, 1, 1, 1)), ((2, 2), (5, 4)), ((3, 5), (-2, -1, 3, 0))):
        c.add("pad", lambda x, pads=pads: F.pad(x, pads), [(src, -2.0, 2.0)], pads)
    END = 10 ** 18
    for src, axis, start, stop, step in (((3, 7), 1, 0, 7, 2), ((3, 7), 1, -5, END, 3), ((4, 3), 0, 1, 100, 2),
                                         ((2, 7, 3), -2, -6, -1, 2), ((3, 4), 0, 0, END, 5), ((3, 7), 1, -100, 4, 1)):
        c.add("slice", lambda x, axis=axis, start=start, stop=stop, step=step:
              x[(slice(None),) * (axis % x.dim()) + (slice(start, None if stop == END else stop, step),)],
              [(src, -2.0, 2.0)], [axis, start, stop, step])

    def ix(*rows):
        return torch.tensor(rows, dtype=F64)
    gathers = (((3, 5), 1, ix([4, 0, 4, 4], [1, 1, 2, 4], [0, 3, 3, 4])), ((3, 5), 0, ix([2, 0, 2, 1, 0], [2, 2, 1, 0, 0])),
               ((2, 3, 4), -1, ix([[3, 3], [0, 1], [2, 3]], [[1, 1], [3, 0], [0, 0]])))
    for src, axis, index in gathers:
        c.add("gather", lambda x, i, axis=axis: torch.gather(x, axis, i.long()), [(src, -2.0, 2.0), index], [axis],
              const=(1,))
    for src, axis, index in (((5, 3), 0, [4, 0, 4, 2]), ((2, 5, 3), 1, [1, 4, 1]), ((2, 3, 4), -1, [3, 3, 3, 0, 3])):
        c.add("index_select", lambda x, i, axis=axis: torch.index_select(x, axis, i.long()),
              [(src, -2.0, 2.0), ix(*index)], [axis], const=(1,))
    for index in (ix([5, 1, 5], [0, 5, 2]), ix(3, 3, 0, 5)):
        c.add("embedding", lambda w, i: F.embedding(i.long(), w), [((6, 3), -2.0, 2.0), index], const=(1,))
    # src larger than index: PyTorch 1.13's backward fails on it (test_ops.c checks ours numerically)
    for xs, ss, axis, index in (((4, 3), (2, 3), 0, ix([3, 0, 3], [3, 3, 1])), ((2, 5), (2, 4), 1, ix([4, 4, 0, 4], [1, 2, 1, 1]))):
        c.add("scatter_add", lambda x, s_, i, axis=axis: torch.scatter_add(x, axis, i.long(), s_),
              [(xs, -2.0, 2.0), (ss, -2.0, 2.0), index], [axis], const=(2,))

    # linear algebra, custom ops
    # custom: tests/custom_op.c's user-defined y = a^3 b, through tg_custom
    c.add("custom", lambda a, b: a ** 3 * b, [((3, 4), -2.0, 2.0), ((3, 4), -2.0, 2.0)])
    c.add("custom", lambda a, b: a ** 3 * b, [((7,), -2.0, 2.0), ((7,), -2.0, 2.0)])

    # convolution
    # Scalar arguments: [sh, sw, ph, pw, dh, dw, oph, opw, groups] (oph, opw:
    # conv_transpose2d's output_padding, 0 for conv2d). Inputs x, w and, when
    # the op has one, the bias (a case with two inputs has none). Fixed cases
    # cover the corners (1x1 input, padding past the kernel, stride past the
    # kernel, dilation, output_padding, no bias, groups); random ones odd sizes.
    def conv_case(name, n, cin, cout, hw, k, s, p, d, op=(0, 0), groups=1, bias=True):
        t = name == "conv_transpose2d"
        wshape = (cin, cout // groups) + k if t else (cout, cin // groups) + k
        ins = [((n, cin) + hw, -1.0, 1.0), (wshape, -1.0, 1.0)] + ([((cout,), -1.0, 1.0)] if bias else [])
        fn = F.conv_transpose2d if t else F.conv2d
        kw = dict(stride=s, padding=p, dilation=d, groups=groups)
        if t:
            kw["output_padding"] = op
        c.add(name, lambda x, w, b=None, fn=fn, kw=kw: fn(x, w, b, **kw), ins,
              [s[0], s[1], p[0], p[1], d[0], d[1], op[0], op[1], groups])

    for name in ("conv2d", "conv_transpose2d"):
        t = name == "conv_transpose2d"
        conv_case(name, 2, 3, 4, (5, 4), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1) if t else (0, 0))
        conv_case(name, 1, 2, 3, (7, 5), (2, 3), (1, 2), (0, 1), (1, 1))              # non-square kernel
        conv_case(name, 2, 2, 2, (1, 1), (1, 1), (1, 1), (0, 0), (1, 1))              # 1x1 input
        conv_case(name, 2, 2, 3, (1, 1), (3, 3), (1, 1), (1, 1), (1, 1), bias=False)  # 1x1 input, k 3, no bias
        conv_case(name, 1, 3, 2, (7, 9), (2, 2), (1, 1), (3, 2), (1, 1))              # padding past the kernel
        conv_case(name, 2, 2, 3, (9, 8), (2, 3), (4, 5), (1, 0), (1, 1), (3, 4) if t else (0, 0))   # stride past it
        conv_case(name, 1, 2, 2, (9, 7), (3, 2), (2, 1), (2, 1), (2, 3), (1, 2) if t else (0, 0))   # dilation
        conv_case(name, 2, 4, 6, (6, 5), (3, 3), (1, 2), (1, 1), (1, 1), groups=2)   # groups
        conv_case(name, 1, 6, 3, (5, 5), (2, 2), (2, 1), (0, 1), (2, 1), groups=3, bias=False)
        conv_case(name, 3, 1, 4, (6, 6), (4, 4), (2, 2), (1, 1), (1, 1))              # the conv VAE's layer
        for _ in range(4):                                                             # random, odd sizes
            r = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))
            k, d, s = (r(1, 4), r(1, 4)), (r(1, 2), r(1, 2)), (r(1, 3), r(1, 3))
            p = (r(0, 3), r(0, 3))
            groups = r(1, 2)
            cin, cout = groups * r(1, 3), groups * r(1, 3)
            if t:
                hw = (r(1, 6), r(1, 6))
                op = tuple(r(0, max(s[i], d[i]) - 1) for i in range(2))
                if any((hw[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 <= 0 for i in range(2)):
                    p = (0, 0)
            else:
                op = (0, 0)
                hw = tuple(max(r(1, 9), d[i] * (k[i] - 1) + 1 - 2 * p[i]) for i in range(2))
            conv_case(name, r(1, 3), cin, cout, hw, k, s, p, d, op, groups, bias=r(0, 1) == 1)

    # pooling and upsampling
    # Scalar arguments: max_pool2d, avg_pool2d [kernel, stride, padding,
    # dilation, flags], each (h, w) pair packed as 100 h + w (stride 0: the
    # kernel; dilation 0: 1), flags = ceil_mode + 2 count_include_pad_off;
    # upsample_nearest2d [scale_h, scale_w]. Inputs are uniform draws, so no
    # ties, except one max_pool2d case of small integers (ties: the first in
    # the window wins, as PyTorch's CPU kernel; both sides agree).
    def pool_case(name, shape, k, s=(0, 0), p=(0, 0), d=(0, 0), ceil=False, cip=True, x=None):
        kw = dict(kernel_size=k, stride=s if s[0] else None, padding=p, ceil_mode=ceil)
        if name == "max_pool2d":
            fn = lambda x, kw=kw, d=d: F.max_pool2d(x, dilation=(d[0] or 1, d[1] or 1), **kw)
        else:
            fn = lambda x, kw=kw, cip=cip: F.avg_pool2d(x, count_include_pad=cip, **kw)
        args = [100 * k[0] + k[1], 100 * s[0] + s[1], 100 * p[0] + p[1], 100 * d[0] + d[1],
                int(ceil) + 2 * int(not cip)]
        c.add(name, fn, [x if x is not None else (shape, -2.0, 2.0)], args)

    pool_geoms = [((2, 3, 7, 9), (3, 3), (0, 0), (0, 0), False),   # stride = kernel, odd sizes
                  ((1, 2, 7, 8), (3, 2), (2, 1), (1, 1), False),   # non-square, overlapping, padded
                  ((1, 2, 6, 7), (2, 3), (2, 2), (1, 1), True),    # ceil_mode
                  ((1, 1, 5, 5), (3, 3), (2, 2), (1, 1), True),    # ceil_mode window past the padding
                  ((2, 1, 9, 7), (4, 3), (3, 2), (2, 1), True),
                  ((2, 3, 5, 4), (5, 4), (0, 0), (0, 0), False),   # global pooling
                  ((1, 2, 1, 1), (1, 1), (0, 0), (0, 0), False)]   # 1 x 1
    for shape, k, s_, p, ceil in pool_geoms:
        pool_case("max_pool2d", shape, k, s_, p, ceil=ceil)
        for cip in (True, False):
            pool_case("avg_pool2d", shape, k, s_, p, ceil=ceil, cip=cip)
    pool_case("max_pool2d", (2, 1, 9, 7), (3, 3), (2, 2), (1, 1), (2, 1))           # dilation
    pool_case("max_pool2d", (1, 1, 8, 9), (3, 3), (2, 2), (0, 0), (2, 2), ceil=True)
    pool_case("max_pool2d", (1, 2, 7, 6), (2, 3), (1, 2), (1, 1), (3, 1), ceil=True)
    ties = torch.randint(0, 3, (1, 2, 6, 7), generator=torch.Generator().manual_seed(5)).to(F64)
    pool_case("max_pool2d", None, (3, 3), (1, 1), (1, 1), x=ties)                    # ties, overlapping windows
    for shape, sc in (((2, 3, 3, 4), (2, 2)), ((1, 2, 3, 5), (2, 3)), ((1, 1, 4, 3), (3, 1)), ((2, 1, 1, 1), (1, 4))):
        c.add("upsample_nearest2d", lambda x, sc=sc: F.interpolate(x, scale_factor=sc, mode="nearest"),
              [(shape, -2.0, 2.0)], list(sc))

    # normalisation and dropout
    # Scalar arguments: layer_norm [normalized_ndim, eps]; batch_norm [training,
    # momentum, eps]; dropout [p, seed]. Inputs x, then weight and bias if affine.
    # batch_norm in eval normalises with the fixed running statistics
    # running_mean[c] = 0.3 c - 0.2, running_var[c] = 0.5 + 0.25 c (rebuilt alike
    # by test_torch_ops.c); in training it gets none (its output and gradients
    # do not depend on them: tests/test_norm.c checks their update).
    def norm_affine(shape, affine):
        return [(shape, 0.5, 1.5), (shape, -1.0, 1.0)] if affine else []

    for xs, nd, affine, eps in (((3, 7), 1, True, 1e-5), ((2, 3, 5), 2, True, 1e-5), ((5, 9), 1, False, 1e-5),
                                ((2, 3, 5), 2, False, 1e-3)):
        c.add("layer_norm", lambda x, *wb, nd=nd, eps=eps, xs=xs: F.layer_norm(
            x, xs[-nd:], *(wb or (None, None)), eps=eps), [(xs, -2.0, 2.0)] + norm_affine(xs[-nd:], affine),
            [nd, eps])

    def running(ch):
        return (torch.arange(ch, dtype=F64) * 0.3 - 0.2, torch.arange(ch, dtype=F64) * 0.25 + 0.5)

    for xs, training, affine, eps in (((5, 3), 1, True, 1e-5), ((3, 4, 7), 1, True, 1e-5),
                                      ((2, 3, 5, 3), 1, True, 1e-5), ((4, 3, 5), 1, False, 1e-3),
                                      ((5, 3), 0, True, 1e-5), ((3, 4, 7), 0, True, 1e-5),
                                      ((2, 3, 3, 5), 0, False, 1e-3)):
        def bn(x, *wb, training=training, eps=eps):
            rm, rv = running(x.shape[1]) if not training else (None, None)
            return F.batch_norm(x, rm, rv, *(wb or (None, None)), training=bool(training), momentum=0.1, eps=eps)
        c.add("batch_norm", bn, [(xs, -2.0, 2.0)] + norm_affine((xs[1],), affine), [training, 0.1, eps])

    # dropout: PyTorch's generator cannot be made to draw tg_rng's numbers, so
    # the mask is tapegrad's documented one rebuilt here from a port of tg_rng
    # (splitmix64 seeding, xoshiro256**, 53-bit uniforms): element i, in
    # row-major order, is kept with scale 1 / (1 - p) if u_i < 1 - p; PyTorch
    # then computes x * mask and its gradient.
    def tg_uniforms(seed, n):
        m64 = (1 << 64) - 1
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & m64
        s, st = [], seed
        for _ in range(4):
            st = (st + 0x9E3779B97F4A7C15) & m64
            z = ((st ^ (st >> 30)) * 0xBF58476D1CE4E5B9) & m64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m64
            s.append(z ^ (z >> 31))
        out = []
        for _ in range(n):
            r = (rotl((s[1] * 5) & m64, 7) * 9) & m64
            t = (s[1] << 17) & m64
            s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]
            s[2] ^= t; s[3] = rotl(s[3], 45)
            out.append((r >> 11) * 2.0 ** -53)
        return torch.tensor(out, dtype=F64)

    for xs, p, seed in (((5, 7), 0.3, 7), ((3, 4, 5), 0.8, 8)):
        u = tg_uniforms(seed, torch.Size(xs).numel()).reshape(xs)
        mask = torch.where(u < 1 - p, torch.full(xs, 1 / (1 - p), dtype=F64), torch.zeros(xs, dtype=F64))
        c.add("dropout", lambda x, mask=mask: x * mask, [(xs, -2.0, 2.0)], [p, seed])

    # Ops added since: appended here, so every earlier record keeps its bytes.
    # hardtanh [min_val, max_val] (+-inf: no bound). Random inputs keep 0.05
    # from the bounds; the last case puts elements exactly on them, where
    # PyTorch's gradient is 0 (clamp's is 1).
    for lo, hi, shape in ((-1.0, 1.0, (5, 7)), (-0.5, 2.0, (3, 1, 5)), (-float("inf"), 0.3, (4, 7))):
        kinks = [b for b in (lo, hi) if abs(b) != float("inf")]
        c.add("hardtanh", lambda x, lo=lo, hi=hi: F.hardtanh(x, lo, hi), [away_from(shape, -3.0, 3.0, kinks)],
              [lo, hi])
    on_bounds = torch.tensor([[-2.0, -0.5, -0.4999, 0.0, 1.25], [1.9999, 2.0, 2.5, -0.5, 2.0]], dtype=F64)
    c.add("hardtanh", lambda x: F.hardtanh(x, -0.5, 2.0), [on_bounds], [-0.5, 2.0])

    # bce_logits_sum: the summed loss of logits x against targets y of one
    # shape (soft targets, and hard ones), with the gradients of both.
    for shape in ((3, 5), (2, 3, 4)):
        c.add("bce_logits_sum", lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="sum"),
              [(shape, -4.0, 4.0), (shape, 0.0, 1.0)])
    hard = (torch.rand((4, 6), generator=g, dtype=F64) < 0.5).to(F64)
    c.add("bce_logits_sum", lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="sum"),
          [((4, 6), -6.0, 6.0), hard])

    return c


def build_reduce():
    """The cases of reduce.bin: a list of (x, labels or None, args, up, out, gx)."""
    g = torch.Generator().manual_seed(777)
    cases = []

    def add(fn, x, labels, args):
        x = x.clone().requires_grad_(True)
        out = fn(x)
        up = uniform(g, tuple(out.shape), -1.0, 1.0)
        gx, = torch.autograd.grad(out, [x], up)
        cases.append((x.detach(), labels, [float(a) for a in args], up, out.detach(), gx))

    for shape in ((5,), (3, 4), (2, 1, 5), (4, 3, 2)):
        for axis in range(-len(shape), len(shape)):
            for corr in (0, 1, 2):
                if shape[axis] - corr <= 0:
                    continue                 # NaN / inf: the edge tests pin those
                for keep in (0, 1):
                    for kind, fn in ((0, torch.var), (1, torch.std)):
                        add(lambda x, fn=fn, axis=axis, corr=corr, keep=keep:
                            fn(x, axis, correction=corr, keepdim=bool(keep)),
                            uniform(g, shape, -2.0, 2.0), None, [kind, axis, corr, keep])
    names = {0: "sum", 1: "mean", 2: "none"}
    for lshape in ((5, 4), (3, 4, 2), (4,)):
        yshape = (lshape[0],) + lshape[2:] if len(lshape) > 1 else ()
        y = torch.randint(0, lshape[1] if len(lshape) > 1 else lshape[0], yshape, generator=g)
        if y.dim():
            y.view(-1)[1] = -100            # an ignored label
        for red in (0, 1, 2):
            add(lambda x, y=y, red=red: F.nll_loss(x, y, reduction=names[red]),
                uniform(g, lshape, -3.0, 0.0), y, [2, red, 0, 0])
            add(lambda x, y=y, red=red: F.cross_entropy(x, y, reduction=names[red]),
                uniform(g, lshape, -3.0, 3.0), y, [3, red, 0, 0])
    return cases


def write_reduce(path, cases):
    """reduce.bin in the TGFIX001 format (all records float64)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    recs = [("count", torch.tensor([float(len(cases))], dtype=F64))]
    for k, (x, labels, args, up, out, gx) in enumerate(cases):
        recs += [("%d.x" % k, x), ("%d.args" % k, torch.tensor(args, dtype=F64)), ("%d.up" % k, up),
                 ("%d.out" % k, out), ("%d.gx" % k, gx)]
        if labels is not None:
            recs.append(("%d.labels" % k, labels.to(F64)))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"TGFIX001" + struct.pack("<I", len(recs)))
        for name, t in recs:
            nb = name.encode("ascii")
            f.write(struct.pack("<I", len(nb)) + nb + struct.pack("<I", 1) + tensor_bytes(t))
    os.replace(tmp, path)


def tensor_bytes(t):
    t = t.contiguous()
    return (struct.pack("<I", t.dim()) + b"".join(struct.pack("<Q", d) for d in t.shape)
            + struct.pack("<%dd" % t.numel(), *t.reshape(-1).tolist()))


def write(path, records):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<I", len(records)))
        for name, cid, args, ins, up, out, grads in records:
            nb = name.encode("ascii")
            f.write(struct.pack("<I", len(nb)) + nb + struct.pack("<II", cid, len(args)))
            f.write(struct.pack("<%dd" % len(args), *args) + struct.pack("<I", len(ins)))
            for rg, t in ins:
                f.write(struct.pack("<I", int(rg)) + tensor_bytes(t))
            f.write(tensor_bytes(up) + tensor_bytes(out))
            for gr in grads:
                f.write(tensor_bytes(gr))
    os.replace(tmp, path)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "ops.bin"))
    ap.add_argument("--reduce-out", default=os.path.join(root, "tests", "fixtures", "reduce.bin"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    c = build()
    write(args.out, c.records)
    rcases = build_reduce()
    write_reduce(args.reduce_out, rcases)
    print("torch %s: wrote %s (%d cases)" % (torch.__version__, args.reduce_out, len(rcases)))
    print("torch %s: wrote %s (%d bytes, %d cases)" % (torch.__version__, args.out,
                                                      os.path.getsize(args.out), len(c.records)))
    print("  " + ", ".join("%s %d" % kv for kv in c.per_op.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
