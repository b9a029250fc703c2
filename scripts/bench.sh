#!/bin/sh
# make bench: speed figures measured side by side in one run.
#   1. GEMM GFLOP/s on the VAE's shapes (bench/gemm_bench.c)
#   2. seconds per epoch of the reference VAE: build/seed_vae next to the
#      PyTorch textbook script (bench/torch_vae.py) at its best setting, one
#      thread; skipped with a message when PyTorch is absent.
# EPOCHS (default 2) epochs each; the faster epoch of each program is reported.
set -e
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-2}
DATA=${DATA:-}
[ -n "$DATA" ] || for d in data/mnist /usr/share/datasets/fashion-mnist; do
    ls "$d"/train-images-idx3-ubyte* >/dev/null 2>&1 && { DATA=$d; break; }
done
[ -n "$DATA" ] || { echo "bench: no dataset (make data, or apt-get install dataset-fashion-mnist)" >&2; exit 1; }

echo "== GEMM (float32, the VAE's shapes)"
build/gemm_bench

echo "== Reference VAE on $DATA, $EPOCHS epochs each, $(nproc) cores"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
build/seed_vae --data "$DATA" --epochs "$EPOCHS" > "$OUT/c.log"
c_s=$(sed -n 's/.*took \([0-9.]*\) s.*/\1/p' "$OUT/c.log" | sort -g | head -1)
c_rss=$(sed -n 's/^Peak memory: \([0-9.]*\) MB/\1/p' "$OUT/c.log")
PY=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
    "$p" -c "import torch, numpy" 2>/dev/null && { PY=$p; break; }
done
if [ -n "$PY" ]; then
    "$PY" bench/torch_vae.py --data "$DATA" --epochs "$EPOCHS" --threads 1 > "$OUT/py.log"
    py_s=$(sed -n 's/^epoch_seconds: \([0-9.]*\)/\1/p' "$OUT/py.log" | sort -g | head -1)
    py_rss=$(sed -n 's/.*peak_rss_mb=\([0-9.]*\).*/\1/p' "$OUT/py.log")
else
    echo "(PyTorch not installed: apt-get install python3-torch libopenblas0-pthread for the side-by-side figure)"
fi
awk -v c="$c_s" -v cr="$c_rss" -v p="${py_s:-}" -v pr="${py_rss:-}" 'BEGIN {
    printf "%-22s %9s %10s %12s\n", "program", "s/epoch", "images/s", "peak RSS MB"
    printf "%-22s %9.2f %10.0f %12s\n", "tapegrad seed_vae", c, 60000 / c, cr
    if (p != "") {
        printf "%-22s %9.2f %10.0f %12s\n", "PyTorch, 1 thread", p, 60000 / p, pr
        printf "speed ratio (PyTorch s/epoch / tapegrad s/epoch): %.2fx\n", p / c
    }
}'
