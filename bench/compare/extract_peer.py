"""Feature extraction end to end, written the way one would in Python today with the fastest peer
parts: decord (or PyAV) decoding in torch DataLoader workers, transformers' DINOv3 with SDPA
attention on 16 segment-centre frames, the PyTorch I3D of i3d_peer.py on one centred 64-frame clip
resampled to 25 fps, and one safetensors file per video (fp16, written to a temp name, then
renamed): the same recipe, tensors and file layout as `vidfuse extract` / `vidfuse bench extract`.

  python extract_peer.py --json --dir DIR --videos N --dinov3-weights D --i3d-weights W.pt
      [--dtype fp32|bf16] [--decoder decord|pyav] [--workers K]

DIR holds clip_0.webm ... (the clips `vidfuse bench extract --dir DIR` leaves there). One JSON line:
{"bench": "extract", "peer": ..., "e2e_videos_per_s": ..., "model_only_videos_per_s": ...}.
"""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import decode_peers  # noqa: E402  (the sampling ports and transforms, shared with the decode row)

SEMANTIC_FRAMES, MOTION_CLIP, SEMANTIC_BATCH = 16, 64, 32


def motion_indices(times, end_time, clip=MOTION_CLIP):
    """vidfuse's motion_indices: 25 fps resampling, the centred window of `clip`, short ones looped."""
    idx = decode_peers.fixed_rate_indices(times, end_time)
    if len(idx) > clip:
        start = (len(idx) - clip) // 2
        idx = idx[start:start + clip]
    while len(idx) < clip:
        idx.append(idx[len(idx) % len(idx)])
    return idx


class Videos:
    """A map-style dataset: video k -> (id, semantic frames [16,3,224,224], clip [3,64,224,224])."""

    def __init__(self, paths, decoder):
        self.paths, self.decoder = paths, decoder

    def __len__(self):
        return len(self.paths)

    def frames(self, path):
        """Decodes the union of both streams' frames once: uint8 [n, 3, H, W] and the two index
        lists into it."""
        import torch

        if self.decoder == "decord":
            import decord

            decord.bridge.set_bridge("torch")
            vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
            n = len(vr)
            ts = vr.get_frame_timestamp(range(n)).tolist()
            times = [float(a) - float(ts[0][0]) for a, _ in ts]
            end = float(ts[-1][1]) - float(ts[0][0])
            sem = decode_peers.segment_indices(n, SEMANTIC_FRAMES)
            mot = motion_indices(times, end)
            union = sorted(set(sem) | set(mot))
            batch = vr.get_batch(union).permute(0, 3, 1, 2)
        else:
            peer = decode_peers.PyAV()
            pts, times, end = peer.frame_table(path)
            n = len(pts)
            sem = decode_peers.segment_indices(n, SEMANTIC_FRAMES)
            mot = motion_indices(times, end)
            union = sorted(set(sem) | set(mot))
            wanted, got = set(union), {}
            index_of_pts = {p: i for i, p in enumerate(pts)}
            with peer.av.open(path) as c:
                s = c.streams.video[0]
                s.codec_context.thread_count = 1
                for count, frame in enumerate(c.decode(s)):
                    i = index_of_pts.get(frame.pts, count)
                    if i in wanted and i not in got:
                        got[i] = torch.from_numpy(frame.to_ndarray(format="rgb24"))
                    if len(got) == len(wanted):
                        break
            batch = torch.stack([got[i] for i in union]).permute(0, 3, 1, 2)
        at = {i: k for k, i in enumerate(union)}
        return batch, [at[i] for i in sem], [at[i] for i in mot]

    def __getitem__(self, k):
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(1)  # a worker per core, as vidfuse's loader threads
        path = self.paths[k]
        frames, sem, mot = self.frames(path)
        semantic = decode_peers.dinov3_transform(torch, F, frames[sem])
        motion = decode_peers.i3d_transform(torch, F, frames[mot])
        return os.path.splitext(os.path.basename(path))[0], semantic, motion


def save_atomically(path, tensors):
    from safetensors.torch import save_file

    tmp = path + ".tmp"
    save_file(tensors, tmp)
    os.replace(tmp, path)


def agreement(ours_dir, vidfuse_dir):
    """The worst max|a - b| / max|b| per tensor over the videos both stores hold (vidfuse's bench
    leaves its store in DIR/store): the two pipelines must produce the same features (fp16 storage
    rounds at ~5e-4)."""
    import torch
    from safetensors.torch import load_file

    worst, videos = {}, 0
    for name in sorted(os.listdir(ours_dir)):
        theirs = os.path.join(vidfuse_dir, name)
        if not name.endswith(".safetensors") or not os.path.exists(theirs):
            continue
        a, b = load_file(os.path.join(ours_dir, name)), load_file(theirs)
        videos += 1
        for key, x in a.items():
            y = b[key].float()
            err = ((x.float() - y).abs().max() / y.abs().max().clamp_min(1e-30)).item()
            worst[key] = max(worst.get(key, 0.0), err)
    return {"videos": videos, "max_rel_err": worst} if videos else "no vidfuse store to compare with"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--dinov3-weights", required=True)
    ap.add_argument("--i3d-weights", required=True)
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--decoder", default="decord", choices=["decord", "pyav"])
    ap.add_argument("--workers", type=int, default=common.threads())
    args = ap.parse_args()
    base = {"bench": "extract", "peer": "python (%s + transformers-sdpa + pytorch i3d)" % args.decoder,
            "dtype": args.dtype, "videos": args.videos, "workers": args.workers}
    if args.dtype == "bf16" and not common.has_native_bf16():
        common.emit(dict(base, skipped="no native bf16 on this CPU (%s)" % common.cpu_isa()))
        return
    try:
        run(args, base)
    except Exception as exc:  # noqa: BLE001 -- a failing peer is a row that says so
        common.emit_error(base, exc)


def run(args, base):
    torch = common.setup_torch()
    from transformers import DINOv3ViTModel

    import i3d_peer

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    dinov3 = DINOv3ViTModel.from_pretrained(args.dinov3_weights, attn_implementation="sdpa",
                                            dtype=dtype).eval()
    i3d = i3d_peer.model_for_state(i3d_peer.read_state(args.i3d_weights)).to(dtype)
    prefix = 1 + dinov3.config.num_register_tokens
    grid = 224 // dinov3.config.patch_size

    def semantic(frames):  # [N,3,224,224] -> cls [N,C], patch [N,h,w,C]
        out = dinov3(pixel_values=frames.to(dtype))
        patch = out.last_hidden_state[:, prefix:].reshape(frames.shape[0], grid, grid, -1)
        return out.pooler_output.float(), patch.float()

    def motion(clip):  # [3,64,224,224] -> mixed_5c [1024,T',7,7], features [1024]
        m5c, features, _ = i3d.endpoints(clip.unsqueeze(0).to(dtype))
        return m5c[0].float(), features.float().mean((2, 3, 4))[0]

    paths = [os.path.join(args.dir, "clip_%d.webm" % k) for k in range(args.videos)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError("%s (make the clips with `vidfuse bench extract --dir %s`)" % (
            missing[0], args.dir))
    store = os.path.join(args.dir, "python-store")
    shutil.rmtree(store, ignore_errors=True)  # a fresh store each run, as vidfuse's bench
    os.makedirs(store)

    # Model-only: the same shapes and batches with inputs in memory, as vidfuse's bench does.
    sem_in, mot_in = torch.randn(SEMANTIC_FRAMES, 3, 224, 224), torch.rand(3, MOTION_CLIP, 224, 224)

    def model_pass(videos):
        with torch.inference_mode():
            frames = sem_in.repeat(videos, 1, 1, 1)
            for s in range(0, frames.shape[0], SEMANTIC_BATCH):
                semantic(frames[s:s + SEMANTIC_BATCH])
            for _ in range(videos):
                motion(mot_in)

    model_pass(1)  # warm-up
    t0 = time.perf_counter()
    model_pass(args.videos)
    model_before = time.perf_counter() - t0

    loader = torch.utils.data.DataLoader(Videos(paths, args.decoder), batch_size=None,
                                         num_workers=args.workers, prefetch_factor=2,
                                         persistent_workers=False)
    t0 = time.perf_counter()
    model_seconds, pending = 0.0, []

    def flush(group):  # several videos' frames through DINOv3 in one batch, as vidfuse does
        nonlocal model_seconds
        m0 = time.perf_counter()
        with torch.inference_mode():
            cls, patch = semantic(torch.cat([g[1] for g in group]))
            outs = [motion(g[2]) for g in group]
        model_seconds += time.perf_counter() - m0
        for k, (vid, _, _) in enumerate(group):
            s = slice(k * SEMANTIC_FRAMES, (k + 1) * SEMANTIC_FRAMES)
            m5c, feat = outs[k]
            save_atomically(os.path.join(store, vid + ".safetensors"), {
                "semantic.cls": cls[s].half().contiguous(),
                "semantic.patch": patch[s].half().contiguous(),
                "motion.mixed_5c": m5c.half().contiguous(),
                "motion.features": feat.half().contiguous()})

    for item in loader:
        pending.append(item)
        if len(pending) * SEMANTIC_FRAMES >= SEMANTIC_BATCH:
            flush(pending)
            pending = []
    if pending:
        flush(pending)
    e2e = time.perf_counter() - t0

    t0 = time.perf_counter()
    model_pass(args.videos)
    model_after = time.perf_counter() - t0
    model_rate = args.videos / (0.5 * (model_before + model_after))
    common.emit(dict(base, agreement_with_vidfuse_store=agreement(store, os.path.join(args.dir, "store")),
                     e2e_videos_per_s=args.videos / e2e, model_only_videos_per_s=model_rate,
                     ratio=args.videos / e2e / model_rate, e2e_seconds=e2e,
                     model_seconds_in_e2e=model_seconds,
                     versions=common.peer_versions("torch", "transformers", args.decoder)))


if __name__ == "__main__":
    main()
