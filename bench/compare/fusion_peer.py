"""The fusion classifier of vidfuse re-implemented in plain PyTorch, and its training step timed
the way `vidfuse bench fusion` times vidfuse's.

What is replicated, and from where in vidfuse (keep the two in step when either changes):
  - the network: src/vidfuse/models/fusion.{h,cpp} (StreamEmbed, CrossAttentionLayer,
    AttentivePooler, FusionModel; module and parameter names are vidfuse's checkpoint names),
    its config and defaults: src/vidfuse/models/fusion_config.{h,cpp};
  - the initialisation, RNG draw for RNG draw: fusion.cpp (Linear's own reset, then
    trunc_normal(0.02)), so `torch.manual_seed(seed)` gives vidfuse's initial weights;
  - the per-channel input standardisation fitted before training: train/train_data.cpp
    (fit_input_statistics);
  - one training step: train/trainer.cpp (Trainer::fit and train_step: the next batch collated
    on a background thread, label-smoothed soft-target cross-entropy, zero_grad, backward, global
    gradient-norm clipping, AdamW with vidfuse's weight-decay groups and cosine schedule from
    train/optimizer.cpp, the loss/accuracy read back every step);
  - the eval figure: train/metrics.cpp (evaluate: no-grad forward in eval mode, the batch collated
    inline, top-1/top-5/loss/confusion accumulated);
  - the bench itself: apps/bench_fusion.cpp (same random data from the same seed, batch, one
    warm-up step, best step over --iters, analytic FLOPs).

Attention is torch.nn.functional.scaled_dot_product_attention, what a PyTorch user writes today;
vidfuse trains with its own per-head kernel (models/attention.cpp) and infers with the same SDPA.

  python bench/compare/fusion_peer.py --mode plain|compile|both --iters N --batch 32 [--config F]
  python bench/compare/fusion_peer.py --check-names CHECKPOINT.safetensors
  python bench/compare/fusion_peer.py --check-parity [--vidfuse PATH] [--workdir DIR]
"""
import argparse
import concurrent.futures
import copy
import ctypes
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# --- configuration (fusion_config.h, train_config.h) ---------------------------------------------

DEFAULT_MODEL = {
    "arch": "fusion",
    "semantic_dim": 768,
    "motion_dim": 1024,
    "semantic_grid": [16, 14, 14],
    "motion_grid": [8, 7, 7],
    "use_cls": True,
    "semantic_pool": 2,
    "standardize_inputs": True,
    "width": 512,
    "depth": 2,
    "heads": 8,
    "mlp_ratio": 4.0,
    "bidirectional": True,
    "pool_queries": 4,
    "joint_pool": False,
    "dropout": 0.1,
    "attn_dropout": 0.0,
    "head_dropout": 0.0,
    "num_classes": 174,
    "layer_norm_eps": 1e-6,
}

# The TrainConfig fields one step depends on, at vidfuse's defaults.
DEFAULT_TRAIN = {
    "lr": 1e-3,
    "min_lr": 1e-6,
    "weight_decay": 0.05,
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "label_smoothing": 0.1,
    "grad_clip": 1.0,
    "seed": 0,
    "warmup_steps": -1,
    "warmup_epochs": 1.0,
}


def model_config(overrides=None, where="model config"):
    """DEFAULT_MODEL with `overrides`; unknown keys are errors, as in fusion_config_from_json."""
    c = copy.deepcopy(DEFAULT_MODEL)
    for k, v in (overrides or {}).items():
        if k not in c:
            raise ValueError("%s: unknown key %r (known keys: %s)" % (where, k, ", ".join(sorted(c))))
        c[k] = v
    if c["arch"] not in ("fusion", "semantic", "motion", "late"):
        raise ValueError("%s: arch %r is not fusion, semantic, motion or late" % (where, c["arch"]))
    if c["width"] % c["heads"]:
        raise ValueError("%s: width must be divisible by heads" % where)
    if c["arch"] == "fusion" and c["depth"] < 1:
        raise ValueError("%s: arch fusion needs depth >= 1" % where)
    return c


def lround(x):
    """std::lround for the positive values used here (Python's round() rounds half to even)."""
    return int(math.floor(x + 0.5))


def ffn_hidden(c):
    return lround(c["width"] * c["mlp_ratio"])


def pooled_semantic_grid(c, g):
    k = c["semantic_pool"]
    return [g[0], (g[1] + k - 1) // k, (g[2] + k - 1) // k]


# --- initialisation (fusion.cpp, anonymous namespace) ----------------------------------------------


def trunc_normal_(t, std):
    """vidfuse's trunc_normal: N(0, std^2) cut at +-2 std by inverse CDF. Not
    nn.init.trunc_normal_, whose default cut is +-2 absolute and which draws differently."""
    with torch.no_grad():
        bound = math.erf(2.0 / math.sqrt(2.0))
        t.uniform_(-bound, bound).erfinv_().mul_(std * math.sqrt(2.0)).clamp_(-2 * std, 2 * std)
    return t


def init_linear(layer):
    # nn.Linear's constructor has already drawn its kaiming init, as LibTorch's does: the redraw
    # here consumes the generator in the same order, so a seed gives vidfuse's weights.
    trunc_normal_(layer.weight, 0.02)
    if layer.bias is not None:
        with torch.no_grad():
            layer.bias.zero_()


def embedding_table(*shape):
    return nn.Parameter(trunc_normal_(torch.empty(*shape), 0.02))


def layer_norm(dim, eps):
    return nn.LayerNorm(dim, eps=eps)


def maybe_dropout(x, p, training):
    return F.dropout(x, p, True) if p > 0 and training else x


def resize_table(table, m):
    """[n, D] table resampled to m rows (linear, align_corners=False), as vidfuse's."""
    if table.shape[0] == m:
        return table
    t = table.t().unsqueeze(0)
    t = F.interpolate(t, size=m, mode="linear", align_corners=False)
    return t.squeeze(0).t()


# --- the network (fusion.h / fusion.cpp), registration order as in vidfuse ------------------------


class Attention(nn.Module):
    def __init__(self, dim, heads, attn_dropout):
        super().__init__()
        self.heads, self.attn_dropout = heads, attn_dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim, bias=False)  # vidfuse: softmax cancels a key bias
        self.v_proj = nn.Linear(dim, dim)
        self.o_proj = nn.Linear(dim, dim)
        for layer in (self.q_proj, self.k_proj, self.v_proj, self.o_proj):
            init_linear(layer)

    def forward(self, query, context):
        B, Nq, D = query.shape
        Nk = context.shape[1]
        H = self.heads
        Dh = D // H
        q = self.q_proj(query).view(B, Nq, H, Dh).transpose(1, 2)
        k = self.k_proj(context).view(B, Nk, H, Dh).transpose(1, 2)
        v = self.v_proj(context).view(B, Nk, H, Dh).transpose(1, 2)
        scale = 1.0 / math.sqrt(Dh)
        if self.attn_dropout == 0 or not self.training:
            out = F.scaled_dot_product_attention(q, k, v, scale=scale)
            return self.o_proj(out.transpose(1, 2).reshape(B, Nq, D))
        # attn_dropout > 0 while training: vidfuse's explicit path, softmax in fp32.
        probs = torch.softmax((q @ k.transpose(-2, -1) * scale).float(), -1).to(v.dtype)
        probs = maybe_dropout(probs, self.attn_dropout, True)
        return self.o_proj((probs @ v).transpose(1, 2).reshape(B, Nq, D))


class FeedForward(nn.Module):
    def __init__(self, dim, hidden, dropout):
        super().__init__()
        self.dropout = dropout
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        init_linear(self.fc1)
        init_linear(self.fc2)

    def forward(self, x):
        h = F.gelu(self.fc1(x))  # exact (erf) GELU, torch::gelu's default
        return self.fc2(maybe_dropout(h, self.dropout, self.training))


class StreamEmbed(nn.Module):
    def __init__(self, in_dim, width, grid, with_cls, eps):
        super().__init__()
        self.proj = nn.Linear(in_dim, width)
        init_linear(self.proj)
        self.norm = layer_norm(width, eps)
        self.time_embed = embedding_table(grid[0], width)
        self.row_embed = embedding_table(grid[1], width)
        self.col_embed = embedding_table(grid[2], width)
        self.type_embed = embedding_table(width)
        self.cls_embed = embedding_table(width) if with_cls else None
        self.register_buffer("input_mean", torch.zeros(in_dim))
        self.register_buffer("input_std", torch.ones(in_dim))

    def forward(self, grid, cls=None):
        B, T, H, W = grid.shape[:4]
        D = self.time_embed.shape[1]

        def standardize(t):
            return (t - self.input_mean) / self.input_std

        x = self.norm(self.proj(standardize(grid)))  # [B, T, H, W, D]
        time_ = resize_table(self.time_embed, T)
        pos = (time_.view(T, 1, 1, D) + resize_table(self.row_embed, H).view(1, H, 1, D)
               + resize_table(self.col_embed, W).view(1, 1, W, D))
        tokens = (x + pos).reshape(B, T * H * W, D)
        if cls is not None:
            c = self.norm(self.proj(standardize(cls))) + time_ + self.cls_embed  # [B, T, D]
            tokens = torch.cat([tokens, c], 1)
        return tokens + self.type_embed


class CrossAttentionLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dropout = c["dropout"]
        eps, D = c["layer_norm_eps"], c["width"]
        self.sem_norm = layer_norm(D, eps)
        self.mot_norm = layer_norm(D, eps)
        self.sem_attn = Attention(D, c["heads"], c["attn_dropout"])
        self.sem_ffn_norm = layer_norm(D, eps)
        self.sem_ffn = FeedForward(D, ffn_hidden(c), c["dropout"])
        self.sem_attn_gate = nn.Parameter(torch.zeros(1))
        self.sem_ffn_gate = nn.Parameter(torch.zeros(1))
        self.bidirectional = c["bidirectional"]
        if self.bidirectional:
            self.mot_attn = Attention(D, c["heads"], c["attn_dropout"])
            self.mot_ffn_norm = layer_norm(D, eps)
            self.mot_ffn = FeedForward(D, ffn_hidden(c), c["dropout"])
            self.mot_attn_gate = nn.Parameter(torch.zeros(1))
            self.mot_ffn_gate = nn.Parameter(torch.zeros(1))

    def forward(self, s, m):
        train = self.training
        sn, mn = self.sem_norm(s), self.mot_norm(m)

        def branch(gate, update):
            return torch.tanh(gate) * maybe_dropout(update, self.dropout, train)

        # Both directions read the layer's inputs (vidfuse's order of operations).
        s_upd = branch(self.sem_attn_gate, self.sem_attn(sn, mn))
        if self.bidirectional:
            m = m + branch(self.mot_attn_gate, self.mot_attn(mn, sn))
        s = s + s_upd
        s = s + branch(self.sem_ffn_gate, self.sem_ffn(self.sem_ffn_norm(s)))
        if self.bidirectional:
            m = m + branch(self.mot_ffn_gate, self.mot_ffn(self.mot_ffn_norm(m)))
        return s, m


class AttentivePooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dropout = c["dropout"]
        eps, D = c["layer_norm_eps"], c["width"]
        self.queries = embedding_table(c["pool_queries"], D)
        self.kv_norm = layer_norm(D, eps)
        self.attn = Attention(D, c["heads"], c["attn_dropout"])
        self.ffn_norm = layer_norm(D, eps)
        self.ffn = FeedForward(D, ffn_hidden(c), c["dropout"])

    def forward(self, tokens):
        train = self.training
        q = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        q = q + maybe_dropout(self.attn(q, self.kv_norm(tokens)), self.dropout, train)
        q = q + maybe_dropout(self.ffn(self.ffn_norm(q)), self.dropout, train)
        return q.flatten(1)


class FusionModel(nn.Module):
    """forward(semantic [B,Ts,h,w,Cs], semantic_cls [B,Ts,Cs] or None, motion [B,Cm,Tm,Hm,Wm])
    -> logits [B, K]."""

    def __init__(self, c):
        super().__init__()
        self.config = c
        arch = c["arch"]
        eps = c["layer_norm_eps"]
        if arch != "motion":
            self.semantic_embed = StreamEmbed(c["semantic_dim"], c["width"],
                                              pooled_semantic_grid(c, c["semantic_grid"]),
                                              c["use_cls"], eps)
        if arch != "semantic":
            self.motion_embed = StreamEmbed(c["motion_dim"], c["width"], c["motion_grid"], False, eps)
        feature_dim = c["pool_queries"] * c["width"]
        if arch == "fusion":
            self.layers = nn.ModuleList([CrossAttentionLayer(c) for _ in range(c["depth"])])
        self.two_pools = arch == "late" or (arch == "fusion" and not c["joint_pool"])
        if self.two_pools:
            self.semantic_pool = AttentivePooler(c)
            self.motion_pool = AttentivePooler(c)
            feature_dim *= 2
        else:
            self.pool = AttentivePooler(c)
        self.head_norm = layer_norm(feature_dim, eps)
        self.classifier = nn.Linear(feature_dim, c["num_classes"])
        init_linear(self.classifier)

    def check_input(self, semantic, semantic_cls, motion):
        # The shape checks of FusionModelImpl::check_input (only shapes: free under compile).
        c = self.config
        if c["arch"] != "motion":
            if semantic is None or semantic.dim() != 5 or semantic.shape[4] != c["semantic_dim"]:
                raise ValueError("semantic features must be [B, T, h, w, %d]" % c["semantic_dim"])
            if c["use_cls"] and (semantic_cls is None or semantic_cls.dim() != 3):
                raise ValueError("the config has use_cls = true but there are no CLS tokens")
        if c["arch"] != "semantic":
            if motion is None or motion.dim() != 5 or motion.shape[1] != c["motion_dim"]:
                raise ValueError("motion features must be [B, %d, T, H, W]" % c["motion_dim"])

    def semantic_tokens(self, s, cls):
        k = self.config["semantic_pool"]
        if k > 1:
            B, T, C = s.shape[0], s.shape[1], s.shape[4]
            x = s.reshape(B * T, s.shape[2], s.shape[3], C).permute(0, 3, 1, 2)
            x = F.avg_pool2d(x, k, stride=k, ceil_mode=True, count_include_pad=False)
            s = x.permute(0, 2, 3, 1).reshape(B, T, x.shape[2], x.shape[3], C)
        return self.semantic_embed(s, cls if self.config["use_cls"] else None)

    def motion_tokens(self, m):
        return self.motion_embed(m.permute(0, 2, 3, 4, 1))  # channels last

    def features(self, semantic, semantic_cls, motion):
        self.check_input(semantic, semantic_cls, motion)
        arch = self.config["arch"]
        if arch == "semantic":
            return self.pool(self.semantic_tokens(semantic, semantic_cls))
        if arch == "motion":
            return self.pool(self.motion_tokens(motion))
        if arch == "late":
            return torch.cat([self.semantic_pool(self.semantic_tokens(semantic, semantic_cls)),
                              self.motion_pool(self.motion_tokens(motion))], 1)
        s = self.semantic_tokens(semantic, semantic_cls)
        m = self.motion_tokens(motion)
        for layer in self.layers:
            s, m = layer(s, m)
        if self.config["joint_pool"]:
            return self.pool(torch.cat([s, m], 1))
        return torch.cat([self.semantic_pool(s), self.motion_pool(m)], 1)

    def forward(self, semantic, semantic_cls, motion):
        f = self.features(semantic, semantic_cls, motion)
        f = maybe_dropout(self.head_norm(f), self.config["head_dropout"], self.training)
        return self.classifier(f)


def fusion_forward_cost(c, sg, mg, with_cls=True):
    """fusion_forward_cost of fusion.cpp: (forward FLOPs per sample, semantic tokens, motion tokens)."""
    D, Fh, Q = float(c["width"]), float(ffn_hidden(c)), float(c["pool_queries"])
    ps = pooled_semantic_grid(c, sg)
    ns_i = ps[0] * ps[1] * ps[2] + (ps[0] if with_cls and c["use_cls"] else 0)
    nm_i = mg[0] * mg[1] * mg[2]
    Ns, Nm = float(ns_i), float(nm_i)

    def attention(nq, nk):
        return 2 * nq * D * D * 2 + 2 * nk * D * D * 2 + 2 * nq * nk * D * 2

    def ffn(n):
        return 2 * n * D * Fh * 2

    arch = c["arch"]
    sem, mot = arch != "motion", arch != "semantic"
    f = 0.0
    if sem:
        f += float(sg[0]) * sg[1] * sg[2] * c["semantic_dim"] * (1 if c["semantic_pool"] > 1 else 0)
        f += 2 * Ns * c["semantic_dim"] * D
    if mot:
        f += 2 * Nm * c["motion_dim"] * D
    if arch == "fusion":
        for _ in range(c["depth"]):
            f += attention(Ns, Nm) + ffn(Ns)
            if c["bidirectional"]:
                f += attention(Nm, Ns) + ffn(Nm)
        f += (attention(Q, Ns + Nm) + ffn(Q) if c["joint_pool"]
              else attention(Q, Ns) + attention(Q, Nm) + 2 * ffn(Q))
    elif arch == "late":
        f += attention(Q, Ns) + attention(Q, Nm) + 2 * ffn(Q)
    else:
        f += attention(Q, Ns if sem else Nm) + ffn(Q)
    two = arch == "late" or (arch == "fusion" and not c["joint_pool"])
    f += 2 * Q * D * (2 if two else 1) * c["num_classes"]
    return f, ns_i, nm_i


# --- data, statistics, optimizer (dataset.cpp, optimizer.cpp) -------------------------------------


class TensorData:
    """train::TensorDataset: samples held as stacked tensors; a batch is collated per sample."""

    def __init__(self, semantic, semantic_cls, motion, labels):
        self.semantic, self.semantic_cls, self.motion = semantic, semantic_cls, motion
        self.labels = labels.long()

    def __len__(self):
        return self.labels.shape[0]

    def batch(self, indices):
        # load_batch + collate: one view per sample, stacked into a fresh batch (a copy).
        def stack(t):
            return None if t is None else torch.stack([t[i] for i in indices])

        labels = torch.tensor([int(self.labels[i]) for i in indices], dtype=torch.long)
        return stack(self.semantic), stack(self.semantic_cls), stack(self.motion), labels


def fit_input_statistics(model, data, max_samples=256):
    """dataset.cpp fit_input_statistics: float64 moments over every token of up to max_samples
    samples spread over the data; std floored at 1% of the stream's RMS std."""
    n = min(len(data), max(1, max_samples))
    moments = {"semantic": [None, None, 0], "motion": [None, None, 0]}

    def add(key, tokens):
        t = tokens.double()
        m = moments[key]
        if m[0] is None:
            m[0], m[1] = torch.zeros(t.shape[1], dtype=torch.double), torch.zeros(t.shape[1], dtype=torch.double)
        m[0] += t.sum(0)
        m[1] += t.pow(2).sum(0)
        m[2] += t.shape[0]

    has_sem, has_mot = hasattr(model, "semantic_embed"), hasattr(model, "motion_embed")
    for i in range(n):
        j = i * len(data) // n
        if has_sem and data.semantic is not None:
            s = data.semantic[j]
            add("semantic", s.reshape(-1, s.shape[-1]))
            if data.semantic_cls is not None and model.config["use_cls"]:
                add("semantic", data.semantic_cls[j])
        if has_mot and data.motion is not None:
            add("motion", data.motion[j].flatten(1).t())
    for key, embed in (("semantic", getattr(model, "semantic_embed", None)),
                       ("motion", getattr(model, "motion_embed", None))):
        total, total_sq, count = moments[key]
        if embed is None or count == 0:
            continue
        mean = total / count
        var = (total_sq / count - mean.pow(2)).clamp_min(0)
        floor = 0.01 * var.mean().sqrt()
        std = torch.maximum(var.sqrt(), floor.expand_as(var))
        if floor.item() == 0:
            std.fill_(1)
        with torch.no_grad():
            embed.input_mean.copy_(mean.float())
            embed.input_std.copy_(std.float())


def excluded_from_weight_decay(name, p):
    leaf = name.rsplit(".", 1)[-1]
    return p.dim() <= 1 or leaf == "queries" or leaf.endswith("embed")


def split_weight_decay(model):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if excluded_from_weight_decay(name, p) else decay).append((name, p))
    return decay, no_decay


def cosine_lr(step, total, warmup, base, min_lr):
    """CosineSchedule::lr of optimizer.cpp."""
    if step < warmup:
        return base * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_lr + 0.5 * (base - min_lr) * (1.0 + math.cos(math.pi * progress))


class PeerTrainer:
    """Trainer's construction and train_step for one process (dist is a no-op there)."""

    def __init__(self, mc, tc, data, compile_model=False, fit_statistics=True, precision="fp32"):
        self.mc, self.tc = mc, tc
        # bf16: what a PyTorch user writes for vidfuse's `--precision bf16` (bf16 matrix products,
        # fp32 master weights, norms and loss in fp32): autocast around the forward.
        self.bf16 = precision == "bf16"
        torch.manual_seed(int(tc["seed"]))  # Trainer: seed, then build the model
        self.model = FusionModel(mc)
        decay, no_decay = split_weight_decay(self.model)
        self.decay_names = [n for n, _ in decay]
        self.no_decay_names = [n for n, _ in no_decay]
        self.params = [p for _, p in decay] + [p for _, p in no_decay]
        betas = tuple(tc["betas"])
        self.optimizer = torch.optim.AdamW(
            [{"params": [p for _, p in decay], "weight_decay": tc["weight_decay"]},
             {"params": [p for _, p in no_decay], "weight_decay": 0.0}],
            lr=tc["lr"], betas=betas, eps=tc["eps"])
        if fit_statistics and mc["standardize_inputs"]:
            fit_input_statistics(self.model, data)
        # torch.compile of the model only: the loss, clipping and AdamW stay eager, as vidfuse's do.
        self.forward = torch.compile(self.model) if compile_model else self.model

    def set_lr(self, lr):
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def train_step(self, batch):
        semantic, cls, motion, labels = batch
        K = self.mc["num_classes"]
        lo, hi = int(labels.min()), int(labels.max())  # check_labels
        if lo < 0 or hi >= K:
            raise ValueError("label outside [0, %d)" % K)
        self.model.train()
        eps = self.tc["label_smoothing"]
        targets = F.one_hot(labels, K).float() * (1 - eps) + eps / K
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.forward(semantic, cls, motion)
        logits = logits.float()
        loss = -(targets * torch.log_softmax(logits, 1)).sum(1).mean()
        self.optimizer.zero_grad()  # set_to_none, LibTorch's default too
        loss.backward()
        if self.tc["grad_clip"] > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.tc["grad_clip"]))
        else:
            with torch.no_grad():
                norms = [p.grad.norm() for p in self.params if p.grad is not None]
                norm = float(torch.stack(norms).norm()) if norms else 0.0
        self.optimizer.step()
        acc = float(logits.argmax(1).eq(labels).double().mean())
        return {"loss": loss.item(), "acc": acc, "grad_norm": norm}

    def evaluate(self, data, batch_size):
        """metrics.cpp evaluate: eval mode, no grad, batches collated inline, metrics summed."""
        was_training = self.model.training
        self.model.eval()
        K = self.mc["num_classes"]
        sums = torch.zeros(K * K + 3, dtype=torch.double)
        with torch.no_grad():
            for begin in range(0, len(data), batch_size):
                idx = list(range(begin, min(len(data), begin + batch_size)))
                semantic, cls, motion, y = data.batch(idx)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                    logits = self.forward(semantic, cls, motion)
                logits = logits.float()
                pred = logits.argmax(1)
                top5 = logits.topk(min(5, K), 1)[1]
                hits5 = float(top5.eq(y.unsqueeze(1)).any(1).sum())
                loss = float(F.cross_entropy(logits.double(), y, reduction="sum"))
                sums[: K * K].index_add_(0, y * K + pred, torch.ones(y.shape[0], dtype=torch.double))
                sums[K * K] += loss
                sums[K * K + 1] += hits5
                sums[K * K + 2] += float(y.shape[0])
        if was_training:
            self.model.train()
        return sums


# --- the benchmark (apps/bench_fusion.cpp) --------------------------------------------------------


def apply_vidfuse_mallopt():
    """The glibc heap settings vidfuse's configure_runtime makes (core/runtime.cpp): big tensors
    from the heap, reused, instead of fresh page-faulted mmaps on every step."""
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 / 1024.0


def bench_data(mc, batch, frames):
    """The bench's random batch, drawn in vidfuse's order from vidfuse's seed: the same values."""
    sg = [frames, mc["semantic_grid"][1], mc["semantic_grid"][2]]
    mg = mc["motion_grid"]
    torch.manual_seed(0)
    semantic = torch.randn(batch, sg[0], sg[1], sg[2], mc["semantic_dim"])
    cls = torch.randn(batch, sg[0], mc["semantic_dim"]) if mc["use_cls"] else None
    motion = torch.randn(batch, mc["motion_dim"], mg[0], mg[1], mg[2])
    labels = torch.randint(0, mc["num_classes"], (batch,), dtype=torch.long)
    return TensorData(semantic, cls, motion, labels), sg, mg


def run_bench(mode, args, mc):
    peer = "pytorch-eager" if mode == "plain" else "pytorch-compile"
    base = {"bench": "fusion", "peer": peer, "dtype": args.precision, "precision": args.precision,
            "device": "cpu",
            "batch": args.batch, "torch": torch.__version__, "attention": "sdpa",
            "malloc": "vidfuse-mallopt" if args.mallopt else "glibc-default"}
    try:
        data, sg, mg = bench_data(mc, args.batch, args.frames)
        tc = dict(DEFAULT_TRAIN, warmup_steps=0)  # as the bench sets it
        trainer = PeerTrainer(mc, tc, data, compile_model=(mode == "compile"),
                              precision=args.precision)
        n = len(data)
        total_steps = 1 + args.iters
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        state = {"step": 0, "next": None}
        gen = torch.Generator().manual_seed(int(tc["seed"]))

        def launch():
            # batch_indices: steps_per_epoch is 1 here, so every step is a new epoch's permutation.
            idx = torch.randperm(n, generator=gen)[:args.batch].tolist()
            return pool.submit(data.batch, idx)

        def one_step():
            # One iteration of Trainer::fit: take the prefetched batch, start the next, step, log.
            batch = state["next"].result()
            state["next"] = launch()
            trainer.set_lr(cosine_lr(state["step"], total_steps, 0, tc["lr"], tc["min_lr"]))
            trainer.train_step(batch)
            state["step"] += 1

        state["next"] = launch()
        t0 = time.perf_counter()
        one_step()  # vidfuse's warm-up step; under compile, the compile of forward + backward
        first_train = time.perf_counter() - t0
        best, median = common.time_calls(one_step, args.iters, warmup=0)
        state["next"].result()
        pool.shutdown()

        t0 = time.perf_counter()
        trainer.evaluate(data, args.batch)  # warm-up; under compile, the eval graph's compile
        first_eval = time.perf_counter() - t0
        eval_best, eval_median = common.time_calls(lambda: trainer.evaluate(data, args.batch),
                                                   args.iters, warmup=0)

        fwd_flops, ns, nm = fusion_forward_cost(mc, sg, mg, True)
        train_sps = args.batch / best
        train_gflops = 3 * fwd_flops / 1e9 * train_sps
        gemm = common.gemm_gflops(args.precision)
        row = dict(base)
        row.update({
            "iters": args.iters,
            "semantic_tokens_in": sg[0] * sg[1] * sg[2],
            "semantic_tokens_fused": ns,
            "motion_tokens": nm,
            "params": sum(p.numel() for p in trainer.model.parameters()),
            "train_samples_per_s": train_sps,
            "seconds_per_step": best,
            "step_seconds_best": best,
            "step_seconds_median": median,
            "eval_samples_per_s": args.batch / eval_best,
            "eval_seconds_median": eval_median,
            "fusion_gflop_per_sample_fwd": fwd_flops / 1e9,
            "fusion_gflop_per_sample_train": 3 * fwd_flops / 1e9,
            "train_gflops": train_gflops,
            "gemm_gflops": gemm,
            "ratio_to_gemm": train_gflops / gemm,
            "peak_rss_gb": peak_rss_gb(),
            "model": mc,
        })
        if mode == "compile":
            # First calls, each compile plus one run; not in the step figures.
            row["compile_seconds"] = first_train + first_eval
            row["compile_seconds_train"] = first_train
            row["compile_seconds_eval"] = first_eval
        else:
            row["first_step_seconds"] = first_train
        common.emit(row)
    except Exception as exc:  # noqa: BLE001 -- a failed mode is a row that says so
        common.emit_error(base, exc)


# --- checkpoints: names, shapes and parity with vidfuse -------------------------------------------


def read_checkpoint(path):
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("format") != "vidfuse-train-checkpoint":
        raise ValueError("%s: not a vidfuse training checkpoint (format %r)" % (path, meta.get("format")))
    return tensors, json.loads(meta["config"]), json.loads(meta["state"])


def model_state(tensors):
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}


def load_into(model, tensors):
    """Strict load of a vidfuse checkpoint's model.* tensors (parameters and buffers)."""
    model.load_state_dict(model_state(tensors), strict=True)


def check_names(path):
    """Names and shapes of the peer against a vidfuse checkpoint; the optimizer state tells which
    of its model tensors are parameters (buffers have none)."""
    tensors, config, state = read_checkpoint(path)
    mc = model_config(config["model"], path + ": model")
    model = FusionModel(mc)
    ckpt = {k: tuple(v.shape) for k, v in model_state(tensors).items()}
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ckpt_params = {k[len("optimizer."):-len(".exp_avg")] for k in tensors
                   if k.startswith("optimizer.") and k.endswith(".exp_avg")}
    peer_params = {k: tuple(p.shape) for k, p in model.named_parameters()}
    missing = sorted(set(ckpt) - set(mine))
    unexpected = sorted(set(mine) - set(ckpt))
    mismatched = sorted(k for k in set(ckpt) & set(mine) if ckpt[k] != mine[k])
    loaded = True
    try:
        load_into(model, tensors)
    except RuntimeError:
        loaded = False
    params_ok = (not ckpt_params) or ckpt_params == set(peer_params)
    ok = not missing and not unexpected and not mismatched and loaded and params_ok
    common.emit({
        "check": "names", "checkpoint": path, "ok": ok,
        "default_config": mc == DEFAULT_MODEL,
        "tensors": len(ckpt), "parameters": len(peer_params),
        "params": sum(p.numel() for p in model.parameters()),
        "strict_load": loaded,
        "optimizer_names_equal_named_parameters": params_ok if ckpt_params else None,
        "missing_in_peer": missing[:20], "unexpected_in_peer": unexpected[:20],
        "shape_mismatches": mismatched[:20],
    })
    return ok


def rel_l2(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    d = float(b.norm())
    return float((a - b).norm()) / d if d > 0 else float((a - b).norm())


class Parity:
    """Drives the vidfuse binary on a store this script writes, and compares."""

    def __init__(self, vidfuse, workdir):
        self.vidfuse, self.dir = vidfuse, workdir
        self.store = os.path.join(workdir, "store")
        os.makedirs(self.store, exist_ok=True)
        self.ok = True

    def run(self, *args):
        cmd = [self.vidfuse] + [str(a) for a in args]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
        return p.stdout

    def write_sample(self, sid, semantic, cls, motion):
        """One store file in vidfuse's layout (data/store_schema.h): fp32 features, f64 times."""
        from safetensors.torch import save_file

        T, Tm = semantic.shape[0], motion.shape[1]
        save_file({"semantic.patch": semantic.contiguous(), "semantic.cls": cls.contiguous(),
                   "semantic.times": torch.arange(T, dtype=torch.float64),
                   "motion.mixed_5c": motion.contiguous(),
                   "motion.features": motion.mean((1, 2, 3)).contiguous(),
                   "motion.times": torch.arange(Tm, dtype=torch.float64)},
                  os.path.join(self.store, sid + ".safetensors"),
                  metadata={"format": "vidfuse-features/1", "id": sid, "streams": "semantic,motion"})

    def manifest(self, name, entries):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            for sid, label in entries:
                f.write("%s.mp4 %d\n" % (sid, label))
        return path

    def report(self, name, ok, **values):
        self.ok = self.ok and ok
        common.emit(dict({"check": name, "ok": ok}, **values))

    @staticmethod
    def train_log(run_dir):
        with open(os.path.join(run_dir, "log.jsonl")) as f:
            return [json.loads(line) for line in f if line.strip()]


def check_parity(args):
    torch.set_grad_enabled(True)
    workdir = args.workdir or tempfile.mkdtemp(prefix="fusion-peer-parity-")
    os.makedirs(workdir, exist_ok=True)
    P = Parity(common.find_vidfuse(args.vidfuse), workdir)

    # 1. The default config: a 2-video store of SSv2 shapes (labels 0 and 173, so the model has
    #    174 classes), one vidfuse training step, then names/shapes of the checkpoint.
    g = torch.Generator().manual_seed(1)
    for i in range(2):
        P.write_sample("d%d" % i, torch.randn(16, 14, 14, 768, generator=g),
                       torch.randn(16, 768, generator=g), torch.randn(1024, 8, 7, 7, generator=g))
    train_d = P.manifest("default.txt", [("d0", 0), ("d1", 173)])
    run_d = os.path.join(workdir, "run-default")
    P.run("train", "--store", P.store, "--train", train_d, "--output", run_d,
          "--max-steps", 1, "--batch-size", 2)
    P.ok = check_names(os.path.join(run_d, "checkpoint-last.safetensors")) and P.ok

    # 2. A small config, dropout off so that one step is deterministic on both sides. Odd patch
    #    grids exercise avg_pool2d's partial windows; the eval videos have other grids than the
    #    training ones, so the position tables are interpolated there.
    small = {"width": 32, "heads": 4, "depth": 2, "pool_queries": 2, "dropout": 0.0}
    K, N, T, h, Cs, Cm, mg = 5, 6, 4, 5, 24, 40, (2, 3, 3)
    g = torch.Generator().manual_seed(2)
    # An offset and scale per channel, so the input standardisation has something to do.
    sem_off, mot_off = 3 * torch.randn(Cs, generator=g), 2 * torch.randn(Cm, 1, 1, 1, generator=g)
    train_ids, labels = ["t%d" % i for i in range(N)], [i % K for i in range(N)]
    samples = {}

    def sample(sid, T_, h_, mg_):
        s = torch.randn(T_, h_, h_, Cs, generator=g) * 2 + sem_off
        c = torch.randn(T_, Cs, generator=g) + sem_off
        m = torch.randn(Cm, *mg_, generator=g) * 0.5 + mot_off
        samples[sid] = (s, c, m)
        P.write_sample(sid, s, c, m)

    for sid in train_ids:
        sample(sid, T, h, mg)
    eval_ids = ["e0", "e1", "e2"]
    sample("e0", T, h, mg)              # the training grids
    sample("e1", 6, 7, (3, 4, 4))       # other grids: time/row/col tables interpolated
    sample("e2", 3, 4, (1, 2, 2))
    cfg_path = os.path.join(workdir, "small.json")
    with open(cfg_path, "w") as f:
        json.dump({"model": small, "warmup_steps": 0, "seed": 7,
                   "data": {"store": P.store, "train": P.manifest("train.txt", list(zip(train_ids, labels)))},
                   "batch_size": N}, f)
    run1, run2 = os.path.join(workdir, "run1"), os.path.join(workdir, "run2")
    P.run("train", "--config", cfg_path, "--output", run1, "--max-steps", 1)
    ckpt_a = os.path.join(run1, "checkpoint-last.safetensors")
    P.run("train", "--config", cfg_path, "--output", run2, "--max-steps", 2, "--resume", ckpt_a)
    ckpt_b = os.path.join(run2, "checkpoint-last.safetensors")
    log1, log2 = P.train_log(run1)[-1], P.train_log(run2)[-1]
    A, cfg_a, _ = read_checkpoint(ckpt_a)
    B, _, _ = read_checkpoint(ckpt_b)
    mc = model_config(cfg_a["model"], ckpt_a)
    tc = dict(DEFAULT_TRAIN)
    tc.update({k: cfg_a[k] for k in tc if k in cfg_a})
    data = TensorData(torch.stack([samples[i][0] for i in train_ids]),
                      torch.stack([samples[i][1] for i in train_ids]),
                      torch.stack([samples[i][2] for i in train_ids]), torch.tensor(labels))
    batch = data.batch(list(range(N)))  # the whole set: loss and gradients do not depend on order
    P.ok = check_names(ckpt_a) and P.ok

    b1, b2 = tc["betas"]
    names = [n for n, _ in FusionModel(mc).named_parameters()]

    def grads_vs(grads, g_vf):
        """Global and worst per-tensor relative L2 error of the peer's clipped gradients."""
        per = {n: rel_l2(grads[n], g_vf[n]) for n in names if float(g_vf[n].norm()) > 0}
        worst = max(per, key=per.get)
        glob = rel_l2(torch.cat([grads[n].flatten() for n in names]),
                      torch.cat([g_vf[n].flatten() for n in names]))
        return glob, worst, per[worst]

    def keep_grads(t):
        """Makes t's optimizer record the gradients it is handed (after clipping)."""
        grads, orig = {}, t.optimizer.step

        def step():
            for n, p in t.model.named_parameters():
                grads[n] = p.grad.detach().clone()
            orig()

        t.optimizer.step = step
        return grads

    def load_adamw_state(t, ckpt):
        for n, p in t.model.named_parameters():
            key = "optimizer.%s." % n
            t.optimizer.state[p] = {"step": torch.tensor(float(ckpt[key + "step"])),
                                    "exp_avg": ckpt[key + "exp_avg"].clone(),
                                    "exp_avg_sq": ckpt[key + "exp_avg_sq"].clone()}

    def rel(a, b):
        return abs(a - b) / abs(b)

    # 2a. From scratch: the peer built from the same seed, statistics fitted, one step. vidfuse's
    #     step-1 gradient is exp_avg / (1 - b1); its initial weights follow from checkpoint A by
    #     undoing AdamW's first update, W0 = (W1 + lr m^/(sqrt(v^) + eps)) / (1 - lr wd).
    lr1 = cosine_lr(0, 1, 0, tc["lr"], tc["min_lr"])
    t = PeerTrainer(mc, tc, data)
    stats_err = max(rel_l2(getattr(t.model, e).input_mean, A["model.%s.input_mean" % e]) +
                    rel_l2(getattr(t.model, e).input_std, A["model.%s.input_std" % e])
                    for e in ("semantic_embed", "motion_embed"))
    W0 = {n: p.detach().clone() for n, p in t.model.named_parameters()}
    decay = set(t.decay_names)
    W0_vf = {}
    for n in names:
        m, v = A["optimizer.%s.exp_avg" % n], A["optimizer.%s.exp_avg_sq" % n]
        upd = (m / (1 - b1)) / ((v / (1 - b2)).sqrt() + tc["eps"])
        wd = tc["weight_decay"] if n in decay else 0.0
        W0_vf[n] = (A["model." + n].double() + lr1 * upd.double()) / (1 - lr1 * wd)
    e_init = rel_l2(torch.cat([W0[n].flatten() for n in names]), torch.cat([W0_vf[n].flatten() for n in names]))
    grads = keep_grads(t)
    t.set_lr(lr1)
    r1 = t.train_step(batch)
    g_vf = {n: A["optimizer.%s.exp_avg" % n] / (1 - b1) for n in names}
    e_grad1, worst1, worst1_err = grads_vs(grads, g_vf)
    e_loss1, e_norm1 = rel(r1["loss"], log1["loss"]), rel(r1["grad_norm"], log1["grad_norm"])
    P.report("train-step-1-from-seed",
             stats_err < 1e-6 and e_init < 1e-5 and e_loss1 < 1e-5 and e_norm1 < 1e-4 and e_grad1 < 1e-4,
             input_statistics_rel_err=stats_err, init_weights_rel_l2_err=e_init,
             loss_vidfuse=log1["loss"], loss_peer=r1["loss"], loss_rel_err=e_loss1,
             grad_norm_vidfuse=log1["grad_norm"], grad_norm_peer=r1["grad_norm"], grad_norm_rel_err=e_norm1,
             clipped=log1["grad_norm"] > tc["grad_clip"] > 0,
             clipped_grad_rel_l2_err=e_grad1, worst_tensor=worst1, worst_tensor_rel_l2_err=worst1_err,
             note="gates are closed at init (tanh(0) = 0): the cross-attention layers get zero "
                  "gradients at step 1 on both sides")

    def step_from(name, prev, nxt, log, step_index, total_steps):
        """One peer step from checkpoint `prev` (weights + AdamW state) against vidfuse's step to
        `nxt`; vidfuse's clipped gradient is (m_next - b1 m_prev) / (1 - b1)."""
        lr = cosine_lr(step_index, total_steps, 0, tc["lr"], tc["min_lr"])
        t = PeerTrainer(mc, tc, data, fit_statistics=False)
        load_into(t.model, prev)
        load_adamw_state(t, prev)
        grads = keep_grads(t)
        t.set_lr(lr)
        r = t.train_step(batch)
        g_vf = {n: (nxt["optimizer.%s.exp_avg" % n] - b1 * prev["optimizer.%s.exp_avg" % n]) / (1 - b1)
                for n in names}
        e_grad, worst, worst_err = grads_vs(grads, g_vf)
        d_vf = torch.cat([(nxt["model." + n] - prev["model." + n]).flatten() for n in names])
        d_peer = torch.cat([(p.detach() - prev["model." + n]).flatten() for n, p in t.model.named_parameters()])
        e_upd = rel_l2(d_peer, d_vf)
        e_loss, e_norm = rel(r["loss"], log["loss"]), rel(r["grad_norm"], log["grad_norm"])
        # The optimizer alone: the peer's AdamW handed vidfuse's gradients must land on vidfuse's
        # weights and moments. (Adam's early updates are nearly sign(g), so the full-step update
        # also carries the gradients' rounding, amplified where a gradient is near zero.)
        t = PeerTrainer(mc, tc, data, fit_statistics=False)
        load_into(t.model, prev)
        load_adamw_state(t, prev)
        for n, p in t.model.named_parameters():
            p.grad = g_vf[n].clone()
        t.set_lr(lr)
        t.optimizer.step()
        d_opt = torch.cat([(p.detach() - prev["model." + n]).flatten() for n, p in t.model.named_parameters()])
        e_opt = rel_l2(d_opt, d_vf)
        e_sq = rel_l2(torch.cat([t.optimizer.state[p]["exp_avg_sq"].flatten() for _, p in t.model.named_parameters()]),
                      torch.cat([nxt["optimizer.%s.exp_avg_sq" % n].flatten() for n in names]))
        gates = [float(torch.tanh(prev["model." + n]).abs()) for n in names if n.endswith("_gate")]
        P.report(name, e_loss < 1e-5 and e_norm < 1e-4 and e_grad < 1e-4 and e_opt < 1e-4 and e_sq < 1e-4,
                 lr=lr, max_abs_tanh_gate=max(gates), loss_vidfuse=log["loss"], loss_peer=r["loss"],
                 loss_rel_err=e_loss, grad_norm_vidfuse=log["grad_norm"], grad_norm_peer=r["grad_norm"],
                 grad_norm_rel_err=e_norm, clipped=log["grad_norm"] > tc["grad_clip"] > 0,
                 clipped_grad_rel_l2_err=e_grad, worst_tensor=worst, worst_tensor_rel_l2_err=worst_err,
                 adamw_on_vidfuse_grads_update_rel_l2_err=e_opt, adamw_exp_avg_sq_rel_l2_err=e_sq,
                 full_step_update_rel_l2_err=e_upd)

    # 2b. Step 2 from checkpoint A: the gates have moved off zero (by ~lr), so every parameter
    #     has a gradient.
    step_from("train-step-2-from-checkpoint", A, B, log2, 1, 2)

    # 2c. Two steps from a 0.02-scale init leave a model whose logits hardly depend on its input
    #     (and whose gates are barely open), which would make a weak test of the forward.
    #     Checkpoint C is B with trained-like weights: the gates opened (tanh ~ 0.5-0.9), every
    #     matrix drawn at unit gain (std 1/sqrt(fan_in)), unit-scale queries and position tables
    #     (so their interpolation shows). vidfuse resumes from it for step 3, and its eval reads
    #     it in part 3.
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(ckpt_b, "pt") as f:
        meta_b = f.metadata()
    C = {k: v.clone() for k, v in B.items()}
    gc = torch.Generator().manual_seed(3)
    for k in C:
        if k.startswith("model.") and k.endswith("_gate"):
            C[k] = 0.5 + 0.8 * torch.rand(C[k].shape, generator=gc)
        if k.startswith("model.") and k.split(".")[-1] in ("time_embed", "row_embed", "col_embed",
                                                          "queries"):
            C[k] = torch.randn(C[k].shape, generator=gc)
        if k.startswith("model.") and k.endswith(".weight") and C[k].dim() == 2:
            C[k] = torch.randn(C[k].shape, generator=gc) / math.sqrt(C[k].shape[1])
    ckpt_c = os.path.join(workdir, "checkpoint-gates-open.safetensors")
    save_file({k: v.contiguous() for k, v in C.items()}, ckpt_c, metadata=meta_b)
    run3 = os.path.join(workdir, "run3")
    P.run("train", "--config", cfg_path, "--output", run3, "--max-steps", 3, "--resume", ckpt_c)
    D, _, _ = read_checkpoint(os.path.join(run3, "checkpoint-last.safetensors"))
    step_from("train-step-3-gates-open", C, D, P.train_log(run3)[-1], 2, 3)

    # 3. Forward parity in eval mode with checkpoint C. `vidfuse eval` on a one-video manifest
    #    labelled j reports loss = logsumexp(z) - z_j (float64 from the fp32 logits); over every j
    #    that gives the logits up to their per-video mean, which softmax cannot see anyway.
    model = FusionModel(mc)
    load_into(model, C)
    model.eval()
    worst_err, details = 0.0, []
    for sid in eval_ids:
        s, c, m = samples[sid]
        with torch.no_grad():
            z = model(s[None], c[None], m[None])[0].double()
        losses = []
        for j in range(K):
            man = P.manifest("eval-%s-%d.txt" % (sid, j), [(sid, j)])
            out = json.loads(P.run("eval", "--checkpoint", ckpt_c, "--manifest", man, "--store", P.store, "--json"))
            losses.append(out["loss"])
        losses = torch.tensor(losses, dtype=torch.double)
        z_vf = losses.mean() - losses  # = z_j - mean(z)
        z_peer = z - z.mean()
        err = float((z_peer - z_vf).abs().max() / z_vf.abs().max())
        worst_err = max(worst_err, err)
        details.append({"video": sid, "grid": list(s.shape[:3]), "motion_grid": list(m.shape[1:]),
                        "rel_err": err, "logits_centred_vidfuse": [round(v, 6) for v in z_vf.tolist()]})
    P.report("eval-logits", worst_err <= 1e-4, max_rel_err=worst_err, videos=details,
             note="centred logits (z - mean z), recovered from per-label `vidfuse eval` losses")
    common.emit({"check": "summary", "ok": P.ok, "workdir": workdir})
    if not args.keep and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return P.ok


# --- command line ---------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=["plain", "compile", "both"], default="plain")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: autocast to bf16 around the forward, as vidfuse's --precision bf16")
    ap.add_argument("--iters", type=int, default=3, help="timed steps (vidfuse bench's default: 3)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--frames", type=int, default=16, help="semantic frames per video")
    ap.add_argument("--config", help="train config JSON whose \"model\" is benchmarked")
    ap.add_argument("--mallopt", action="store_true",
                    help="apply vidfuse's glibc heap settings (core/runtime.cpp) first")
    ap.add_argument("--check-names", metavar="CHECKPOINT",
                    help="strict-load a vidfuse training checkpoint; compare names and shapes")
    ap.add_argument("--check-parity", action="store_true",
                    help="train/eval with the vidfuse binary on a small store and compare")
    ap.add_argument("--vidfuse", help="the vidfuse binary (default: $VIDFUSE, build/vidfuse)")
    ap.add_argument("--workdir", help="--check-parity: folder for the store and runs (kept)")
    ap.add_argument("--keep", action="store_true", help="--check-parity: keep the temp folder")
    args = ap.parse_args()

    common.setup_torch()
    torch.set_grad_enabled(True)  # setup_torch() turns grad off for the inference peers
    if args.mallopt:
        apply_vidfuse_mallopt()
    if args.check_names:
        sys.exit(0 if check_names(args.check_names) else 1)
    if args.check_parity:
        sys.exit(0 if check_parity(args) else 1)
    if args.batch < 1 or args.iters < 1:
        ap.error("--batch and --iters must be >= 1")
    overrides = {}
    if args.config:
        with open(args.config) as f:
            overrides = json.load(f).get("model", {})
    mc = model_config(overrides, args.config or "model config")
    for mode in (["plain", "compile"] if args.mode == "both" else [args.mode]):
        run_bench(mode, args, mc)


if __name__ == "__main__":
    main()
