#!/usr/bin/env python3
"""AUROC of one class against the rest, from a per-image scores CSV.

    python3 scripts/auroc.py SCORES.csv --class C
    python3 scripts/auroc.py --selftest

SCORES.csv has a header row naming (at least) the columns `label` and
`score`, then one row per test image; a higher score means more anomalous.
Images whose label is C are the positives, all others the negatives. The
AUROC is computed exactly from ranks (Mann-Whitney U): the scores are ranked
together, tied scores sharing their average rank, and

    AUROC = (R_pos - P (P + 1) / 2) / (P N)

with R_pos the sum of the positives' ranks, P positives and N negatives: the
fraction of (positive, negative) pairs in which the positive scores higher,
a tie counting one half. 1.0: every positive above every negative; 0.5: no
better than chance (or all scores equal); 0.0: every positive below.

Labels match C as numbers when both read as numbers ("3" and "3.0" are the
same class), else as strings. Scores must be finite numbers.

Prints one line:
    AUROC class=C positives=P negatives=N auroc=A

--selftest checks hand-made cases (perfect separation 1.0, reversed 0.0,
all ties 0.5, a small mixed case with a tie worked out by hand, 19/24) and
the CSV reading, and prints PASS or exits 1. Standard library only.
"""

import argparse
import csv
import math
import os
import sys
import tempfile


def auroc(pos, neg):
    """Exact AUROC of scores pos (positives) against neg, ties counted half."""
    if not pos or not neg:
        raise ValueError("need at least one positive and one negative (got %d and %d)" % (len(pos), len(neg)))
    items = sorted([(s, True) for s in pos] + [(s, False) for s in neg], key=lambda t: t[0])
    rank_sum = 0.0
    i = 0
    while i < len(items):
        j = i
        while j < len(items) and items[j][0] == items[i][0]:
            j += 1
        avg = (i + 1 + j) / 2.0            # ranks i+1 .. j share their mean
        rank_sum += avg * sum(1 for t in items[i:j] if t[1])
        i = j
    p, n = len(pos), len(neg)
    return (rank_sum - p * (p + 1) / 2.0) / (p * n)


def _number(text):
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def same_class(label, cls):
    a, b = _number(label), _number(cls)
    if a is not None and b is not None:
        return a == b
    return label.strip() == cls.strip()


def read_scores(path, cls):
    """(positive scores, negative scores) from the CSV at path."""
    pos, neg = [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = [h.strip() for h in (reader.fieldnames or [])]
        for col in ("label", "score"):
            if col not in fields:
                raise ValueError("%s: no %r column in the header %s" % (path, col, fields))
        reader.fieldnames = fields
        for line, row in enumerate(reader, start=2):
            score = _number(row["score"] or "")
            if score is None:
                raise ValueError("%s:%d: score %r is not a finite number" % (path, line, row["score"]))
            (pos if same_class(row["label"] or "", cls) else neg).append(score)
    return pos, neg


def _pairs(pos, neg):
    """The definition, pair by pair (for the self-test)."""
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / (len(pos) * len(neg))


def selftest():
    ok = True

    def check(name, got, want):
        nonlocal ok
        good = abs(got - want) < 1e-12
        ok &= good
        print("%-34s %.6f (want %.6f) %s" % (name, got, want, "ok" if good else "FAIL"))

    check("perfect separation", auroc([0.9, 0.8, 0.7], [0.1, 0.2]), 1.0)
    check("reversed", auroc([0.1, 0.2], [0.9, 0.8, 0.7]), 0.0)
    check("all ties", auroc([0.5, 0.5], [0.5, 0.5, 0.5]), 0.5)
    # By hand: positives 0.9, 0.5, 0.3; negatives 0.5, 0.4, 0.2, 0.1.
    # 0.9 beats all 4; 0.5 beats 0.4, 0.2, 0.1 and ties 0.5 (3.5); 0.3 beats
    # 0.2, 0.1 (2): 9.5 of 12 pairs = 19/24.
    pos, neg = [0.9, 0.5, 0.3], [0.5, 0.4, 0.2, 0.1]
    check("mixed, by hand", auroc(pos, neg), 19.0 / 24.0)
    check("mixed, pair by pair", _pairs(pos, neg), 19.0 / 24.0)
    # Ranks of several tie groups against the pair-by-pair definition.
    pos2, neg2 = [3, 1, 2, 2, 5, 3, 0], [2, 2, 4, 1, 3, 0, 0, 6]
    check("tie groups vs pairs", auroc(pos2, neg2), _pairs(pos2, neg2))
    # The CSV path: extra columns, labels as "7" and "7.0", class 7.
    fd, path = tempfile.mkstemp(suffix=".csv")
    try:
        with os.fdopen(fd, "w") as f:
            f.write("index,label,score\n")
            for i, (lab, s) in enumerate([("7", 0.9), ("1", 0.5), ("7.0", 0.5), ("2", 0.4), ("7", 0.3),
                                          ("0", 0.2), ("3", 0.1)]):
                f.write("%d,%s,%r\n" % (i, lab, s))
        p, n = read_scores(path, "7")
        check("csv, class 7", auroc(p, n), 19.0 / 24.0)
    finally:
        os.unlink(path)
    for bad in (([], [1.0]), ([1.0], [])):
        try:
            auroc(*bad)
            ok = False
            print("empty class not refused FAIL")
        except ValueError:
            pass
    print("PASS" if ok else "FAIL")
    return ok


def main():
    ap = argparse.ArgumentParser(description="AUROC of one class against the rest (exact, by ranks)")
    ap.add_argument("csv", nargs="?", help="CSV with columns label and score (higher = more anomalous)")
    ap.add_argument("--class", dest="cls", help="the positive class")
    ap.add_argument("--selftest", action="store_true", help="check hand-made cases and exit")
    args = ap.parse_args()
    if args.selftest:
        sys.exit(0 if selftest() else 1)
    if not args.csv or args.cls is None:
        ap.error("give SCORES.csv and --class C (or --selftest)")
    try:
        pos, neg = read_scores(args.csv, args.cls)
        a = auroc(pos, neg)
    except (OSError, ValueError) as e:
        sys.exit("auroc: %s" % e)
    print("AUROC class=%s positives=%d negatives=%d auroc=%.6f" % (args.cls, len(pos), len(neg), a))


if __name__ == "__main__":
    main()
