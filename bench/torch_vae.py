#!/usr/bin/env python3
r"""PyTorch reference for the tapegrad VAE benchmark.

This is the textbook PyTorch VAE example (784-400-20-400-784, BCE + KL loss,
Adam lr 1e-3, batch 128) with the torchvision dataset replaced by a direct
reader for MNIST-format IDX files (gzip-compressed or raw), so it runs on
MNIST or Fashion-MNIST without network access.

Output lines follow the textbook example:
    Train Epoch: E [N/60000 (P%)]\tLoss: L     every 100 batches, per image
    ====> Epoch: E Average loss: L            train loss sum / train size
    ====> Test set loss: L                    test loss sum / test size
plus, per epoch, `epoch_seconds: S` (training part only) and at the end
    RESULT seconds_per_epoch=S final_test_loss=L peak_rss_mb=M
where S is the mean of the per-epoch training times and M the peak resident
set size of the process.

--threads T sets torch.set_num_threads(T) and also OPENBLAS_NUM_THREADS=T and
OMP_NUM_THREADS=T (and OMP_WAIT_POLICY=PASSIVE unless already set) before
torch is loaded, so that T really bounds the number of busy threads.
--flush-denormal calls torch.set_flush_denormal(True) (x86 only).

Example:
    python3 bench/torch_vae.py --data /usr/share/datasets/fashion-mnist --epochs 10 --threads 1
"""

import argparse
import gzip
import os
import resource
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


# --------------------------------------------------------------------------
# IDX reader
# --------------------------------------------------------------------------

def find_idx(data_dir, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    return None


def read_idx_images(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        buf = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", buf[:16])
    if magic != 0x00000803:
        raise ValueError("%s: not an IDX image file (magic 0x%08x)" % (path, magic))
    pixels = np.frombuffer(buf, dtype=np.uint8, count=n * rows * cols, offset=16)
    return pixels.reshape(n, rows * cols)


def has_dataset(data_dir):
    return all(find_idx(data_dir, s) for s in
               ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"))


def load_split(data_dir, stem):
    path = find_idx(data_dir, stem)
    if path is None:
        sys.exit("error: %s(.gz) not found in %s" % (stem, data_dir))
    # Pixels / 255 as float32, like transforms.ToTensor() (in place, so the
    # peak memory holds a single float32 copy of the images).
    images = read_idx_images(path).astype(np.float32)
    images /= np.float32(255.0)
    return torch.from_numpy(images)


def parse_args():
    default_data = os.path.join(ROOT, "data", "mnist")
    if not has_dataset(default_data):
        default_data = SYSTEM_FASHION_MNIST
    parser = argparse.ArgumentParser(description="VAE reference benchmark (PyTorch)")
    parser.add_argument("--data", default=default_data,
                        help="directory with {train,t10k}-images-idx3-ubyte[.gz] "
                             "(default: data/mnist if present, else %s)" % SYSTEM_FASHION_MNIST)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="threads for torch (set_num_threads) and its BLAS (default 1)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--flush-denormal", action="store_true",
                        help="torch.set_flush_denormal(True): subnormal floats become zero, as in tapegrad's "
                             "Adam step (they make x86 arithmetic much slower once training produces them)")
    parser.add_argument("--log-interval", type=int, default=100)
    return parser.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    # torch.set_num_threads() does not reach the OpenBLAS thread pool that
    # Debian's torch uses for matmul; its size is read from the environment
    # when the library loads, so it is set here, before torch is imported.
    # With more than one thread, OpenMP workers that spin-wait between
    # parallel regions compete with the OpenBLAS workers for the same cores
    # (an epoch can become tens of times slower when the machine has any
    # other load), so idle OpenMP workers sleep instead unless the
    # environment says otherwise.
    os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn, optim  # noqa: E402


# --------------------------------------------------------------------------
# Model (textbook)
# --------------------------------------------------------------------------

class VAE(nn.Module):
    def __init__(self):
        super(VAE, self).__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc_mu = nn.Linear(400, 20)
        self.fc_logvar = nn.Linear(400, 20)
        self.fc2 = nn.Linear(20, 400)
        self.fc3 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc_mu(h1), self.fc_logvar(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc2(z))
        return torch.sigmoid(self.fc3(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


# Reconstruction + KL divergence losses summed over all elements and batch
def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')
    # see Appendix B from VAE paper:
    # Kingma and Welling. Auto-Encoding Variational Bayes. ICLR, 2014
    # 0.5 * sum(1 + log(sigma^2) - mu^2 - sigma^2)
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


def main(args):
    torch.set_num_threads(args.threads)
    if args.flush_denormal and not torch.set_flush_denormal(True):
        sys.exit("--flush-denormal: this CPU cannot flush subnormals (torch.set_flush_denormal returned False)")
    torch.manual_seed(args.seed)
    shuffle_gen = torch.Generator().manual_seed(args.seed)

    print("data: %s, torch %s, threads %d" % (args.data, torch.__version__,
                                             torch.get_num_threads()), file=sys.stderr)
    train_x = load_split(args.data, "train-images-idx3-ubyte")
    test_x = load_split(args.data, "t10k-images-idx3-ubyte")
    n_train, n_test = train_x.shape[0], test_x.shape[0]
    n_train_batches = (n_train + args.batch - 1) // args.batch

    model = VAE()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    def train(epoch):
        model.train()
        train_loss = 0
        perm = torch.randperm(n_train, generator=shuffle_gen)
        for batch_idx in range(n_train_batches):
            data = train_x[perm[batch_idx * args.batch:(batch_idx + 1) * args.batch]]
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(data)
            loss = loss_function(recon_batch, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
            if batch_idx % args.log_interval == 0:
                print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                    epoch, batch_idx * len(data), n_train,
                    100. * batch_idx / n_train_batches,
                    loss.item() / len(data)))
        print('====> Epoch: {} Average loss: {:.4f}'.format(
            epoch, train_loss / n_train))

    def test(epoch):
        model.eval()
        test_loss = 0
        with torch.no_grad():
            for start in range(0, n_test, args.batch):
                data = test_x[start:start + args.batch]
                recon_batch, mu, logvar = model(data)
                test_loss += loss_function(recon_batch, data, mu, logvar).item()
        test_loss /= n_test
        print('====> Test set loss: {:.4f}'.format(test_loss))
        return test_loss

    epoch_times = []
    test_loss = float("nan")
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        train(epoch)
        dt = time.perf_counter() - t0
        epoch_times.append(dt)
        print('epoch_seconds: {:.3f}'.format(dt))
        test_loss = test(epoch)
        sys.stdout.flush()

    # ru_maxrss is in kilobytes on Linux.
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    seconds_per_epoch = sum(epoch_times) / len(epoch_times) if epoch_times else float("nan")
    print('RESULT seconds_per_epoch={:.3f} final_test_loss={:.4f} peak_rss_mb={:.1f}'.format(
        seconds_per_epoch, test_loss, peak_rss_mb))


if __name__ == "__main__":
    main(ARGS)
