# tapegrad — build, test, run.
#
#   make            static library build/libtapegrad.a and the examples
#   make run        builds, finds or installs the default dataset, trains seed_vae
#   make test       installs Criterion and the default dataset if missing, runs the suite, then again
#                   under -fsanitize=address,undefined
#   make valgrind   a short run of each vae command under valgrind memcheck
#   make bench      speed figures (GEMM, an epoch, convolutions next to PyTorch when present)
#   make data       downloads MNIST into data/mnist (needs internet)
#   make fuzz       libFuzzer targets for the file readers, FUZZ_SECONDS each (needs clang)
#   make install    build/libtapegrad.a and .so, the public headers (those tapegrad.h
#                   includes) and tapegrad.pc into PREFIX (default /usr/local);
#                   make uninstall removes them again
#   make clean

CC      ?= cc
CFLAGS  ?= -O2
CFLAGS  += -std=c11 -fno-math-errno -fno-trapping-math -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -I.
# GCC's -O2 vectorises only loops it can prove need no remainder; allow the
# usual cost model so elementwise loops and Adam vectorise (clang does already).
ifeq ($(shell $(CC) --version 2>/dev/null | grep -c -i -e gcc -e "free software"),0)
else
CFLAGS  += -fvect-cost-model=cheap
endif
LDLIBS  += -lm -lpthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC := $(wildcard tensor/*.c autograd/*.c nn/*.c optim/*.c io/*.c data/*.c models/*.c)
HEADERS := $(wildcard *.h */*.h examples/*/*.h)
EXAMPLES := first seed_vae vae mlp_classifier my_model
# The vae program's own logic (runs, training, evaluation); the tests call it too.
VAE_SRC := $(filter-out examples/vae/main.c,$(wildcard examples/vae/*.c))
TEST_SRC := $(wildcard tests/*.c)
# The test binary routes the library's allocations through counters
# (tests/alloc_count.c) to prove a steady-state step allocates nothing.
WRAP    := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=posix_memalign

all: build/libtapegrad.a $(EXAMPLES:%=build/%)

build/%.o: %.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

build/libtapegrad.a: $(LIB_SRC:%.c=build/%.o)
	rm -f $@
	$(AR) rcs $@ $^

build/vae: build/examples/vae/main.o $(VAE_SRC:%.c=build/%.o) build/libtapegrad.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# A model of its own trained by the vae program's trainer (docs/new_model.md).
build/my_model: build/examples/my_model.o $(VAE_SRC:%.c=build/%.o) build/libtapegrad.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

build/%: build/examples/%.o build/libtapegrad.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# ---------------------------------------------------------------- installing
# The shared library is built from position-independent copies of the objects
# (build/pic/), so the static library and the programs keep their own.

PREFIX  ?= /usr/local
VERSION := 0.1.0
PUBLIC_H := $(shell sed -n 's/^\#include "\(.*\)"/\1/p' tapegrad.h)
INCDIR   = $(DESTDIR)$(PREFIX)/include/tapegrad
LIBDIR   = $(DESTDIR)$(PREFIX)/lib

build/pic/%.o: %.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -c $< -o $@

build/libtapegrad.so: $(LIB_SRC:%.c=build/pic/%.o)
	$(CC) $(CFLAGS) -shared -Wl,-soname,libtapegrad.so $^ -o $@ $(LDLIBS)

# tapegrad.pc names PREFIX, so it is written at each install, never cached.
install: build/libtapegrad.a build/libtapegrad.so
	install -d $(LIBDIR)/pkgconfig
	install -m 644 build/libtapegrad.a $(LIBDIR)/libtapegrad.a
	install -m 755 build/libtapegrad.so $(LIBDIR)/libtapegrad.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' scripts/tapegrad.pc.in > $(LIBDIR)/pkgconfig/tapegrad.pc
	chmod 644 $(LIBDIR)/pkgconfig/tapegrad.pc
	for h in tapegrad.h $(PUBLIC_H); do \
	    install -d $(INCDIR)/$$(dirname $$h) && install -m 644 $$h $(INCDIR)/$$h || exit 1; \
	done

uninstall:
	rm -f $(LIBDIR)/libtapegrad.a $(LIBDIR)/libtapegrad.so $(LIBDIR)/pkgconfig/tapegrad.pc
	rm -f $(addprefix $(INCDIR)/,tapegrad.h $(PUBLIC_H))
	rmdir $(sort $(dir $(addprefix $(INCDIR)/,$(PUBLIC_H)))) $(INCDIR) 2>/dev/null || true

# ---------------------------------------------------------------- tests

build/tests: $(TEST_SRC) $(LIB_SRC) $(VAE_SRC) $(HEADERS) | $(EXAMPLES:%=build/%)
	@mkdir -p build
	$(CC) $(CFLAGS) -g $(TEST_SRC) $(LIB_SRC) $(VAE_SRC) -o $@ $(WRAP) -lcriterion $(LDLIBS)

build/tests-san: $(TEST_SRC) $(LIB_SRC) $(VAE_SRC) $(HEADERS) | $(EXAMPLES:%=build/%)
	@mkdir -p build
	$(CC) $(CFLAGS) -O1 -g $(SAN) $(TEST_SRC) $(LIB_SRC) $(VAE_SRC) -o $@ $(WRAP) -lcriterion $(LDLIBS)

criterion:
	@scripts/need_criterion.sh

# The classifier's accuracy test trains on the default dataset.
test: criterion all build/tests build/tests-san build/libtapegrad.so
	@scripts/need_data.sh
	build/tests --jobs 2
	scripts/test_install.sh
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build/tests-san --jobs 2

valgrind: all
	scripts/valgrind.sh

# ---------------------------------------------------------------- running

run: all
	@scripts/need_data.sh
	build/seed_vae

data:
	scripts/get_mnist.sh

bench: all build/gemm_bench build/conv_bench build/adam_bench
	scripts/bench.sh

# The benches share bench/peak.h (the FMA peak and the clock).
build/gemm_bench: bench/gemm_bench.c bench/peak.h build/libtapegrad.a
	$(CC) $(CFLAGS) $(filter-out %.h,$^) -o $@ $(LDLIBS)

build/conv_bench: bench/conv_bench.c bench/peak.h build/libtapegrad.a
	$(CC) $(CFLAGS) $(filter-out %.h,$^) -o $@ $(LDLIBS)

build/adam_bench: bench/adam_bench.c build/libtapegrad.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# ---------------------------------------------------------------- fuzzing
# One libFuzzer target per reader (fuzz/README.md), built with clang under
# ASan + UBSan and run for FUZZ_SECONDS each on a scratch copy of its corpus.
# Fails if any target finds a crash, leak, timeout or oversized allocation.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := idx safetensors json
FUZZ_CFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L -I. -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined

build/fuzz/%.o: %.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

build/fuzz/libtapegrad.a: $(LIB_SRC:%.c=build/fuzz/%.o)
	rm -f $@
	$(AR) rcs $@ $^

build/fuzz/fuzz_%: fuzz/fuzz_%.c build/fuzz/libtapegrad.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@ $(FUZZ_ZLIB) $(LDLIBS)

# fuzz_idx checks the decoder against zlib when zlib is installed.
build/fuzz/fuzz_idx: FUZZ_ZLIB = $(shell echo 'int main(void) { return zlibVersion() == 0; }' | \
    $(FUZZ_CC) -x c -include zlib.h - -lz -o /dev/null 2>/dev/null && echo -DTG_FUZZ_ZLIB -lz)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build

.PHONY: all test criterion valgrind run data bench fuzz install uninstall clean
.SECONDARY:
