#!/bin/sh
# Run by make test: `make install` into a temporary prefix, then a small
# program outside the tree (a tape, a Linear, one backward pass) built with
# pkg-config as a user builds it — against libtapegrad.so, and fully static
# against libtapegrad.a — and run; then `make uninstall`, which must leave
# none of our files behind. Each public header must also compile on its own
# from the installed tree (so none needs a header that is not installed).
# Installs pkg-config with apt-get when it is missing.
set -eu
cd "$(dirname "$0")/.."
if ! command -v pkg-config >/dev/null 2>&1; then
    echo "pkg-config not found: installing it" >&2
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    command -v apt-get >/dev/null 2>&1 || { echo "error: no pkg-config and no apt-get to install it" >&2; exit 1; }
    $SUDO apt-get update -q && $SUDO apt-get install -y -q pkg-config
    command -v pkg-config >/dev/null 2>&1 || { echo "error: pkg-config is still not on PATH" >&2; exit 1; }
fi
CC=${CC:-cc}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
PREFIX=$DIR/prefix
fail() { echo "test_install: $*" >&2; exit 1; }

make -s install PREFIX="$PREFIX" > /dev/null
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
pkg-config --exists tapegrad || fail "pkg-config finds no tapegrad in $PKG_CONFIG_PATH"

for h in $(cd "$PREFIX/include/tapegrad" && find . -name '*.h' | sed 's|^\./||'); do
    echo "#include \"$h\"" | $CC -std=c11 -Wall -Wextra -Werror -fsyntax-only -x c - \
        $(pkg-config --cflags tapegrad) || fail "installed header $h does not compile on its own"
done

cat > "$DIR/prog.c" <<'PROG'
/* y = fc(x) for x = ones(4, 3), loss = sum(y): every weight's gradient is 4
 * (the sum of its input column), every bias's 4, so 32 in all. */
#include <stdio.h>
#include <tapegrad.h>

int main(void) {
    tg_rng rng = tg_rng_seed(1);
    tg_params *ps = tg_params_new(TG_F32);
    tg_linear fc = tg_linear_new(ps, "fc", 3, 2, &rng);
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_ones(tg_tape_arena(t), TG_F32, TG_SHAPE(4, 3)), false);
    tg_params_zero_grad(ps);
    tg_backward(t, tg_sum(t, tg_linear_forward(t, &fc, x)));
    double g = 0;
    for (int64_t i = 0; i < ps->n; i++) g += ((const float *)ps->grad)[i];
    printf("gradient sum %g, crc32 %08x\n", g, (unsigned)tg_crc32(0, "123456789", 9));
    tg_tape_free(t);
    tg_params_free(ps);
    return 0;
}
PROG
want="gradient sum 32, crc32 cbf43926"

# Shared (pkg-config's default): the program must need libtapegrad.so.
$CC "$DIR/prog.c" -o "$DIR/prog-shared" $(pkg-config --cflags --libs tapegrad) ||
    fail "cannot build a program with pkg-config --cflags --libs tapegrad"
got=$(LD_LIBRARY_PATH="$PREFIX/lib" "$DIR/prog-shared") || fail "prog-shared failed"
[ "$got" = "$want" ] || fail "prog-shared printed '$got', expected '$want'"
LD_LIBRARY_PATH="$PREFIX/lib" ldd "$DIR/prog-shared" | grep -q "libtapegrad.so => $PREFIX/lib/" ||
    fail "prog-shared is not linked with $PREFIX/lib/libtapegrad.so"

# Static: libtapegrad.a with the Libs.private (-lm -lpthread).
$CC -static "$DIR/prog.c" -o "$DIR/prog-static" $(pkg-config --static --cflags --libs tapegrad) ||
    fail "cannot build a static program with pkg-config --static --cflags --libs tapegrad"
got=$("$DIR/prog-static") || fail "prog-static failed"
[ "$got" = "$want" ] || fail "prog-static printed '$got', expected '$want'"

make -s uninstall PREFIX="$PREFIX" > /dev/null
left=$(find "$PREFIX" -type f; find "$PREFIX" -path '*tapegrad*')
[ -z "$left" ] || fail "make uninstall left: $left"
echo "install: make install, pkg-config, shared and static builds of a program, make uninstall: ok"
