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
#   3. `vae eval --iw IW` (default 1000 importance samples per image) on the
#      first IW_IMAGES test images (default 1000 of 10,000: the whole set takes
#      minutes per run), at 1 and 2 threads: seconds, images/s, peak RSS, and
#      the nll, next to PyTorch (bench/torch_iw.py, same model, same images) at
#      1 and 2 threads, and the ratio to PyTorch's best. Both read the same
#      directory, build/bench-iw-data-N/, which holds the first N images of
#      each split. The model is a 1-epoch run, build/bench-iw-run/, trained
#      once and reused.
#   4. Convolutions on the conv VAE's shapes, forward and forward+backward at
#      1 and 2 threads, next to PyTorch at its fastest setting, and the ratio
#      (scripts/bench_conv.sh: bench/conv_bench.c, bench/torch_conv.py).
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

echo
IW=${IW:-1000}
IW_IMAGES=${IW_IMAGES:-1000}
RUN=build/bench-iw-run
if [ ! -f "$RUN/model.safetensors" ]; then
    build/vae train --model vae --epochs 1 --data "$DATA" --out "$RUN" > "$OUT/iw-train.log"
fi
idx_cat() {  # an IDX file, raw or gzipped (the raw one first, as the loader)
    if [ -f "$1" ]; then cat "$1"; else gzip -dc "$1.gz"; fi
}
be32() {  # n as 4 bytes, big-endian
    printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)))"
}
n_test=$(idx_cat "$DATA/t10k-labels-idx1-ubyte" | head -c 8 | od -An -tu1 | awk '{ print (($5 * 256 + $6) * 256 + $7) * 256 + $8 }')
[ "$IW_IMAGES" -le "$n_test" ] || IW_IMAGES=$n_test
SUB=build/bench-iw-data-$IW_IMAGES
if [ "$(cat "$SUB/source" 2>/dev/null)" != "$DATA" ]; then  # the first N images and labels of each split
    rm -rf "$SUB" "$SUB.tmp" && mkdir -p "$SUB.tmp"
    for s in train t10k; do
        f=$DATA/$s-images-idx3-ubyte
        px=$(idx_cat "$f" | head -c 16 | od -An -tu1 | awk '{
            print ((($9 * 256 + $10) * 256 + $11) * 256 + $12) * ((($13 * 256 + $14) * 256 + $15) * 256 + $16) }')
        { idx_cat "$f" | head -c 4; be32 "$IW_IMAGES"; idx_cat "$f" | head -c 16 | tail -c 8
          idx_cat "$f" | tail -c +17 | head -c $((IW_IMAGES * px)); } > "$SUB.tmp/$s-images-idx3-ubyte"
        f=$DATA/$s-labels-idx1-ubyte
        { idx_cat "$f" | head -c 4; be32 "$IW_IMAGES"; idx_cat "$f" | tail -c +9 | head -c "$IW_IMAGES"; } \
            > "$SUB.tmp/$s-labels-idx1-ubyte"
    done
    echo "$DATA" > "$SUB.tmp/source"
    mv "$SUB.tmp" "$SUB"
fi
echo "== vae eval --iw $IW on the first $IW_IMAGES test images of $DATA ($SUB), model $RUN"
iwrow() {  # name seconds rss nll
    awk -v n="$1" -v s="$2" -v r="$3" -v l="$4" -v N="$IW_IMAGES" \
        'BEGIN { printf "%-26s %9.2f %10.1f %12s %10.3f\n", n, s, N / s, r, l }'
}
printf '%-26s %9s %10s %12s %10s\n' program seconds "images/s" "peak RSS MB" nll
for th in 1 2; do
    t0=$(date +%s.%N)
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f %M -o "$OUT/iw$th.rss" build/vae eval --run "$RUN" --data "$SUB" --iw "$IW" --threads $th > "$OUT/iw$th.json"
    else
        build/vae eval --run "$RUN" --data "$SUB" --iw "$IW" --threads $th > "$OUT/iw$th.json"
    fi
    s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
    rss=$(awk '{ printf "%.1f", $1 / 1024 }' "$OUT/iw$th.rss" 2>/dev/null || echo n/a)
    iwrow "tapegrad, $th thread(s)" "$s" "${rss:-n/a}" "$(sed 's/.*"nll":\([0-9.]*\).*/\1/' "$OUT/iw$th.json")"
    eval "e$th=$s"
done
if cmp -s "$OUT/iw1.json" "$OUT/iw2.json"; then
    echo "vae eval at --threads 1 and --threads 2: identical output"
else
    echo "vae eval at --threads 1 and --threads 2: DIFFERENT output"
fi
if [ -n "$PY" ]; then
    best_iw=
    for th in 1 2; do
        "$PY" bench/torch_iw.py --run "$RUN" --data "$SUB" --iw "$IW" --threads $th > "$OUT/pyiw$th.log" 2>/dev/null
        r=$(grep '^RESULT' "$OUT/pyiw$th.log")
        s=$(echo "$r" | sed 's/.*seconds=\([0-9.]*\).*/\1/')
        iwrow "PyTorch, $th thread(s)" "$s" "$(echo "$r" | sed 's/.*peak_rss_mb=\([0-9.]*\).*/\1/')" \
            "$(echo "$r" | sed 's/.*nll=\([0-9.]*\).*/\1/')"
        best_iw=$(awk -v a="$best_iw" -v b="$s" 'BEGIN { print (a == "" || b < a) ? b : a }')
    done
    awk -v p="$best_iw" -v c1="$e1" -v c2="$e2" 'BEGIN {
        printf "ratio to PyTorch at its best (%.2f s): %.2fx at 1 thread, %.2fx at 2 threads\n", p, p / c1, p / c2 }'
    echo "(PyTorch's seconds are its computation alone; tapegrad's the whole vae eval process;"
    echo " each nll is an estimate from its own random draws: they differ by that noise, a few hundredths)"
else
    echo "(PyTorch not installed: apt-get install python3-torch libopenblas0-pthread for the side-by-side figures)"
fi

echo
echo "== Convolutions of the conv VAE, float32, batch 128, at 1 and 2 threads, next to PyTorch"
scripts/bench_conv.sh
