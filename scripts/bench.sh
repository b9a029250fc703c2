#!/bin/sh
# make bench: speed figures, measured side by side in one run.
#   1. GEMM GFLOP/s on the VAE's shapes at 1 and 2 threads, next to the
#      machine's FMA peak and, when NumPy is installed, OpenBLAS at its best
#      setting per row (bench/gemm_bench.c runs bench/numpy_gemm.py, which
#      tries each setting of bench/blas_settings.py: OPENBLAS_CORETYPE unset,
#      and the core type made for this CPU), and the floor of a VAE epoch: its
#      products' flops at the FMA peak on 1 and 2 threads (the highest of the
#      run's peak measurements: it is measured again before each training
#      section, since a measurement beside other work comes out low).
#   1b. Adam's step in ns per parameter next to a loop with its memory
#      traffic alone, at the VAE's and the conv VAE's parameter counts
#      (bench/adam_bench.c): whether memory or arithmetic bounds it.
#   2. The reference VAE's seconds per epoch, images/s, peak RSS, test loss and
#      multiple of the floor at 1 and 2 threads, and the 1 -> 2 thread
#      scaling; next to the PyTorch textbook script (bench/torch_vae.py) under
#      every OpenBLAS setting at 1 and 2 threads (a setting whose final test
#      loss is more than 1% away from the median of all PyTorch runs' is
#      named and left out), and the ratio to PyTorch at its best, named.
#      PyTorch is skipped with a message when absent. The two tapegrad runs'
#      checkpoints are compared byte for byte.
#   3. `vae eval --iw IW` (default 1000 importance samples per image) on the
#      first IW_IMAGES test images (default 1000 of 10,000: the whole set takes
#      minutes per run), at 1 and 2 threads: seconds, images/s, peak RSS, and
#      the nll, next to PyTorch (bench/torch_iw.py, same model, same images)
#      under every OpenBLAS setting at 1 and 2 threads (checked as in 2), and
#      the ratio to PyTorch at its best, named. Both read the same
#      directory, build/bench-iw-data-N/, which holds the first N images of
#      each split. The model is a 1-epoch run, build/bench-iw-run/, trained
#      once and reused.
#   4. Convolutions on the conv VAE's shapes, forward and forward+backward at
#      1 and 2 threads, next to PyTorch at its fastest setting, and the ratio
#      (scripts/bench_conv.sh: bench/conv_bench.c, bench/torch_conv.py).
#   5. The conv VAE's training epoch (vae train --model conv-vae; metrics.csv's
#      seconds: the epoch's training steps, without the test pass) at 1 and 2
#      threads, the two checkpoints compared byte for byte, next to PyTorch's
#      conv VAE (scripts/torch_models.py --model conv-vae) at its best
#      setting per thread count: every OpenBLAS setting with oneDNN on and
#      off is timed over 20 training steps (--time-steps 20), and the fastest
#      trains the epoch(s); and the conv VAE's floor (its convolution and
#      linear products' flops at the FMA peak) with each epoch as a multiple.
# EPOCHS (default 3) epochs per run of the reference VAE, CONV_EPOCHS
# (default 3) of the conv VAE. A run reports its fastest epoch after the
# first: the steady state, without the first epoch's start-up, and past the
# point (in the second epoch) where training starts producing subnormal
# numbers, which tapegrad's Adam flushes to zero; PyTorch runs with
# torch.set_flush_denormal(True) (--flush-denormal of bench/torch_vae.py and
# scripts/torch_models.py), the same, which is never slower (without it its
# VAE's third epoch took 30% longer than its first on an Intel Xeon). PYTHON
# (default python3, else /usr/bin/python3) runs NumPy and PyTorch; when it
# cannot import them (e.g. PYTHON=/bin/false) their figures are left out,
# with a message.
set -e
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-3}
CONV_EPOCHS=${CONV_EPOCHS:-3}
DATA=${DATA:-}
[ -n "$DATA" ] || for d in data/mnist /usr/share/datasets/fashion-mnist; do
    ls "$d"/train-images-idx3-ubyte* >/dev/null 2>&1 && { DATA=$d; break; }
done
[ -n "$DATA" ] || { echo "bench: no dataset (make data, or apt-get install dataset-fashion-mnist)" >&2; exit 1; }

# An awk function for the checks of the PyTorch runs below: the median of v[1..n].
MEDIAN_AWK='function median(v, n,   a, i, j, t) {
    for (i = 1; i <= n; i++) a[i] = v[i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}'

PY=
for p in ${PYTHON:-python3 /usr/bin/python3}; do
    "$p" -c "import torch" 2>/dev/null && { PY=$p; break; }
done

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
idx_cat() {  # an IDX file, raw or gzipped (the raw one first, as the loader)
    if [ -f "$1" ]; then cat "$1"; else gzip -dc "$1.gz"; fi
}
idx_count() {  # the item count of an IDX file (its second big-endian word)
    idx_cat "$1" | head -c 8 | od -An -tu1 | awk '{ print (($5 * 256 + $6) * 256 + $7) * 256 + $8 }'
}
be32() {  # n as 4 bytes, big-endian
    printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)))"
}
n_train=$(idx_count "$DATA/train-labels-idx1-ubyte")
n_test=$(idx_count "$DATA/t10k-labels-idx1-ubyte")
fastest() {  # the smallest of the numbers on stdin
    sort -g | head -1
}
steady() {  # the smallest of the numbers on stdin after the first (the first if it is alone)
    awk 'NR == 1 { first = $1; next } { print } END { if (NR == 1) print first }' | fastest
}
pytorch_best() {  # threads setting seconds unit tapegrad-1-thread tapegrad-2-threads: the best and the ratios
    awk -v th="$1" -v set="$2" -v p="$3" -v u="$4" -v c1="$5" -v c2="$6" 'BEGIN {
        printf "PyTorch at its best: %d thread%s, %s, %.2f %s\n", th, (th > 1 ? "s" : ""), set, p, u
        printf "ratio to PyTorch at its best: %.2fx at 1 thread, %.2fx at 2 threads (> 1: tapegrad is faster)\n", p / c1, p / c2 }'
}
pytorch_missing() {
    echo "(PyTorch not installed: apt-get install python3-torch libopenblas0-pthread for the side-by-side figures)"
}
if [ -n "$PY" ]; then
    SETTINGS=$("$PY" bench/blas_settings.py --list)
    echo "PyTorch runs under each OpenBLAS setting (bench/blas_settings.py):"
    for s in $SETTINGS; do echo "  $s: $("$PY" bench/blas_settings.py --describe "$s")"; done
    echo
fi

echo "== GEMM, float32, the VAE's shapes (OpenBLAS columns when NumPy is installed)"
TG_THREADS=2 build/gemm_bench --images "$n_train" | tee "$OUT/gemm.txt"
vae_gflop=$(sed -n "s/^an epoch's products: \([0-9.]*\) GFLOP.*/\1/p" "$OUT/gemm.txt")
# The floors divide by the FMA peak at 1 and 2 threads. The machine may be
# shared: a measurement beside other work comes out low, so the peak is
# measured again before each training section, and the highest so far counts.
peak_again() {  # sets peak1, peak2 and the count npeaks
    TG_THREADS=2 build/gemm_bench --peak >> "$OUT/gemm.txt"
    set -- $(sed -n 's/^Peak .*: \([0-9.]*\) GFLOP\/s on 1 thread, \([0-9.]*\) on 2 threads.*/\1 \2/p' "$OUT/gemm.txt" |
        awk '$1 > p1 { p1 = $1 } $2 > p2 { p2 = $2 } END { print p1, p2, NR }')
    peak1=$1 peak2=$2 npeaks=$3
}
peak_again
floor1=$(awk -v g="$vae_gflop" -v p="$peak1" 'BEGIN { if (g != "" && p > 0) printf "%.3f", g / p }')
floor2=$(awk -v g="$vae_gflop" -v p="$peak2" 'BEGIN { if (g != "" && p > 0) printf "%.3f", g / p }')

echo
echo "== Adam, float32: its step next to its memory traffic alone"
build/adam_bench

echo
echo "== Reference VAE on $DATA, $EPOCHS epochs per run (s/epoch: the fastest after the first), $(nproc) cores"
row() {  # name seconds rss test-loss [floor]
    awk -v n="$1" -v s="$2" -v r="$3" -v l="$4" -v f="${5:-}" -v N="$n_train" 'BEGIN {
        printf "%-26s %9.2f %10.0f %12s %10.4f", n, s, N / s, r, l
        if (f != "") printf " %8.2f", s / f
        printf "\n" }'
}
printf '%-26s %9s %10s %12s %10s %8s\n' program "s/epoch" "images/s" "peak RSS MB" "test loss" "x floor"
for th in 1 2; do
    build/seed_vae --data "$DATA" --epochs "$EPOCHS" --threads $th --save "$OUT/c$th.safetensors" > "$OUT/c$th.log"
    s=$(sed -n 's/.*took \([0-9.]*\) s.*/\1/p' "$OUT/c$th.log" | steady)
    eval "f=\$floor$th"
    row "tapegrad, $th thread(s)" "$s" "$(sed -n 's/^Peak memory: \([0-9.]*\) MB/\1/p' "$OUT/c$th.log")" \
        "$(sed -n 's/^====> Test set loss: \([0-9.]*\)/\1/p' "$OUT/c$th.log" | tail -1)" "$f"
    eval "c$th=$s"
done
awk -v c1="$c1" -v c2="$c2" -v f1="$floor1" -v f2="$floor2" -v g="$vae_gflop" -v n="$npeaks" -v p1="$peak1" -v p2="$peak2" 'BEGIN {
    printf "tapegrad 1 -> 2 threads: the whole epoch %.2fx faster\n", c1 / c2
    printf "x floor: the epoch over its floor, its %.1f GFLOP of products at the FMA peak: %.3f s at 1 thread, %.3f s at 2\n", g, f1, f2
    printf "  (the highest of the %d peak measurements so far: %.1f GFLOP/s on 1 thread, %.1f on 2)\n", n, p1, p2 }'
if cmp -s "$OUT/c1.safetensors" "$OUT/c2.safetensors"; then
    echo "checkpoints after --threads 1 and --threads 2: byte-identical"
else
    echo "checkpoints after --threads 1 and --threads 2: DIFFERENT"
fi
if [ -n "$PY" ]; then
    : > "$OUT/py.txt"  # setting threads seconds rss loss
    for s in $SETTINGS; do
        for th in 1 2; do
            if "$PY" bench/blas_settings.py --setting "$s" --threads $th \
                bench/torch_vae.py --data "$DATA" --epochs "$EPOCHS" --threads $th --flush-denormal > "$OUT/py$s$th.log" 2>&1; then
                echo "$s $th $(sed -n 's/^epoch_seconds: \([0-9.]*\)/\1/p' "$OUT/py$s$th.log" | steady)" \
                    "$(sed -n 's/.*final_test_loss=\([0-9.]*\) peak_rss_mb=\([0-9.]*\).*/\2 \1/p' "$OUT/py$s$th.log")" >> "$OUT/py.txt"
            else
                echo "PyTorch, $th thread(s), $s: failed (bench/torch_vae.py: $(tail -1 "$OUT/py$s$th.log"))"
            fi
        done
    done
    # Every run's final test loss against the median of all: more than 1% away is wrong.
    awk -v N="$n_train" -v f1="$floor1" -v f2="$floor2" "$MEDIAN_AWK"'{ set[NR] = $1; th[NR] = $2; s[NR] = $3; rss[NR] = $4; loss[NR] = v[NR] = $5 }
        END {
            if (NR == 0) exit
            med = median(v, NR)
            for (i = 1; i <= NR; i++) {
                bad = loss[i] > med * 1.01 || loss[i] < med * 0.99
                f = th[i] == 1 ? f1 : th[i] == 2 ? f2 : ""
                printf "%-26s %9.2f %10.0f %12s %10.4f %8s%s\n", "PyTorch, " th[i] " thr, " set[i], s[i], N / s[i], rss[i], loss[i],
                    (f != "" ? sprintf("%.2f", s[i] / f) : "-"), bad ? sprintf("  WRONG: test loss %+.1f%% off the median of the PyTorch runs, left out", 100 * (loss[i] / med - 1)) : ""
                if (!bad && (best == "" || s[i] < s[best])) best = i
            }
            if (best == "") { print "PyTorch: no run agrees with the others" > "/dev/stderr"; exit }
            print th[best], set[best], s[best] > "'"$OUT/py.best"'"
        }' "$OUT/py.txt"
    if [ -s "$OUT/py.best" ]; then
        set -- $(cat "$OUT/py.best")
        pytorch_best "$1" "$("$PY" bench/blas_settings.py --describe "$2")" "$3" s/epoch "$c1" "$c2"
    fi
else
    pytorch_missing
fi

echo
IW=${IW:-1000}
IW_IMAGES=${IW_IMAGES:-1000}
RUN=build/bench-iw-run
if [ ! -f "$RUN/model.safetensors" ]; then
    build/vae train --model vae --epochs 1 --data "$DATA" --out "$RUN" > "$OUT/iw-train.log"
fi
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
    : > "$OUT/pyiw.txt"  # setting threads seconds rss nll
    for s in $SETTINGS; do
        for th in 1 2; do
            if "$PY" bench/blas_settings.py --setting "$s" --threads $th \
                bench/torch_iw.py --run "$RUN" --data "$SUB" --iw "$IW" --threads $th > "$OUT/pyiw$s$th.log" 2>&1; then
                r=$(grep '^RESULT' "$OUT/pyiw$s$th.log")
                echo "$s $th $(echo "$r" | sed 's/.*seconds=\([0-9.]*\).*peak_rss_mb=\([0-9.]*\).*/\1 \2/')" \
                    "$(echo "$r" | sed 's/.*nll=\([0-9.]*\).*/\1/')" >> "$OUT/pyiw.txt"
            else
                echo "PyTorch, $th thread(s), $s: failed (bench/torch_iw.py: $(tail -1 "$OUT/pyiw$s$th.log"))"
            fi
        done
    done
    # As above: an nll more than 1% away from the median of the PyTorch runs' is wrong.
    awk -v N="$IW_IMAGES" "$MEDIAN_AWK"'{ set[NR] = $1; th[NR] = $2; s[NR] = $3; rss[NR] = $4; nll[NR] = v[NR] = $5 }
        END {
            if (NR == 0) exit
            med = median(v, NR)
            for (i = 1; i <= NR; i++) {
                bad = nll[i] > med * 1.01 || nll[i] < med * 0.99
                printf "%-26s %9.2f %10.1f %12s %10.3f%s\n", "PyTorch, " th[i] " thr, " set[i], s[i], N / s[i], rss[i], nll[i],
                    (bad ? sprintf("  WRONG: nll %+.1f%% off the median of the PyTorch runs, left out", 100 * (nll[i] / med - 1)) : "")
                if (!bad && (best == "" || s[i] < s[best])) best = i
            }
            if (best != "") print th[best], set[best], s[best] > "'"$OUT/pyiw.best"'"
        }' "$OUT/pyiw.txt"
    if [ -s "$OUT/pyiw.best" ]; then
        set -- $(cat "$OUT/pyiw.best")
        pytorch_best "$1" "$("$PY" bench/blas_settings.py --describe "$2")" "$3" s "$e1" "$e2"
    fi
    echo "(PyTorch's seconds are its computation alone; tapegrad's the whole vae eval process;"
    echo " each nll is an estimate from its own random draws: they differ by that noise, a few hundredths)"
else
    pytorch_missing
fi

echo
echo "== Convolutions of the conv VAE, float32, batch 128, at 1 and 2 threads, next to PyTorch"
scripts/bench_conv.sh

echo
echo "== Conv VAE on $DATA: training, $CONV_EPOCHS epoch(s) per run (s/epoch: the fastest after the first), at 1 and 2 threads, next to PyTorch"
# Its floor: the products of a training step, 2 flops per multiply-add, per
# image: a convolution's multiply-adds are its output pixels x in x out
# channels x 16 taps (a transposed one's: its input pixels), a linear's in x
# out; each layer runs forward, weight gradient and input gradient, but enc1
# needs no input gradient (x needs none). Biases, activations, the loss and
# Adam are not counted.
conv_gflop=$(awk -v n="$n_train" 'BEGIN {
    f = 2 * 14 * 14 * 1 * 32 * 16 * 2       # enc1  Conv2d(1, 32, 4, 2, 1), 28 -> 14: forward, dW
    f += 2 * 7 * 7 * 32 * 64 * 16 * 3       # enc2  Conv2d(32, 64, 4, 2, 1), 14 -> 7
    f += 2 * 3136 * 256 * 3                 # fc1   Linear(3136, 256)
    f += 2 * 256 * 20 * 3 * 2               # fc_mu, fc_logvar  Linear(256, 20)
    f += 2 * 20 * 256 * 3                   # fc2   Linear(20, 256)
    f += 2 * 256 * 3136 * 3                 # fc3   Linear(256, 3136)
    f += 2 * 7 * 7 * 64 * 32 * 16 * 3       # dec1  ConvTranspose2d(64, 32, 4, 2, 1), 7 -> 14
    f += 2 * 14 * 14 * 32 * 1 * 16 * 3      # dec2  ConvTranspose2d(32, 1, 4, 2, 1), 14 -> 28
    printf "%.1f", f * n * 1e-9 }')
peak_again
awk -v g="$conv_gflop" -v p1="$peak1" -v p2="$peak2" -v n="$n_train" -v k="$npeaks" 'BEGIN {
    printf "an epoch'"'"'s products: %.1f GFLOP (%d images: the conv VAE'"'"'s convolution and linear products, forward and backward, batch 128)\n", g, n
    printf "  -> floor %.2f s at the 2-thread peak (%.2f s at 1 thread; the highest of the %d FMA peak measurements so far:\n", g / p2, g / p1, k
    printf "     %.1f GFLOP/s on 1 thread, %.1f on 2)\n", p1, p2 }'
cvrow() {  # name seconds rss test-loss [floor]
    awk -v n="$1" -v s="$2" -v r="$3" -v l="$4" -v f="${5:-}" -v N="$n_train" 'BEGIN {
        printf "%-36s %9.2f %10.0f %12s %10.4f", n, s, N / s, (r ~ /^[0-9.]+$/ ? sprintf("%.1f", r) : r), l
        if (f != "") printf " %8.2f", s / f
        printf "\n" }'
}
echo "(s/epoch: the epoch's training steps, without the test pass: vae train's metrics.csv seconds, torch_models.py's epoch lines)"
printf '%-36s %9s %10s %12s %10s %8s\n' program "s/epoch" "images/s" "peak RSS MB" "test loss" "x floor"
for th in 1 2; do
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f %M -o "$OUT/cv$th.rss" build/vae train --model conv-vae --epochs "$CONV_EPOCHS" --data "$DATA" \
            --threads $th --out "$OUT/cv$th" > "$OUT/cv$th.log" 2>&1
    else
        build/vae train --model conv-vae --epochs "$CONV_EPOCHS" --data "$DATA" --threads $th --out "$OUT/cv$th" \
            > "$OUT/cv$th.log" 2>&1
    fi
    # metrics.csv: a header, then epoch,train_loss,test_loss,...,seconds
    s=$(awk -F, 'NR > 1 { print $NF }' "$OUT/cv$th/metrics.csv" | steady)
    rss=$(awk '{ printf "%.1f", $1 / 1024 }' "$OUT/cv$th.rss" 2>/dev/null || echo n/a)
    cvrow "tapegrad, $th thread(s)" "$s" "${rss:-n/a}" "$(awk -F, 'END { print $3 }' "$OUT/cv$th/metrics.csv")" \
        "$(awk -v g="$conv_gflop" -v p="$(eval echo \$peak$th)" 'BEGIN { print g / p }')"
    eval "v$th=$s"
done
awk -v c1="$v1" -v c2="$v2" 'BEGIN { printf "tapegrad 1 -> 2 threads: the whole epoch %.2fx faster\n", c1 / c2 }'
if cmp -s "$OUT/cv1/model.safetensors" "$OUT/cv2/model.safetensors"; then
    echo "checkpoints after --threads 1 and --threads 2: byte-identical"
else
    echo "checkpoints after --threads 1 and --threads 2: DIFFERENT"
fi
if [ -n "$PY" ]; then
    # The setting: each OpenBLAS setting with oneDNN on and off, 20 training steps each; the fastest median wins.
    : > "$OUT/pcv-steps.txt"  # threads setting oneDNN ms
    : > "$OUT/pcv.txt"        # threads setting oneDNN seconds train-loss
    for th in 1 2; do
        for s in $SETTINGS; do
            for dnn in on off; do
                flag=; [ $dnn = on ] || flag=--no-mkldnn
                ms=$("$PY" scripts/torch_models.py --model conv-vae --data "$DATA" --threads $th --coretype "$s" $flag \
                    --time-steps 20 --flush-denormal 2>/dev/null | sed -n 's/.*median_ms=\([0-9.]*\).*/\1/p')
                [ -n "$ms" ] || { echo "PyTorch conv VAE, $th thr, $s, oneDNN $dnn: failed"; continue; }
                echo "$th $s $dnn $ms" >> "$OUT/pcv-steps.txt"
            done
        done
        best=$(awk -v th=$th '$1 == th && (b == "" || $4 < b) { b = $4; r = $2 " " $3 } END { print r }' "$OUT/pcv-steps.txt")
        [ -n "$best" ] || continue
        set -- $best
        flag=; [ "$2" = on ] || flag=--no-mkldnn
        if "$PY" scripts/torch_models.py --model conv-vae --data "$DATA" --threads $th --coretype "$1" $flag \
            --epochs "$CONV_EPOCHS" --iw 1 --iw-images 100 --flush-denormal --out "$OUT/pcv$th" > "$OUT/pcv$th.log" 2>&1; then
            s=$(sed -n 's/^epoch [0-9]*\/[0-9]*: train loss [0-9.]*, \([0-9.]*\) s$/\1/p' "$OUT/pcv$th.log" | steady)
            r=$(grep '^RESULT' "$OUT/pcv$th.log")
            cvrow "PyTorch, $th thr, $1, oneDNN $2" "$s" "$(echo "$r" | sed 's/.*peak_rss_mb=\([0-9.]*\).*/\1/')" \
                "$(echo "$r" | sed 's/.*neg_elbo=\([0-9.]*\).*/\1/')" \
                "$(awk -v g="$conv_gflop" -v p="$(eval echo \$peak$th)" 'BEGIN { print g / p }')"
            echo "$th $1 $2 $s $(echo "$r" | sed 's/.*train_loss=\([0-9.]*\).*/\1/')" >> "$OUT/pcv.txt"
        else
            echo "PyTorch conv VAE, $th thr, $1, oneDNN $2: failed ($(tail -1 "$OUT/pcv$th.log"))"
        fi
    done
    echo "PyTorch's setting per thread count: the fastest median of 20 training steps, ms, of"
    awk '{ printf "%s%s/oneDNN %s %.1f", ($1 != th ? (NR > 1 ? "\n" : "") "  " $1 " thr: " : ", "), $2, $3, $4; th = $1 }
         END { printf "\n" }' "$OUT/pcv-steps.txt"
    if [ -s "$OUT/pcv.txt" ]; then
        awk '{ th[NR] = $1; set[NR] = $2; dnn[NR] = $3; s[NR] = $4; loss[NR] = $5 }
            END {
                if (NR == 2) {
                    d = loss[2] / loss[1] - 1
                    printf "PyTorch runs'"'"' train loss (%.4f, %.4f): %s\n", loss[1], loss[2],
                        (d < 0.01 && d > -0.01 ? "agree within 1%" : "DISAGREE by more than 1%: one setting is wrong")
                }
                for (i = 1; i <= NR; i++) if (b == "" || s[i] < s[b]) b = i
                print th[b], set[b], dnn[b], s[b] > "'"$OUT/pcv.best"'" }' "$OUT/pcv.txt"
        set -- $(cat "$OUT/pcv.best")
        pytorch_best "$1" "$("$PY" bench/blas_settings.py --describe "$2"), oneDNN $3" "$4" s/epoch "$v1" "$v2"
        echo "(the convolutions of every setting are checked against float64 in the section above)"
    fi
else
    pytorch_missing
fi
