"""safetensors files with the standard library and NumPy, for machines without
the `safetensors` package (scripts/torch_check.py, bench/torch_iw.py).

    tensors, meta = read("runs/vae/model.safetensors")   # {name: ndarray}, {key: str}
    write("model.safetensors", {"fc1.weight": w, ...}, {"format": "tapegrad-vae"})

Format (as io/safetensors.h): 8 bytes N, the header length, unsigned
little-endian; N bytes of JSON, {"name": {"dtype", "shape", "data_offsets":
[begin, end]}, ..., "__metadata__": {str: str}}; then the data section, each
tensor row-major little-endian at [begin, end). Only F32, F64 and I64 are handled.

write() produces what io/safetensors.c produces for the same input: metadata
first, tensors in the given order packed from offset 0, compact JSON padded
with spaces so that 8 + N is a multiple of 8. read() checks what it relies
on: the header length, each entry's dtype and shape against its offsets, and
that the tensors tile the data section.
"""

import json
import struct

import numpy as np

DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8")}


def read(path):
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8:
        raise ValueError("%s: header length %d is beyond the file size %d" % (path, n, len(buf)))
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = memoryview(buf)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    tensors, spans = {}, []
    for name, e in header.items():
        if e.get("dtype") not in DTYPES:
            raise ValueError("%s: tensor %s: dtype %r (only F32, F64 and I64 are handled)" % (path, name, e.get("dtype")))
        dt = DTYPES[e["dtype"]]
        shape = tuple(int(d) for d in e["shape"])
        b, en = (int(v) for v in e["data_offsets"])
        if not 0 <= b <= en <= len(data) or int(np.prod(shape)) * dt.itemsize != en - b:
            raise ValueError("%s: tensor %s: shape %s of %s does not fit data_offsets [%d, %d]"
                             % (path, name, list(shape), e["dtype"], b, en))
        tensors[name] = np.frombuffer(data[b:en], dtype=dt).reshape(shape).astype(dt.newbyteorder("="))
        spans.append((b, en))
    at = 0
    for b, en in sorted(spans):
        if b != at:
            raise ValueError("%s: the tensors do not tile the data section (at byte %d)" % (path, at))
        at = en
    if at != len(data):
        raise ValueError("%s: %d bytes after the last tensor" % (path, len(data) - at))
    return tensors, meta


def write(path, tensors, metadata=None):
    """tensors: {name: array} (float32, float64 or int64, written in this order);
    metadata: {str: str} or None."""
    header, parts, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, a in tensors.items():
        a = np.require(a, requirements="C")   # as ascontiguousarray, but a 0-d array stays 0-d
        code = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int64"): "I64"}.get(a.dtype)
        if code is None:
            raise ValueError("%s: tensor %s has dtype %s (only float32, float64 and int64 are handled)" % (path, name, a.dtype))
        raw = a.astype(DTYPES[code]).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        parts.append(raw)
        off += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(parts))
