#!/bin/sh
# make bench: speed figures, measured side by side in one run.
#   1. GEMM GFLOP/s on the VAE's shapes at 1 and 2 threads, next to the
#      machine's FMA peak and, when NumPy is installed, OpenBLAS
#      (bench/gemm_bench.c runs bench/numpy_gemm.py).
#   2. The reference VAE's seconds per epoch, images/s and peak RSS at 1 and 2
#      threads, next to the PyTorch textbook script (bench/torch_vae.py) at 1
#      and 2 threads, and the ratio to PyTorch's best setting. PyTorch is
#      skipped with a message when absent. The two tapegrad runs' checkpoints
#      are compared byte for byte.
# EPOCHS (default 2) epochs per run; each run reports its fastest epoch.
set -e
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-2}
DATA=${DATA:-}
[ -n "$DATA" ] || for d in data/mnist /usr/share/datasets/fashion-mnist; do
    ls "$d"/train-images-idx3-ubyte* >/dev/null 2>&1 && { DATA=$d; break; }
done
[ -n "$DATA" ] || { echo "bench: no dataset (make data, or apt-get install dataset-fashion-mnist)" >&2; exit 1; }

PY=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
    "$p" -c "import torch" 2>/dev/null && { PY=$p; break; }
done

echo "== GEMM, float32, the VAE's shapes (OpenBLAS columns when NumPy is installed)"
build/gemm_bench

echo
echo "== Reference VAE on $DATA, $EPOCHS epochs per run, $(nproc) cores"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
row() {  # name seconds rss
    awk -v n="$1" -v s="$2" -v r="$3" 'BEGIN { printf "%-26s %9.2f %10.0f %12s\n", n, s, 60000 / s, r }'
}
printf '%-26s %9s %10s %12s\n' program "s/epoch" "images/s" "peak RSS MB"
best_c=
for th in 1 2; do
    build/seed_vae --data "$DATA" --epochs "$EPOCHS" --threads $th --save "$OUT/c$th.safetensors" > "$OUT/c$th.log"
    s=$(sed -n 's/.*took \([0-9.]*\) s.*/\1/p' "$OUT/c$th.log" | sort -g | head -1)
    row "tapegrad, $th thread(s)" "$s" "$(sed -n 's/^Peak memory: \([0-9.]*\) MB/\1/p' "$OUT/c$th.log")"
    eval "c$th=$s"
done
if cmp -s "$OUT/c1.safetensors" "$OUT/c2.safetensors"; then
    echo "checkpoints after --threads 1 and --threads 2: byte-identical"
else
    echo "checkpoints after --threads 1 and --threads 2: DIFFERENT"
fi
best_py=
if [ -n "$PY" ]; then
    for th in 1 2; do
        "$PY" bench/torch_vae.py --data "$DATA" --epochs "$EPOCHS" --threads $th > "$OUT/py$th.log" 2>/dev/null
        s=$(sed -n 's/^epoch_seconds: \([0-9.]*\)/\1/p' "$OUT/py$th.log" | sort -g | head -1)
        row "PyTorch, $th thread(s)" "$s" "$(sed -n 's/.*peak_rss_mb=\([0-9.]*\).*/\1/p' "$OUT/py$th.log")"
        best_py=$(awk -v a="$best_py" -v b="$s" 'BEGIN { print (a == "" || b < a) ? b : a }')
    done
    awk -v p="$best_py" -v c1="$c1" -v c2="$c2" 'BEGIN {
        printf "ratio to PyTorch at its best (%.2f s/epoch): %.2fx at 1 thread, %.2fx at 2 threads\n", p, p / c1, p / c2 }'
else
    echo "(PyTorch not installed: apt-get install python3-torch libopenblas0-pthread for the side-by-side figures)"
fi
