"""DINOv3 ViT-B/16 at 224x224, batch 8, on today's Python stack: transformers (eager and SDPA
attention), ONNX Runtime and OpenVINO on an ONNX export of the same weights.

  python dinov3_peers.py --save-weights DIR           # random ViT-B/16 (seed 0), HF format
  python dinov3_peers.py --weights DIR --check-parity --vidfuse BIN
  python dinov3_peers.py --weights DIR --json [--dtype fp32|bf16|both] [--peers ...] [--iters N]

The same DIR is given to `vidfuse bench dinov3 --weights DIR`, so both sides run one set of weights
on one input. Rows: {"bench": "dinov3", "peer": ..., "dtype": ..., "images_per_s": best, ...}.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import common

PEERS = ["transformers-eager", "transformers-sdpa", "onnxruntime", "openvino"]


def vitb16_config(attn):
    from transformers import DINOv3ViTConfig

    # dinov3-vitb16-pretrain-lvd1689m's config.json: 4 register tokens, no key bias, LayerScale.
    return DINOv3ViTConfig(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        num_register_tokens=4,
        patch_size=16,
        image_size=224,
        layerscale_value=1.0,
        key_bias=False,
        attn_implementation=attn,
    )


def load_model(weights, attn, dtype):
    from transformers import DINOv3ViTModel

    torch = common.setup_torch()
    model = DINOv3ViTModel.from_pretrained(weights, attn_implementation=attn, dtype=dtype)
    return model.eval()


def fixed_input(torch, batch, size):
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, size, size, generator=g)


def save_weights(path):
    from transformers import DINOv3ViTModel

    torch = common.setup_torch()
    torch.manual_seed(0)
    DINOv3ViTModel(vitb16_config("eager")).save_pretrained(path)
    print("wrote random DINOv3 ViT-B/16 weights to", path, file=sys.stderr)


def check_parity(weights, vidfuse, size):
    """vidfuse's forward and transformers' on the same weights and input: the two sides compute one
    function (the figures are comparable only if they do)."""
    from safetensors.torch import load_file, save_file

    torch = common.setup_torch()
    x = fixed_input(torch, 2, size)
    ref = load_model(weights, "eager", torch.float32)(pixel_values=x)
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.safetensors"), os.path.join(tmp, "out.safetensors")
        save_file({"pixel_values": x.contiguous()}, inp)
        subprocess.run([vidfuse, "forward", "--model", weights, "--input", inp, "--output", out],
                       check=True, stdout=subprocess.DEVNULL)
        got = load_file(out)
    worst = 0.0
    for key, want in [("last_hidden_state", ref.last_hidden_state), ("pooler_output", ref.pooler_output)]:
        err = ((got[key] - want).abs().max() / want.abs().max()).item()
        worst = max(worst, err)
        print("parity %s: max abs diff / max abs = %.2e" % (key, err), file=sys.stderr)
    common.emit({"bench": "dinov3-parity", "peer": "transformers-eager", "max_rel_err": worst,
                 "ok": worst <= 1e-4})
    return worst <= 1e-4


def export_onnx(weights, path, size):
    torch = common.setup_torch()
    model = load_model(weights, "eager", torch.float32)

    class Pooled(torch.nn.Module):  # ONNX wants tensors out, not a ModelOutput
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            out = self.m(pixel_values=pixel_values)
            return out.last_hidden_state, out.pooler_output

    x = fixed_input(torch, 8, size)
    # The TorchScript exporter: the dynamo one (torch.export) is the newer path, tried second.
    try:
        torch.onnx.export(Pooled(model), (x,), path, input_names=["pixel_values"],
                          output_names=["last_hidden_state", "pooler_output"], opset_version=18,
                          dynamo=False)
        return "torchscript exporter, opset 18"
    except Exception:  # noqa: BLE001
        torch.onnx.export(Pooled(model), (x,), path, input_names=["pixel_values"],
                          output_names=["last_hidden_state", "pooler_output"], dynamo=True)
        return "dynamo exporter"


def runner(peer, weights, dtype_name, onnx_path, batch, size):
    """Returns (forward callable, note) for one peer; the callable runs one batch."""
    torch = common.setup_torch()
    x = fixed_input(torch, batch, size)
    if peer.startswith("transformers-"):
        attn = peer.split("-", 1)[1]
        dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
        model = load_model(weights, attn, dtype)
        xd = x.to(dtype)

        def run():
            with torch.inference_mode():
                model(pixel_values=xd).pooler_output.float().sum().item()

        return run, "attn_implementation=%s" % attn
    if peer == "onnxruntime":
        import onnxruntime as ort

        if dtype_name == "bf16":
            raise RuntimeError("ONNX Runtime's CPU provider has no bf16 kernels for this graph")
        so = ort.SessionOptions()
        so.intra_op_num_threads = common.threads()
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        feed = {"pixel_values": x.numpy()}
        return (lambda: sess.run(["pooler_output"], feed)), "CPUExecutionProvider, ORT_ENABLE_ALL"
    if peer == "openvino":
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": common.threads(),
                  "INFERENCE_PRECISION_HINT": "bf16" if dtype_name == "bf16" else "f32",
                  "PERFORMANCE_HINT": "LATENCY"}
        compiled = core.compile_model(onnx_path, "CPU", config)
        request = compiled.create_infer_request()
        feed = {"pixel_values": x.numpy()}
        return (lambda: request.infer(feed)), "CPU plugin, precision hint %s" % config[
            "INFERENCE_PRECISION_HINT"]
    raise ValueError("unknown peer " + peer)


def bench(args):
    torch = common.setup_torch()
    dtypes = ["fp32", "bf16"] if args.dtype == "both" else [args.dtype]
    peers = args.peers.split(",")
    onnx_path, onnx_note = None, ""
    if any(p in ("onnxruntime", "openvino") for p in peers):
        onnx_path = os.path.join(args.weights, "model.onnx")
        if not os.path.exists(onnx_path):
            try:
                t0 = time.perf_counter()
                onnx_note = export_onnx(args.weights, onnx_path, args.size)
                print("exported %s in %.0f s (%s)" % (onnx_path, time.perf_counter() - t0, onnx_note),
                      file=sys.stderr)
            except Exception as exc:  # noqa: BLE001
                for p in ("onnxruntime", "openvino"):
                    for d in dtypes:
                        common.emit_error({"bench": "dinov3", "peer": p, "dtype": d}, exc)
                peers = [p for p in peers if p not in ("onnxruntime", "openvino")]
    versions = common.peer_versions("torch", "transformers", "onnxruntime", "openvino")
    for dtype_name in dtypes:
        emulated = dtype_name == "bf16" and not common.has_native_bf16() and not args.force_bf16
        gemm = None if emulated else common.gemm_gflops(dtype_name)
        for peer in peers:
            base = {"bench": "dinov3", "peer": peer, "dtype": dtype_name, "batch": args.batch,
                    "size": args.size, "gemm_gflops": gemm,
                    "version": versions.get(peer.split("-")[0], "")}
            if emulated:
                common.emit(dict(base, skipped="no native bf16 on this CPU (%s)" % common.cpu_isa()))
                continue
            try:
                run, note = runner(peer, args.weights, dtype_name, onnx_path, args.batch, args.size)
                best, median = common.time_calls(run, args.iters)
                common.emit(dict(base, note=note, images_per_s=args.batch / best,
                                 images_per_s_median=args.batch / median, seconds_per_batch=best))
            except Exception as exc:  # noqa: BLE001 -- a failing peer is a row that says so
                common.emit_error(base, exc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--save-weights")
    ap.add_argument("--weights")
    ap.add_argument("--check-parity", action="store_true")
    ap.add_argument("--vidfuse", default="build/vidfuse")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--dtype", default="both", choices=["fp32", "bf16", "both"])
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--force-bf16", action="store_true", help="time bf16 even where it is emulated")
    args = ap.parse_args()
    if args.save_weights:
        save_weights(args.save_weights)
    if args.check_parity:
        if not check_parity(args.weights, args.vidfuse, args.size):
            sys.exit(1)
    if args.json:
        bench(args)


if __name__ == "__main__":
    main()
