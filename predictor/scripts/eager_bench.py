#!/usr/bin/env python3
"""PyTorch eager twin of a seer-predictor checkpoint, for side-by-side timing.

Builds the same architecture in PyTorch, loads the checkpoint's weights (the
Seer header + safetensors layout is parsed here, no extra package needed),
prints the probabilities for an all-zero window (compare with
`seer-predictor bench --model M --json`, field `zero_window`) and times batch-1
inference on one thread.

    PYTHONPATH=.libtorch python3 predictor/scripts/eager_bench.py m.seer [iterations]
"""
import json
import struct
import sys
import time

import torch
from torch import nn


def read_checkpoint(path):
    b = open(path, "rb").read()
    assert b[:8] == b"SEERMODL", "not a Seer checkpoint"
    (hlen,) = struct.unpack_from("<Q", b, 12)
    header = json.loads(b[20:20 + hlen])
    (wlen,) = struct.unpack_from("<Q", b, 20 + hlen)
    st = b[28 + hlen:28 + hlen + wlen]
    (n,) = struct.unpack_from("<Q", st, 0)
    meta = json.loads(st[8:8 + n])
    data = st[8 + n:]
    weights = {}
    for name, info in meta.items():
        if name == "__metadata__":
            continue
        a, z = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:z]), dtype=torch.float32).reshape(info["shape"])
        weights[name] = t
    return header, weights


class Net(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        arch, S, C = cfg["arch"], cfg["n_services"], cfg["n_channels"]
        cc, H = cfg["conv_channels"], cfg["hidden"]
        nout = S + 1 if cfg["output"] == "softmax" else S
        self.convs = nn.ModuleList()
        if arch == "hybrid":
            for i in range(cfg["conv_layers"]):
                self.convs.append(nn.Conv1d(C if i == 0 else cc, cc, 3, padding=1))
            self.lstm = nn.LSTM(cc * S, H, cfg["lstm_layers"], batch_first=True)
            self.out = nn.Linear(H, nout)
        elif arch == "lstm":
            self.lstm = nn.LSTM(S * C, H, cfg["lstm_layers"], batch_first=True)
            self.out = nn.Linear(H, nout)
        else:
            for i in range(cfg["conv_layers"]):
                self.convs.append(nn.Conv2d(C if i == 0 else cc, cc, 3, padding=1))
            self.out = nn.Linear(cc * S, nout)

    def forward(self, x):
        B, W, S, C = x.shape
        arch = self.cfg["arch"]
        if arch == "cnn":
            y = x.permute(0, 3, 1, 2)
            for i, c in enumerate(self.convs):
                y = torch.relu(c(y))
                if i == 0 and W >= 4:
                    y = torch.max_pool2d(y, (2, 1), (2, 1))
            last = y.mean(2).flatten(1)
        else:
            y = x.reshape(B * W, S, C)
            if arch == "hybrid":
                y = y.permute(0, 2, 1)
                for c in self.convs:
                    y = torch.relu(c(y))
            y = y.flatten(1).reshape(B, W, -1)
            seq, _ = self.lstm(y)
            last = seq[:, -1]
        logits = self.out(last)
        if self.cfg["output"] == "softmax":
            return logits.softmax(-1)
        p = logits.sigmoid()
        return torch.cat([p, (1 - p).prod(1, keepdim=True)], 1)


def main():
    path = sys.argv[1]
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    torch.set_num_threads(1)
    header, w = read_checkpoint(path)
    cfg = header["model"]
    net = Net(cfg).eval()
    sd = {}
    for k, v in w.items():
        if k.startswith("conv"):
            i, rest = k[4:].split(".", 1)
            sd[f"convs.{i}.{rest}"] = v
        else:
            sd[k] = v
    net.load_state_dict(sd, strict=True)
    W, S, C = cfg["window"], cfg["n_services"], cfg["n_channels"]
    with torch.inference_mode():
        zero = net(torch.zeros(1, W, S, C))[0].tolist()
        x = torch.randn(1, W, S, C)
        for _ in range(50):
            net(x)
        times = []
        for _ in range(iters):
            t = time.perf_counter()
            net(x).tolist()
            times.append((time.perf_counter() - t) * 1e6)
    times.sort()
    p = lambda q: times[round((len(times) - 1) * q)]
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "arch": cfg["arch"],
        "services": S, "window": W, "full_window_us": [p(0.5), p(0.99)], "zero_window": zero,
    }))


if __name__ == "__main__":
    main()
