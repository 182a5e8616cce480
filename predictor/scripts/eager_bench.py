"""The same network in PyTorch eager, for side-by-side timing with seer-predictor.

Reads a Seer checkpoint (layout in predictor/src/checkpoint.rs), builds the
architecture its header names with the same weights, checks the probabilities
against the Rust run's (`seer-predictor bench --json`), and times batch-1
full-window inference on one thread. Prints one JSON object.

Usage: eager_bench.py MODEL.seer RUST_BENCH.json [ITERATIONS]
(scripts/bench-torch.sh runs it; it needs only torch: the safetensors part of the
checkpoint is parsed here.)
"""

import json
import math
import struct
import sys
import time
import zlib

import torch
from torch import nn


def load_safetensors(st):
    """The f32 tensors of a safetensors blob, by name."""
    (n,) = struct.unpack_from("<Q", st, 0)
    meta = json.loads(st[8 : 8 + n])
    data = st[8 + n :]
    out = {}
    for name, info in meta.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"weight {name} is {info['dtype']}, expected F32")
        a, z = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[a:z]), dtype=torch.float32).reshape(info["shape"])
    return out


def read_checkpoint(path):
    b = open(path, "rb").read()
    if b[:8] != b"SEERMODL":
        raise SystemExit(f"{path} is not a Seer model checkpoint")
    (version,) = struct.unpack_from("<I", b, 8)
    if version != 1:
        raise SystemExit(f"{path}: checkpoint format version {version}, expected 1")
    (hlen,) = struct.unpack_from("<Q", b, 12)
    header = json.loads(b[20 : 20 + hlen])
    (wlen,) = struct.unpack_from("<Q", b, 20 + hlen)
    weights = b[28 + hlen : 28 + hlen + wlen]
    (crc,) = struct.unpack_from("<I", b, 28 + hlen + wlen)
    if zlib.crc32(b[: 28 + hlen + wlen]) != crc:
        raise SystemExit(f"{path}: CRC mismatch")
    return header, load_safetensors(weights)


class Net(nn.Module):
    """hybrid: conv1d across services per tick -> LSTM over time -> linear, plus a
    shared per-service scorer on the last tick's features;
    cnn: conv2d over (time, services), pooled; lstm: LSTM over flattened ticks."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        arch, ns, nc = c["arch"], c["n_services"], c["n_channels"]
        cc, h = c["conv_channels"], c["hidden"]
        for l in range(c["conv_layers"] if arch in ("hybrid", "cnn") else 0):
            cin = nc if l == 0 else cc
            conv = nn.Conv1d if arch == "hybrid" else nn.Conv2d
            setattr(self, f"conv{l}", conv(cin, cc, 3, padding=1))
        if arch in ("hybrid", "lstm"):
            inp = cc * ns if arch == "hybrid" else nc * ns
            self.lstm = nn.LSTM(inp, h, c["lstm_layers"], batch_first=True)
            out_in = h
        else:
            out_in = cc * ns
        n_out = ns + 1 if c["output"] == "softmax" else ns
        self.out = nn.Linear(out_in, n_out)
        if c.get("service_head", False):
            self.head = nn.Conv1d(cc, 1, 1)

    def convs(self):
        return [getattr(self, f"conv{l}") for l in range(self.c["conv_layers"])]

    def forward(self, x):
        b, w, ns, nc = x.shape
        arch = self.c["arch"]
        if arch == "cnn":
            y = x.permute(0, 3, 1, 2)
            for i, conv in enumerate(self.convs()):
                y = torch.relu(conv(y))
                if i == 0 and w >= 4:
                    y = torch.max_pool2d(y, (2, 1), (2, 1))
            last = y.mean(2).flatten(1)
        else:
            t = x.reshape(b * w, ns, nc)
            if arch == "hybrid":
                y = t.permute(0, 2, 1)
                for conv in self.convs():
                    y = torch.relu(conv(y))
                feats = y.flatten(1)
            else:
                feats = t.reshape(b * w, ns * nc)
            feats = feats.reshape(b, w, -1)
            seq, _ = self.lstm(feats)
            logits = self.out(seq[:, w - 1])
            if self.c.get("service_head", False):
                # The shared per-service scorer on the last tick's features.
                cc = self.c["conv_channels"]
                s = self.head(feats[:, w - 1].reshape(b, cc, ns)).reshape(b, ns)
                if self.c["output"] == "softmax":
                    s = torch.cat([s, torch.zeros(b, 1)], -1)
                logits = logits + s
            return logits
        return self.out(last)

    def probabilities(self, logits):
        if self.c["output"] == "softmax":
            return torch.softmax(logits, -1)
        p = torch.sigmoid(logits)
        quiet = torch.prod(1 - p, -1, keepdim=True)
        return torch.cat([p, quiet], -1)


def percentile(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def main():
    model_path, rust_json = sys.argv[1], sys.argv[2]
    iterations = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    torch.set_num_threads(1)
    header, weights = read_checkpoint(model_path)
    c = header["model"]
    net = Net(c)
    net.load_state_dict(weights, strict=True)
    net.eval()
    rust = json.load(open(rust_json))
    w, ns, nc = c["window"], c["n_services"], c["n_channels"]
    n = w * ns * nc
    sine = torch.tensor([math.sin(0.37 * k) for k in range(n)], dtype=torch.float32)
    with torch.no_grad():
        zero = net.probabilities(net(torch.zeros(1, w, ns, nc)))[0]
        p_sine = net.probabilities(net(sine.reshape(1, w, ns, nc)))[0]
        diff = max(
            (zero - torch.tensor(rust["zero_window"])).abs().max().item(),
            (p_sine - torch.tensor(rust["sine_window"])).abs().max().item(),
        )
        x = torch.randn(1, w, ns, nc)
        times = []
        for i in range(iterations + 50):
            t = time.perf_counter()
            p = net.probabilities(net(x))
            p.tolist()
            if i >= 50:
                times.append((time.perf_counter() - t) * 1e6)
    print(
        json.dumps(
            {
                "impl": f"pytorch {torch.__version__} eager",
                "arch": c["arch"],
                "threads": torch.get_num_threads(),
                "full_window_us": [percentile(times, 0.5), percentile(times, 0.99)],
                "max_abs_diff_vs_rust": diff,
            }
        )
    )
    if diff > 1e-4:
        raise SystemExit(f"outputs differ from the Rust run by {diff}")


if __name__ == "__main__":
    main()
