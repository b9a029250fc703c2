#!/usr/bin/env python3
"""blas_settings.py - the OpenBLAS settings a competitor is measured under,
so that NumPy and PyTorch are timed at their best.

Debian's OpenBLAS may not recognise a recent processor and then silently runs
a generic kernel several times slower than the one made for it. The
candidate settings are therefore:
    auto      OPENBLAS_CORETYPE unset: OpenBLAS's own choice
    SkylakeX  when /proc/cpuinfo's flags have avx512f, else
    Haswell   when they have avx2 and fma, else no second candidate.
OpenBLAS reads its core type and thread count when it loads, so a setting
applies to a fresh process: run() starts a python script as a subprocess
with OPENBLAS_CORETYPE, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and
MKL_NUM_THREADS set (and OMP_WAIT_POLICY=PASSIVE unless set: spinning OpenMP
workers compete with OpenBLAS's for the cores).

As a module (bench/numpy_gemm.py, bench/torch_conv.py):
    from blas_settings import settings, describe, run
    for s in settings():            # ["auto", "SkylakeX"] on an AVX-512 CPU
        out = run([script, args...], s, threads).stdout
From the shell (scripts/bench.sh):
    python3 bench/blas_settings.py --list          # one setting per line
    python3 bench/blas_settings.py --describe S    # e.g. OPENBLAS_CORETYPE=SkylakeX
    python3 bench/blas_settings.py --setting S --threads T SCRIPT [ARGS...]
the last runs SCRIPT under setting S with T threads and exits with its status.
"""
import os
import subprocess
import sys

AUTO = "auto"


def cpu_coretype():
    """SkylakeX on AVX-512 CPUs, Haswell on AVX2+FMA ones, else None."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    if "avx512f" in flags:
        return "SkylakeX"
    if "avx2" in flags and "fma" in flags:
        return "Haswell"
    return None


def settings():
    """The candidate settings: "auto", then the processor's core type if any."""
    best = cpu_coretype()
    return [AUTO] + ([best] if best else [])


def describe(setting):
    """The setting as the environment sees it."""
    return "OPENBLAS_CORETYPE unset" if setting == AUTO else "OPENBLAS_CORETYPE=" + setting


def environment(setting, threads, base=None):
    """A copy of base (default os.environ) with the setting and thread count."""
    env = dict(os.environ if base is None else base)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.pop("OPENBLAS_CORETYPE", None)
    if setting != AUTO:
        env["OPENBLAS_CORETYPE"] = setting
    return env


def run(argv, setting, threads, **kwargs):
    """subprocess.run([this python] + argv) under the setting; stdout is
    captured as text unless kwargs say otherwise."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("text", True)
    return subprocess.run([sys.executable] + list(argv), env=environment(setting, threads), **kwargs)


def main(argv):
    usage = ("usage: blas_settings.py --list | --describe SETTING | "
             "--setting SETTING --threads T SCRIPT [ARGS...]")
    if argv[:1] == ["--list"]:
        print("\n".join(settings()))
        return 0
    if argv[:1] == ["--describe"] and len(argv) == 2:
        print(describe(argv[1]))
        return 0
    if len(argv) >= 5 and argv[0] == "--setting" and argv[2] == "--threads":
        return run(argv[4:], argv[1], int(argv[3]), stdout=None).returncode
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
