#!/usr/bin/env python3
"""Generate (and verify) tests/fixtures/vae_ref.bin, the PyTorch reference
for the tapegrad VAE.

Usage:
    python3 scripts/make_fixtures.py            # write the fixture, then verify it
    python3 scripts/make_fixtures.py --check    # only verify an existing fixture
    python3 scripts/make_fixtures.py --out P    # write/verify another path

Generation needs PyTorch and NumPy; --check needs only NumPy.  This script is
run by developers when the reference has to change; CI only reads the file.
The file format and the meaning of every record are described in
tests/fixtures/README.md.

Reference model (the textbook PyTorch VAE):
    h      = relu(fc1(x))                    fc1: 784 -> 400
    mu     = fc_mu(h), logvar = fc_logvar(h) 400 -> 20 each
    z      = mu + exp(0.5 * logvar) * eps    eps fixed, stored in the file
    recon  = sigmoid(fc3(relu(fc2(z))))      fc2: 20 -> 400, fc3: 400 -> 784
    loss   = BCE(recon, x, reduction='sum')
             - 0.5 * sum(1 + logvar - mu^2 - exp(logvar))

Initial weights and inputs are drawn in float32 with torch.manual_seed(0)
(PyTorch default Linear init), stored as float32, and then every reference
quantity is computed in float64 starting from exactly those float32 values.
"""

import argparse
import os
import struct
import sys

import numpy as np

MAGIC = b"TGFIX001"
DTYPE_F32 = 0
DTYPE_F64 = 1
DTYPES = {DTYPE_F32: np.dtype("<f4"), DTYPE_F64: np.dtype("<f8")}

BATCH = 32
IN_DIM = 784
HID = 400
LATENT = 20
SEED = 0
ADAM_STEPS = 5
ADAM_LR = 1e-3
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

# Parameter order used throughout the file (module order, weight then bias).
PARAM_SHAPES = [
    ("fc1.weight", (HID, IN_DIM)),
    ("fc1.bias", (HID,)),
    ("fc_mu.weight", (LATENT, HID)),
    ("fc_mu.bias", (LATENT,)),
    ("fc_logvar.weight", (LATENT, HID)),
    ("fc_logvar.bias", (LATENT,)),
    ("fc2.weight", (HID, LATENT)),
    ("fc2.bias", (HID,)),
    ("fc3.weight", (IN_DIM, HID)),
    ("fc3.bias", (IN_DIM,)),
]
PARAM_NAMES = [n for n, _ in PARAM_SHAPES]


def expected_layout():
    """(name, dtype, shape) of every record, in file order."""
    recs = [("x", DTYPE_F32, (BATCH, IN_DIM)), ("eps", DTYPE_F32, (BATCH, LATENT))]
    recs += [("init." + n, DTYPE_F32, s) for n, s in PARAM_SHAPES]
    recs += [("loss", DTYPE_F64, (1,)), ("bce", DTYPE_F64, (1,)), ("kl", DTYPE_F64, (1,))]
    recs += [("grad." + n, DTYPE_F32, s) for n, s in PARAM_SHAPES]
    recs += [("adam5." + n, DTYPE_F32, s) for n, s in PARAM_SHAPES]
    recs += [("adam_losses", DTYPE_F64, (ADAM_STEPS,))]
    return recs


# --------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------

def write_fixture(path, records):
    """records: list of (name, dtype_code, numpy array)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<I", len(records)))
        for name, code, arr in records:
            arr = np.ascontiguousarray(arr, dtype=DTYPES[code])
            nb = name.encode("ascii")
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<II", code, arr.ndim))
            for d in arr.shape:
                f.write(struct.pack("<Q", d))
            f.write(arr.tobytes(order="C"))
    os.replace(tmp, path)


def generate(path):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(IN_DIM, HID)
            self.fc_mu = nn.Linear(HID, LATENT)
            self.fc_logvar = nn.Linear(HID, LATENT)
            self.fc2 = nn.Linear(LATENT, HID)
            self.fc3 = nn.Linear(HID, IN_DIM)

        def encode(self, x):
            h = F.relu(self.fc1(x))
            return self.fc_mu(h), self.fc_logvar(h)

        def reparameterize(self, mu, logvar, eps):
            return mu + torch.exp(0.5 * logvar) * eps

        def decode(self, z):
            return torch.sigmoid(self.fc3(F.relu(self.fc2(z))))

        def forward(self, x, eps):
            mu, logvar = self.encode(x)
            z = self.reparameterize(mu, logvar, eps)
            return self.decode(z), mu, logvar

    def loss_parts(model, x, eps):
        recon, mu, logvar = model(x, eps)
        bce = F.binary_cross_entropy(recon, x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return bce + kl, bce, kl

    torch.manual_seed(SEED)
    model32 = VAE()                            # PyTorch default init, float32
    x32 = torch.rand(BATCH, IN_DIM)            # gray pixels in [0, 1)
    eps32 = torch.randn(BATCH, LATENT)
    names = [n for n, _ in model32.named_parameters()]
    assert names == PARAM_NAMES, names
    init32 = {n: p.detach().clone() for n, p in model32.named_parameters()}

    def fresh_model64():
        m = VAE()
        with torch.no_grad():
            for n, p in m.named_parameters():
                p.copy_(init32[n])
        return m.double()

    x = x32.double()
    eps = eps32.double()

    # Loss, its parts and the gradient at the initial point.
    model = fresh_model64()
    loss, bce, kl = loss_parts(model, x, eps)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}

    # Five Adam steps from the same initial point, same x and eps every step.
    model = fresh_model64()
    opt = torch.optim.Adam(model.parameters(), lr=ADAM_LR, betas=ADAM_BETAS,
                           eps=ADAM_EPS, weight_decay=0.0, amsgrad=False)
    adam_losses = []
    for _ in range(ADAM_STEPS):
        opt.zero_grad()
        l, _, _ = loss_parts(model, x, eps)
        l.backward()
        adam_losses.append(l.item())
        opt.step()
    adam5 = {n: p.detach().clone() for n, p in model.named_parameters()}

    # Float32 run of the same computation, only used to report how far a
    # float32 implementation can be expected to land from the reference.
    model = VAE()
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(init32[n])
    l32, _, _ = loss_parts(model, x32, eps32)
    l32.backward()
    g32 = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=ADAM_LR, betas=ADAM_BETAS, eps=ADAM_EPS)
    losses32 = []
    for _ in range(ADAM_STEPS):
        opt.zero_grad()
        l, _, _ = loss_parts(model, x32, eps32)
        l.backward()
        losses32.append(l.item())
        opt.step()
    a32 = {n: p.detach().clone() for n, p in model.named_parameters()}

    records = [("x", DTYPE_F32, x32.numpy()), ("eps", DTYPE_F32, eps32.numpy())]
    records += [("init." + n, DTYPE_F32, init32[n].numpy()) for n in PARAM_NAMES]
    records += [("loss", DTYPE_F64, np.array([loss.item()])),
                ("bce", DTYPE_F64, np.array([bce.item()])),
                ("kl", DTYPE_F64, np.array([kl.item()]))]
    records += [("grad." + n, DTYPE_F32, grads[n].numpy()) for n in PARAM_NAMES]
    records += [("adam5." + n, DTYPE_F32, adam5[n].numpy()) for n in PARAM_NAMES]
    records += [("adam_losses", DTYPE_F64, np.array(adam_losses))]
    write_fixture(path, records)

    print("torch %s, numpy %s" % (torch.__version__, np.__version__))
    print("wrote %s (%d bytes, %d records)" % (path, os.path.getsize(path), len(records)))
    print("loss %.10f  bce %.10f  kl %.10f" % (loss.item(), bce.item(), kl.item()))
    print("adam_losses " + " ".join("%.10f" % v for v in adam_losses))
    print("float32 torch vs float64 reference, max|f32 - ref| / max|ref|:")
    print("  %-24s %.3e" % ("loss", abs(l32.item() - loss.item()) / abs(loss.item())))
    print("  %-24s %.3e" % ("adam_losses", np.abs(np.array(losses32) - np.array(adam_losses)).max()
                            / np.abs(np.array(adam_losses)).max()))
    for n in PARAM_NAMES:
        rg = grads[n].numpy()
        ra = adam5[n].numpy()
        eg = np.abs(g32[n].double().numpy() - rg).max() / np.abs(rg).max()
        ea = np.abs(a32[n].double().numpy() - ra).max() / np.abs(ra).max()
        print("  grad.%-19s %.3e   adam5.%-19s %.3e" % (n, eg, n, ea))


# --------------------------------------------------------------------------
# Independent reader and checker (NumPy only, no torch)
# --------------------------------------------------------------------------

def read_fixture(path):
    """Return an ordered list of (name, dtype_code, array) read from path."""
    with open(path, "rb") as f:
        buf = f.read()
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(buf):
            raise ValueError("truncated file at offset %d (need %d bytes)" % (pos, n))
        out = buf[pos:pos + n]
        pos += n
        return out

    if take(8) != MAGIC:
        raise ValueError("bad magic")
    (count,) = struct.unpack("<I", take(4))
    out = []
    for _ in range(count):
        (nlen,) = struct.unpack("<I", take(4))
        name = take(nlen).decode("ascii")
        code, ndim = struct.unpack("<II", take(8))
        if code not in DTYPES:
            raise ValueError("record %s: unknown dtype %d" % (name, code))
        dims = struct.unpack("<%dQ" % ndim, take(8 * ndim))
        n = int(np.prod(dims, dtype=np.int64)) if ndim else 1
        dt = DTYPES[code]
        arr = np.frombuffer(take(n * dt.itemsize), dtype=dt).reshape(dims)
        out.append((name, code, arr))
    if pos != len(buf):
        raise ValueError("%d trailing bytes after last record" % (len(buf) - pos))
    return out


def _np_loss_and_grad(p, x, eps):
    """Float64 forward + hand-written backward of the VAE loss."""
    h1p = x @ p["fc1.weight"].T + p["fc1.bias"]
    h = np.maximum(h1p, 0.0)
    mu = h @ p["fc_mu.weight"].T + p["fc_mu.bias"]
    lv = h @ p["fc_logvar.weight"].T + p["fc_logvar.bias"]
    std = np.exp(0.5 * lv)
    z = mu + std * eps
    h2p = z @ p["fc2.weight"].T + p["fc2.bias"]
    h2 = np.maximum(h2p, 0.0)
    logits = h2 @ p["fc3.weight"].T + p["fc3.bias"]
    r = 1.0 / (1.0 + np.exp(-logits))
    bce = -np.sum(x * np.maximum(np.log(r), -100.0)
                  + (1.0 - x) * np.maximum(np.log1p(-r), -100.0))
    kl = -0.5 * np.sum(1.0 + lv - mu ** 2 - np.exp(lv))

    g = {}
    dlog = r - x
    g["fc3.weight"] = dlog.T @ h2
    g["fc3.bias"] = dlog.sum(0)
    dh2p = (dlog @ p["fc3.weight"]) * (h2p > 0)
    g["fc2.weight"] = dh2p.T @ z
    g["fc2.bias"] = dh2p.sum(0)
    dz = dh2p @ p["fc2.weight"]
    dmu = dz + mu
    dlv = dz * eps * 0.5 * std + 0.5 * (np.exp(lv) - 1.0)
    g["fc_mu.weight"] = dmu.T @ h
    g["fc_mu.bias"] = dmu.sum(0)
    g["fc_logvar.weight"] = dlv.T @ h
    g["fc_logvar.bias"] = dlv.sum(0)
    dh1p = (dmu @ p["fc_mu.weight"] + dlv @ p["fc_logvar.weight"]) * (h1p > 0)
    g["fc1.weight"] = dh1p.T @ x
    g["fc1.bias"] = dh1p.sum(0)
    return bce + kl, bce, kl, g


def check(path, verbose=True):
    recs = read_fixture(path)
    layout = expected_layout()
    problems = []
    if [(n, c, tuple(a.shape)) for n, c, a in recs] != [(n, c, s) for n, c, s in layout]:
        problems.append("record names/dtypes/shapes differ from the documented layout")
        for (n, c, a), (en, ec, es) in zip(recs, layout):
            if (n, c, tuple(a.shape)) != (en, ec, es):
                problems.append("  got %s dtype %d %s, expected %s dtype %d %s"
                                % (n, c, tuple(a.shape), en, ec, es))
        if len(recs) != len(layout):
            problems.append("  got %d records, expected %d" % (len(recs), len(layout)))
        raise SystemExit("CHECK FAILED:\n" + "\n".join(problems))

    d = {n: a.astype(np.float64) for n, _, a in recs}
    for n, a in d.items():
        if not np.all(np.isfinite(a)):
            problems.append("%s has non-finite values" % n)
    if not (d["x"].min() >= 0.0 and d["x"].max() < 1.0):
        problems.append("x outside [0, 1)")

    x, eps = d["x"], d["eps"]
    params = {n: d["init." + n] for n in PARAM_NAMES}

    def rel(a, b):
        return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))

    # Float64 recomputation from the stored float32 inputs.
    loss, bce, kl, grads = _np_loss_and_grad(params, x, eps)
    report = [("loss", rel(np.array([loss]), d["loss"]), 1e-10),
              ("bce", rel(np.array([bce]), d["bce"]), 1e-10),
              ("kl", rel(np.array([kl]), d["kl"]), 1e-10),
              ("loss == bce + kl", rel(d["bce"] + d["kl"], d["loss"]), 1e-12),
              ("adam_losses[0] == loss", rel(d["adam_losses"][:1], d["loss"]), 1e-12)]
    # Gradients are stored as float32: allow float32 rounding only.
    for n in PARAM_NAMES:
        report.append(("grad." + n, rel(grads[n], d["grad." + n]), 1e-6))

    # Five Adam steps (PyTorch formulation) in float64.
    b1, b2 = ADAM_BETAS
    m = {n: np.zeros_like(v) for n, v in params.items()}
    v2 = {n: np.zeros_like(v) for n, v in params.items()}
    p = {n: v.copy() for n, v in params.items()}
    losses = []
    for t in range(1, ADAM_STEPS + 1):
        lt, _, _, gt = _np_loss_and_grad(p, x, eps)
        losses.append(lt)
        bc1 = 1.0 - b1 ** t
        bc2 = 1.0 - b2 ** t
        for n in PARAM_NAMES:
            m[n] = b1 * m[n] + (1.0 - b1) * gt[n]
            v2[n] = b2 * v2[n] + (1.0 - b2) * gt[n] * gt[n]
            denom = np.sqrt(v2[n]) / np.sqrt(bc2) + ADAM_EPS
            p[n] = p[n] - (ADAM_LR / bc1) * m[n] / denom
    report.append(("adam_losses", rel(np.array(losses), d["adam_losses"]), 1e-10))
    for n in PARAM_NAMES:
        report.append(("adam5." + n, rel(p[n], d["adam5." + n]), 1e-6))

    for name, err, tol in report:
        if err > tol:
            problems.append("%s: rel err %.3e > %.0e" % (name, err, tol))
    if verbose:
        print("read %s: %d records, %d bytes" % (path, len(recs), os.path.getsize(path)))
        print("loss %.10f  bce %.10f  kl %.10f" % (d["loss"][0], d["bce"][0], d["kl"][0]))
        print("independent NumPy float64 recomputation, max|np - file| / max|file|:")
        for name, err, tol in report:
            print("  %-26s %.3e  (limit %.0e)" % (name, err, tol))
    if problems:
        raise SystemExit("CHECK FAILED:\n  " + "\n  ".join(problems))
    if verbose:
        print("CHECK OK")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "vae_ref.bin"),
                    help="fixture path (default: tests/fixtures/vae_ref.bin)")
    ap.add_argument("--check", action="store_true",
                    help="only verify an existing fixture (needs NumPy, not torch)")
    args = ap.parse_args()
    if not args.check:
        generate(args.out)
    check(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
