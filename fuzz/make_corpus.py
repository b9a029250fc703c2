#!/usr/bin/env python3
"""Regenerate the seed corpora in fuzz/corpus/ (run from the repository root,
after `make`, which builds build/vae):

    python3 fuzz/make_corpus.py

Needs Python 3 with its zlib module. Seeds are small (under 6 KiB) so the
fuzzer's input length limit stays small and executions fast. Regression
inputs from findings (fuzz/README.md) are added by hand and not touched here.

  idx/          IDX files raw and gzipped, and gzip/zlib/deflate streams:
                stored, fixed and dynamic Huffman blocks, two members, every
                gzip header flag, an empty member; from Python's zlib.
  safetensors/  model.safetensors and optimizer.safetensors written by our
                writer (build/vae train on tests/fixtures/data/mini, one
                epoch, hidden 8, latent 2: tg_params_save), and small files
                laid out by hand: no tensors, F64 with metadata, a scalar, a
                zero-size tensor, keys not in offset order (as the reference
                library writes them).
  json/         config.json and model.safetensors' header from that run,
                and a few documents covering every token and escape.
"""
import json
import os
import struct
import subprocess
import tempfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
MINI = os.path.join(ROOT, "tests", "fixtures", "data", "mini")


def write(sub, name, data):
    os.makedirs(os.path.join(CORPUS, sub), exist_ok=True)
    with open(os.path.join(CORPUS, sub, name), "wb") as f:
        f.write(data)


def deflate(data, level=9, strategy=zlib.Z_DEFAULT_STRATEGY, wbits=-15):
    c = zlib.compressobj(level, zlib.DEFLATED, wbits, 9, strategy)
    return c.compress(data) + c.flush()


def gzip_member(data, level=9, strategy=zlib.Z_DEFAULT_STRATEGY, flags=0, extra=b"", name=b"", comment=b""):
    """A gzip member with the given header flags (FTEXT 1, FHCRC 2, FEXTRA 4, FNAME 8, FCOMMENT 16)."""
    h = bytearray(b"\x1f\x8b\x08" + bytes([flags]) + b"\0\0\0\0\0\xff")
    if flags & 4:
        h += struct.pack("<H", len(extra)) + extra
    if flags & 8:
        h += name + b"\0"
    if flags & 16:
        h += comment + b"\0"
    if flags & 2:
        h += struct.pack("<H", zlib.crc32(bytes(h)) & 0xFFFF)
    body = deflate(data, level, strategy)
    return bytes(h) + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def idx(magic, dims, data):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def safetensors(header, data=b"", pad=True):
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad and (8 + len(h)) % 8:
        h += b" " * (8 - (8 + len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


def idx_corpus():
    for name in sorted(os.listdir(MINI)):
        with open(os.path.join(MINI, name), "rb") as f:
            write("idx", "mini-" + name, f.read())
    images = idx(0x803, [3, 5, 4], [(37 * i + 11 * r + 5 * c) % 256 for i in range(3) for r in range(5)
                                    for c in range(4)])
    labels = idx(0x801, [6], [0, 9, 3, 1, 4, 1])
    write("idx", "images.idx", images)
    write("idx", "labels.idx", labels)
    write("idx", "images-stored.gz", gzip_member(images, level=0))
    write("idx", "images-fixed.gz", gzip_member(images, strategy=zlib.Z_FIXED))
    write("idx", "labels.gz", gzip_member(labels))
    text = b"".join(b"%d,%d;" % (i, i * i % 97) for i in range(120))   # compresses with a dynamic block
    write("idx", "text-dynamic.gz", gzip_member(text))
    write("idx", "text-rle.gz", gzip_member(b"a" * 3000 + b"ab" * 500, level=1))
    write("idx", "two-members.gz", gzip_member(text[:300]) + gzip_member(text[300:600], level=1))
    write("idx", "all-flags.gz", gzip_member(b"flags", flags=2 | 4 | 8 | 16, extra=b"AB\x02\x00hi",
                                             name=b"x.idx", comment=b"c"))
    write("idx", "empty.gz", gzip_member(b""))
    write("idx", "text.zlib", zlib.compress(text, 9))
    write("idx", "text-stored.zlib", zlib.compress(text[:200], 0))
    write("idx", "text.deflate", deflate(text))
    write("idx", "fixed.deflate", deflate(b"abcabcabcabc hello hello", strategy=zlib.Z_FIXED))


def safetensors_corpus():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        subprocess.run([os.path.join(ROOT, "build", "vae"), "train", "--model", "cvae", "--data", MINI,
                        "--epochs", "1", "--hidden", "8", "--latent", "2", "--batch", "4", "--out", out],
                       check=True, stdout=subprocess.DEVNULL)
        for name in ("model.safetensors", "optimizer.safetensors"):
            with open(os.path.join(out, name), "rb") as f:
                write("safetensors", name, f.read())
        with open(os.path.join(out, "config.json")) as f:
            config = json.load(f)
        config["data"], config["out"] = "data/mnist", "runs/cvae"
        write("json", "config.json", json.dumps(config, separators=(",", ":")).encode())
        with open(os.path.join(out, "model.safetensors"), "rb") as f:
            b = f.read()
        write("json", "safetensors-header.json", b[8:8 + struct.unpack("<Q", b[:8])[0]])
    write("safetensors", "empty.safetensors", safetensors({}))
    write("safetensors", "f64-meta.safetensors",
          safetensors({"__metadata__": {"format": "pt", "k": "v\u00e9"},
                       "w": {"dtype": "F64", "shape": [2, 1], "data_offsets": [0, 16]}},
                      struct.pack("<2d", 1.5, -2.0)))
    write("safetensors", "scalar-and-empty.safetensors",
          safetensors({"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
                       "z": {"dtype": "F32", "shape": [0, 3], "data_offsets": [4, 4]}},
                      struct.pack("<f", 3.0)))
    write("safetensors", "reference-order.safetensors",
          safetensors({"b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
                       "a": {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]}},
                      struct.pack("<4f", 1, 2, 3, 4), pad=False))


def json_corpus():
    docs = {
        "scalars.json": b'[null,true,false,0,-0,1,-1,9223372036854775807,-9223372036854775808,'
                        b'9223372036854775808,1.5,-2.25e-3,1E+300,4.9e-324,"",[],{}]',
        "strings.json": b'{"ascii":"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t","u":"\\u00e9\\u20ac\\ud83d\\ude00\\u0000",'
                        b'"utf8":"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"}',
        "nested.json": b' \t\n\r{"a":[{"b":[[[{"c":{}}]]]},[1,[2,[3]]]],"d":{"e":{"f":null}}} ',
        "number.json": b"-123.456e-7",
        "string.json": b'"x"',
    }
    for k, v in docs.items():
        write("json", k, v)


if __name__ == "__main__":
    idx_corpus()
    safetensors_corpus()
    json_corpus()
