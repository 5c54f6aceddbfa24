#!/usr/bin/env python3
"""Convert the parameters of a TorchScript `.pt` zip into a safetensors file,
with the Python standard library only (no torch).

A TorchScript zip holds `<root>/data.pkl`, a pickle of the module tree whose
tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
...)` calls on persistent storages `<root>/data/<key>` (raw little-endian
bytes). This script unpickles the tree into plain records, names each tensor
by its attribute path (`layers.mixed_3.tower.conv_1.weight`), and writes the
float32 tensors, made contiguous, as safetensors; the stride and padding of
every module holding a `weight` and a `stride` go into the metadata as
`conv_geometry` (JSON).

    python3 tools/torchscript_to_safetensors.py default_1.pt out.safetensors
"""

import json
import pickle
import struct
import sys
import zipfile

DTYPES = {"FloatStorage": ("F32", 4, "f"), "DoubleStorage": ("F64", 8, "d"),
          "LongStorage": ("I64", 8, "q"), "IntStorage": ("I32", 4, "i")}


class Storage:
    def __init__(self, kind, key):
        self.kind, self.key = kind, key


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)


class Obj:
    """Any scripted module or other class instance: keeps its state."""

    def __init__(self, *args):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"_": state}


def rebuild_tensor(storage, offset, size, stride, *rest):
    return Tensor(storage, offset, size, stride)


class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if name == "_rebuild_tensor_v2" or name == "_rebuild_tensor":
            return rebuild_tensor
        if module == "torch" and name in DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return dict
        if name in ("build_intlist", "build_doublelist", "build_boollist"):
            return list  # torch.jit._pickle's typed lists are plain lists
        return type(name, (Obj,), {})

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        kind = pid[1] if isinstance(pid[1], str) else getattr(pid[1], "__name__", str(pid[1]))
        return Storage(kind, pid[2])


def walk(node, prefix, out, geometry):
    if isinstance(node, Tensor):
        out[prefix] = node
    elif isinstance(node, Obj):
        st = node.state
        if "stride" in st and isinstance(st.get("weight"), Tensor):
            # Convolution geometry, which the tensors alone do not carry:
            # stride, and padding as one int or an [h, w] list.
            pad = st.get("padding", 0)
            ph, pw = (pad, pad) if isinstance(pad, int) else tuple(pad)
            geometry[prefix] = [st["stride"], ph, pw]
        walk(st, prefix, out, geometry)
    elif isinstance(node, dict):
        for k, v in node.items():
            if isinstance(k, str) and not k.startswith("_") and k != "training":
                walk(v, f"{prefix}.{k}" if prefix else k, out, geometry)


def contiguous(t, raw):
    name, width, fmt = DTYPES[t.storage.kind]
    n = 1
    for s in t.size:
        n *= s
    expect, acc = [], 1
    for size in reversed(t.size):
        expect.insert(0, acc)
        acc *= size
    if list(t.stride) == expect or n <= 1:
        # Already row-major: a slice of the storage.
        return name, raw[t.offset * width:(t.offset + n) * width]
    vals = struct.unpack(f"<{len(raw) // width}{fmt}", raw)
    out = []
    # Walk the logical index in row-major order through the strides.
    idx = [0] * len(t.size)
    for _ in range(n):
        pos = t.offset + sum(i * s for i, s in zip(idx, t.stride))
        out.append(vals[pos])
        for d in reversed(range(len(idx))):
            idx[d] += 1
            if idx[d] < t.size[d]:
                break
            idx[d] = 0
    return name, struct.pack(f"<{n}{fmt}", *out)


def main(src, dst):
    with zipfile.ZipFile(src) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl") and "/constants" not in n]
        if len(pkl) != 1:
            sys.exit(f"{src}: expected one data.pkl in the zip, found {pkl}")
        root = pkl[0][: -len("data.pkl")]
        tree = Unpickler(z.open(pkl[0])).load()
        tensors, geometry = {}, {}
        walk(tree, "", tensors, geometry)
        if not tensors:
            sys.exit(f"{src}: no tensors found in {pkl[0]}")
        header, blobs, offset = {}, [], 0
        for name in sorted(tensors):
            t = tensors[name]
            raw = z.read(f"{root}data/{t.storage.key}")
            dtype, data = contiguous(t, raw)
            header[name] = {"dtype": dtype, "shape": list(t.size), "data_offsets": [offset, offset + len(data)]}
            blobs.append(data)
            offset += len(data)
    header["__metadata__"] = {
        "source": src.split("/")[-1],
        "format": "torchscript-params",
        # {"net.layers.conv": [stride, pad_h, pad_w], ...}
        "conv_geometry": json.dumps(geometry, sort_keys=True),
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    print(f"{dst}: {len(tensors)} tensors, {offset} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
