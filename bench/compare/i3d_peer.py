"""The I3D peer: piergiaj/pytorch-i3d's InceptionI3d, written out in plain PyTorch 2.x.

This is the network people run today from Python (pytorch-i3d, and the many repositories that
vendor it): TF-"SAME" padding computed from the input at run time and applied with F.pad before
each convolution and max-pool, BatchNorm3d(eps=1e-3) kept as its own op, ReLU, and a 1x1x1 logits
convolution with bias after AvgPool3d([2,7,7]). Parameter names are piergiaj's, so one state dict
feeds both this peer and `vidfuse forward`.

  python bench/compare/i3d_peer.py --json --frames 64 --size 224 --iters 3 --dtype both --mode both
      one JSON line per (mode, dtype), keys as in `vidfuse bench i3d --json`
  python bench/compare/i3d_peer.py --check-parity [--parity-frames 16]
      same weights and input through this peer and `vidfuse forward`; fp32 relative error
  python bench/compare/i3d_peer.py --check-fixture /work/shared/fixtures/i3d/rgb
      this peer against the reference outputs stored with the fixtures
  python bench/compare/i3d_peer.py --save-weights W.pt [--seed 0]
      the peer's seeded random init as a piergiaj-named state dict

The benchmark times what pytorch-i3d does in eval mode, nothing more: no BatchNorm folding, no
torch.compile. "channels_last_3d" is the one cheap change a user might make (model and input in
NDHWC), so it is a second row rather than a replacement.
"""
import argparse
import copy
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

torch = common.setup_torch()
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------------------------
# The network (piergiaj/pytorch-i3d pytorch_i3d.py, same module names and forward)


def same_padding(n, k, s):
    """TF "SAME" for one dimension of size n: the output has ceil(n / s) elements and an odd
    remainder of padding goes after (piergiaj's compute_pad)."""
    total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
    return total // 2, total - total // 2


def pad_same(x, kernel, stride):
    t, h, w = x.shape[2:]
    pt = same_padding(t, kernel[0], stride[0])
    ph = same_padding(h, kernel[1], stride[1])
    pw = same_padding(w, kernel[2], stride[2])
    # Zero padding, also before the max-pools: their inputs are post-ReLU, so zero acts as -inf.
    return F.pad(x, (pw[0], pw[1], ph[0], ph[1], pt[0], pt[1]))


class MaxPool3dSamePadding(nn.MaxPool3d):
    def forward(self, x):
        return super().forward(pad_same(x, self.kernel_size, self.stride))


class Unit3D(nn.Module):
    """Conv3d (no bias) -> BatchNorm3d(eps 1e-3) -> ReLU; the logits unit is a bare conv + bias."""

    def __init__(self, in_channels, out_channels, kernel=(1, 1, 1), stride=(1, 1, 1),
                 bn_relu=True):
        super().__init__()
        self.kernel, self.stride, self.bn_relu = tuple(kernel), tuple(stride), bn_relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0,
                                bias=not bn_relu)
        if bn_relu:
            self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, x):
        x = self.conv3d(pad_same(x, self.kernel, self.stride))
        return F.relu(self.bn(x)) if self.bn_relu else x


class InceptionModule(nn.Module):
    def __init__(self, in_channels, out):  # out = [b0, b1a, b1b, b2a, b2b, b3b]
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0])
        self.b1a = Unit3D(in_channels, out[1])
        self.b1b = Unit3D(out[1], out[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, out[3])
        self.b2b = Unit3D(out[3], out[4], (3, 3, 3))
        self.b3a = MaxPool3dSamePadding(kernel_size=[3, 3, 3], stride=(1, 1, 1), padding=0)
        self.b3b = Unit3D(in_channels, out[5])
        self.out_channels = out[0] + out[2] + out[4] + out[5]

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)),
                          self.b3b(self.b3a(x))], dim=1)


MIXED = [
    ("Mixed_3b", [64, 96, 128, 16, 32, 32]),
    ("Mixed_3c", [128, 128, 192, 32, 96, 64]),
    ("MaxPool3d_4a_3x3", ([3, 3, 3], (2, 2, 2))),
    ("Mixed_4b", [192, 96, 208, 16, 48, 64]),
    ("Mixed_4c", [160, 112, 224, 24, 64, 64]),
    ("Mixed_4d", [128, 128, 256, 24, 64, 64]),
    ("Mixed_4e", [112, 144, 288, 32, 64, 64]),
    ("Mixed_4f", [256, 160, 320, 32, 128, 128]),
    ("MaxPool3d_5a_2x2", ([2, 2, 2], (2, 2, 2))),
    ("Mixed_5b", [256, 160, 320, 32, 128, 128]),
    ("Mixed_5c", [384, 192, 384, 48, 128, 128]),
]


class InceptionI3d(nn.Module):
    def __init__(self, num_classes=400, in_channels=3, dropout=0.5):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSamePadding(kernel_size=[1, 3, 3], stride=(1, 2, 2),
                                                     padding=0)
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSamePadding(kernel_size=[1, 3, 3], stride=(1, 2, 2),
                                                     padding=0)
        channels = 192
        self.mixed_order = []
        for name, spec in MIXED:
            if name.startswith("MaxPool"):
                layer = MaxPool3dSamePadding(kernel_size=spec[0], stride=spec[1], padding=0)
            else:
                layer = InceptionModule(channels, spec)
                channels = layer.out_channels
            self.add_module(name, layer)
            self.mixed_order.append(name)
        self.avg_pool = nn.AvgPool3d(kernel_size=[2, 7, 7], stride=(1, 1, 1))
        self.dropout = nn.Dropout(dropout)
        self.logits = Unit3D(channels, num_classes, bn_relu=False)

    def endpoints(self, x):
        """mixed_5c, features (the [2,7,7] average pool) and 5-D logits [B,K,T',H',W']: the
        tensors `vidfuse forward` writes."""
        x = self.Conv3d_1a_7x7(x)
        x = self.MaxPool3d_2a_3x3(x)
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        x = self.MaxPool3d_3a_3x3(x)
        for name in self.mixed_order:
            x = getattr(self, name)(x)
        if x.dtype == torch.bfloat16:
            # PyTorch 2.15 has no bf16 CPU kernel for avg_pool3d ("avg_pool3d_out_frame" not
            # implemented): pooled in fp32, as a user would have to (7x7x2 sums, cheap).
            features = self.avg_pool(x.float()).to(x.dtype)
        else:
            features = self.avg_pool(x)
        return x, features, self.logits(self.dropout(features))

    def forward(self, x):
        # piergiaj's spatial_squeeze: [B, K, T'] for a 224 input.
        return self.endpoints(x)[2].squeeze(3).squeeze(3)


# ---------------------------------------------------------------------------------------------
# Weights


def read_state(path):
    """A state dict from .safetensors or any torch.save file (zip or legacy pickle)."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def model_for_state(state):
    """A model shaped for a piergiaj-named state dict (classes and input channels read from it),
    loaded strictly in fp32, in eval mode."""
    first, last = state["Conv3d_1a_7x7.conv3d.weight"], state["logits.conv3d.weight"]
    if first.shape[0] != 64:
        raise ValueError("only the full-width I3D (64 filters in Conv3d_1a_7x7) is supported")
    model = InceptionI3d(num_classes=last.shape[0], in_channels=first.shape[1])
    state = dict(state)
    for key, value in model.state_dict().items():
        # PyTorch <= 0.3 files (piergiaj's released rgb_imagenet.pt) predate this buffer.
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def random_model(seed, calibrate=True):
    """PyTorch's default init, seeded. With calibrate, BatchNorm is made non-trivial (gamma and
    beta drawn at random, running statistics taken from one random clip) so a parity check
    exercises the folding of every statistic while activations stay O(1) through all 57 units."""
    torch.manual_seed(seed)
    model = InceptionI3d()
    if calibrate:
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
        for bn in bns:
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.2, 0.2)
            bn.momentum = None  # cumulative average: after one batch, the batch's statistics
        model.train()
        with torch.no_grad():
            model(torch.rand(1, 3, 16, 224, 224) * 2 - 1)
        for bn in bns:
            bn.momentum = 0.01
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Parity


def rel_error(a, b):
    """||a - b|| / ||b||, the fixtures' measure, in float64."""
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def max_rel_error(a, b):
    """max |a - b| / max |b|: the worst element against the tensor's scale."""
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def prepare(model, x, mode, dtype):
    """The model and input in a mode's dtype and memory format: a copy, since Module.to works in
    place and the caller may reuse the model for another mode."""
    model = copy.deepcopy(model)
    if dtype == "bf16":
        model, x = model.to(torch.bfloat16), x.to(torch.bfloat16)
    if mode == "channels_last_3d":
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return model, x


ENDPOINTS = ("mixed_5c", "features", "logits")


def compare_endpoints(ours, reference, base, judged=ENDPOINTS):
    """One row: per-endpoint relative errors and those of the time-averaged logits (what a
    classifier reads, [B, K]); ok when every endpoint in `judged` is within 1e-4 by both
    measures."""
    row = dict(base)
    worst = 0.0
    for name, mine in zip(ENDPOINTS, ours):
        ref = reference[name]
        if tuple(mine.shape) != tuple(ref.shape):
            raise ValueError("%s: shape %s, reference %s" % (name, tuple(mine.shape),
                                                             tuple(ref.shape)))
        row["rel_error_" + name] = rel_error(mine, ref)
        row["max_rel_error_" + name] = max_rel_error(mine, ref)
        if name in judged:
            worst = max(worst, row["rel_error_" + name], row["max_rel_error_" + name])
    row["rel_error_logits_mean"] = rel_error(ours[2].mean((2, 3, 4)),
                                             reference["logits"].mean((2, 3, 4)))
    row["logits_shape"] = list(ours[2].shape)
    row["judged"] = list(judged)
    row["tolerance"] = 1e-4
    row["ok"] = worst <= 1e-4
    return row


def check_parity(args, modes):
    """Same weights and input through vidfuse forward and this peer, fp32."""
    from safetensors.torch import load_file, save_file

    vidfuse = common.find_vidfuse(args.vidfuse)
    model = model_for_state(read_state(args.weights)) if args.weights else random_model(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    x = torch.rand(1, 3, args.parity_frames, 224, 224, generator=gen) * 2 - 1
    ok = True
    with tempfile.TemporaryDirectory(prefix="i3d-parity-") as tmp:
        weights = args.save_weights or os.path.join(tmp, "i3d.pt")
        torch.save(model.state_dict(), weights)
        inp, out = os.path.join(tmp, "input.safetensors"), os.path.join(tmp, "out.safetensors")
        save_file({"input": x.contiguous()}, inp)
        cmd = [vidfuse, "--threads", str(common.threads()), "forward", "--model", weights,
               "--input", inp, "--output", out, "--dtype", "fp32"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        reference = load_file(out)
    # Both sides against float64: with BatchNorm calibrated, every unit renormalises to unit
    # variance, so fp32 rounding accumulates through the 57 units to ~1e-4 in mixed_5c on *either*
    # side. The float64 run shows how much of the peer-vidfuse difference is that noise floor.
    with torch.inference_mode():
        exact = copy.deepcopy(model).double().endpoints(x.double())
    floor = {"rel_error_%s_vidfuse_vs_fp64" % n: rel_error(reference[n], e)
             for n, e in zip(ENDPOINTS, exact)}
    for mode in modes:
        base = {"bench": "i3d-parity", "peer": "pytorch-" + mode, "dtype": "fp32",
                "frames": args.parity_frames, "size": 224, "reference": "vidfuse forward",
                "torch": torch.__version__}
        try:
            m, xin = prepare(model, x, mode, "fp32")
            with torch.inference_mode():
                ours = [t.float().contiguous() for t in m.endpoints(xin)]
            # The logits are what the brief holds to 1e-4; the inner endpoints are reported.
            row = compare_endpoints(ours, reference, base, judged=("logits",))
            row.update(floor)
            for n, mine, e in zip(ENDPOINTS, ours, exact):
                row["rel_error_%s_peer_vs_fp64" % n] = rel_error(mine, e)
            ok &= row["ok"]
            emit(row, args.json)
        except Exception as exc:  # noqa: BLE001 -- a row that says so
            common.emit_error(base, exc)
            ok = False
    return ok


def check_fixture(args, modes):
    """This peer against the reference outputs stored with the fixtures (computed in float64 by
    piergiaj's InceptionI3d): model.safetensors plus caseN.safetensors in DIR."""
    from safetensors.torch import load_file

    model = model_for_state(read_state(os.path.join(args.check_fixture, "model.safetensors")))
    ok = True
    for name in sorted(os.listdir(args.check_fixture)):
        if not name.startswith("case"):
            continue
        data = load_file(os.path.join(args.check_fixture, name))
        for mode in modes:
            base = {"bench": "i3d-parity", "peer": "pytorch-" + mode, "dtype": "fp32",
                    "reference": os.path.join(args.check_fixture, name),
                    "input_shape": list(data["input"].shape), "torch": torch.__version__}
            try:
                m, xin = prepare(model, data["input"].float(), mode, "fp32")
                with torch.inference_mode():
                    ours = [t.float().contiguous() for t in m.endpoints(xin)]
                row = compare_endpoints(ours, data, base)
                ok &= row["ok"]
                emit(row, args.json)
            except Exception as exc:  # noqa: BLE001
                common.emit_error(base, exc)
                ok = False
    return ok


# ---------------------------------------------------------------------------------------------
# Benchmark


def conv_flops(model, x):
    """2 x multiply-accumulates of every convolution for input x (the usual GFLOP figure, the one
    vidfuse's i3d_flops counts: about 222e9 for 64x224x224), counted by hooks on a real forward,
    which doubles as the warm-up."""
    total = [0]

    def hook(m, _inputs, y):
        k = m.kernel_size[0] * m.kernel_size[1] * m.kernel_size[2]
        total[0] += 2 * y.numel() * (m.in_channels // m.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv3d)]
    model(x).sum().item()
    for h in handles:
        h.remove()
    return total[0]


def bench(args, modes, dtypes):
    for mode in modes:
        for dtype in dtypes:
            base = {"bench": "i3d", "peer": "pytorch-" + mode, "dtype": dtype, "device": "cpu",
                    "batch": args.batch, "frames": args.frames, "size": args.size,
                    "iters": args.iters, "torch": torch.__version__}
            if dtype == "bf16" and not common.has_native_bf16() and not args.force_bf16:
                emit(dict(base, skipped="no native bf16 on this CPU (%s)" % common.cpu_isa()),
                     args.json)
                continue
            try:
                # Like `vidfuse bench i3d`: default-init random weights of the real shape,
                # seed 0, a clip in [-1, 1]. Weight values do not change the work done.
                if args.weights:
                    model = model_for_state(read_state(args.weights))
                else:
                    model = random_model(args.seed, calibrate=False)
                clip = torch.rand(args.batch, 3, args.frames, args.size, args.size) * 2 - 1
                model, clip = prepare(model, clip, mode, dtype)
                with torch.inference_mode():
                    flops = conv_flops(model, clip)  # also the warm-up run
                    best, median = common.time_calls(lambda: model(clip).sum().item(),
                                                     args.iters, warmup=0)
                best, median = best / args.batch, median / args.batch
                gflop = flops / args.batch / 1e9
                gemm = common.gemm_gflops(dtype)
                emit(dict(base, s_per_clip=median, s_per_clip_best=best, gflop_per_clip=gflop,
                          gflops=gflop / median, gemm_gflops=gemm,
                          ratio_to_gemm=gflop / median / gemm), args.json)
            except Exception as exc:  # noqa: BLE001
                common.emit_error(base, exc)


def emit(row, as_json):
    if as_json:
        common.emit(row)
        return
    row = dict(row)
    row.setdefault("threads", common.threads())
    text = " ".join("%s=%s" % (k, ("%.4g" % v) if isinstance(v, float) else v)
                    for k, v in row.items())
    print(text, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iters", type=int, default=3, help="timed forwards after one warm-up")
    p.add_argument("--dtype", choices=["fp32", "bf16", "both"], default="both")
    p.add_argument("--mode", choices=["eager", "channels_last_3d", "both"], default="both")
    p.add_argument("--force-bf16", action="store_true",
                   help="time bf16 even where the CPU only emulates it (about 90x slower)")
    p.add_argument("--weights", help="state dict to load (.pt or .safetensors, piergiaj names)")
    p.add_argument("--save-weights", help="write the seeded random init here (.pt) and stop "
                                          "(with --check-parity: the weights it used)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check-parity", action="store_true",
                   help="compare with `vidfuse forward` on the same weights and input (fp32)")
    p.add_argument("--parity-frames", type=int, default=16)
    p.add_argument("--check-fixture", metavar="DIR",
                   help="compare with the reference outputs in a fixture folder "
                        "(model.safetensors + caseN.safetensors)")
    p.add_argument("--vidfuse", help="the vidfuse binary (default: $VIDFUSE, build/vidfuse)")
    args = p.parse_args()
    modes = ["eager", "channels_last_3d"] if args.mode == "both" else [args.mode]
    dtypes = ["fp32", "bf16"] if args.dtype == "both" else [args.dtype]

    if args.check_parity or args.check_fixture:
        ok = True
        if args.check_fixture:
            ok &= check_fixture(args, modes)
        if args.check_parity:
            ok &= check_parity(args, modes)
        return 0 if ok else 1
    if args.save_weights:
        model = model_for_state(read_state(args.weights)) if args.weights \
            else random_model(args.seed)
        torch.save(model.state_dict(), args.save_weights)
        print("wrote %s (%d tensors)" % (args.save_weights, len(model.state_dict())),
              file=sys.stderr)
        return 0
    bench(args, modes, dtypes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
