#!/bin/sh
# Convolution speed on the conv VAE's shapes, tapegrad next to PyTorch, in one
# run (the last part of make bench; runs alone too, after make build/conv_bench):
#   1. build/conv_bench: forward and forward+backward of each conv2d and
#      conv_transpose2d at 1 and 2 threads, ms, GFLOP/s, % of the FMA peak.
#   2. bench/torch_conv.py (when $PYTHON, default /usr/bin/python3, imports torch):
#      the same with PyTorch at its fastest setting per row.
#   3. build/conv_bench again, after PyTorch.
#   4. Per shape, pass and thread count, PyTorch ms / tapegrad ms (> 1: tapegrad
#      is faster), tapegrad's ms the faster of its two passes.
# MIN_SECONDS (default 0.3): the least time spent timing each case.
set -e
cd "$(dirname "$0")/.."
MIN_SECONDS=${MIN_SECONDS:-0.3}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "-- tapegrad (bench/conv_bench.c)"
build/conv_bench "$MIN_SECONDS" | tee "$OUT/c.txt"

PY=
for p in ${PYTHON:-/usr/bin/python3}; do
    "$p" -c "import torch" 2>/dev/null && { PY=$p; break; }
done
if [ -z "$PY" ]; then
    echo "(PyTorch not installed: apt-get install python3-torch libopenblas0-pthread for the side-by-side figures)"
    exit 0
fi
echo
echo "-- PyTorch (bench/torch_conv.py)"
peak=$(sed -n 's/^Peak .*: \([0-9.]*\) GFLOP\/s on 1 thread, \([0-9.]*\) on 2 threads/\1,\2/p' "$OUT/c.txt")
"$PY" bench/torch_conv.py --min-seconds "$MIN_SECONDS" ${peak:+--peak "$peak"} | tee "$OUT/py.txt"

# tapegrad again, after PyTorch: each row takes the faster of its two passes,
# so a burst of other load on a shared machine during one pass does not
# decide the row (PyTorch's rows are already the fastest of its settings).
echo
echo "-- tapegrad again, after PyTorch"
build/conv_bench "$MIN_SECONDS" | tee "$OUT/c2.txt"

echo
echo "-- ratio PyTorch ms / tapegrad ms (> 1: tapegrad is faster; tapegrad: the faster of its two passes)"
# Table rows start with the shape's key (conv2d:... or convT2d:...): name pass thr ms ...
awk '$1 ~ /^conv/ {
        key = $1 " " $2 " " $3
        if (FILENAME == ARGV[1]) { c[key] = $4; order[++n] = key }
        else if (FILENAME == ARGV[2]) { if ($4 < c[key]) c[key] = $4 }
        else { p[key] = $4; set[key] = $7 }
     }
     END {
        printf "%-21s %-7s %3s %12s %11s %7s  %s\n", "shape", "pass", "thr", "tapegrad ms", "PyTorch ms", "ratio", "PyTorch setting"
        for (i = 1; i <= n; i++) {
            k = order[i]; split(k, f, " ")
            if (k in p) printf "%-21s %-7s %3s %12.3f %11.3f %7.2f  %s\n", f[1], f[2], f[3], c[k], p[k], p[k] / c[k], set[k]
            else printf "%-21s %-7s %3s %12.3f %11s\n", f[1], f[2], f[3], c[k], "-"
        }
     }' "$OUT/c.txt" "$OUT/c2.txt" "$OUT/py.txt"
