"""Decode + sample + resize peers: PyAV, torchcodec and decord doing what `vidfuse bench decode`
measures in its modes "decode+segment8+dinov3" and "decode+fps25+i3d".

  python bench/compare/decode_peers.py --json --dir DIR --repeat N [--peers av,torchcodec,decord]
      one JSON line per (peer, clip, mode, decoder threads), keys as in `vidfuse bench decode`
  python bench/compare/decode_peers.py --check --dir DIR [--peers ...]
      each peer against `vidfuse frames`: the same frame indices, and how far its decoded frames
      and its output tensor are from vidfuse's (in 1/255 steps)

DIR holds the clips `vidfuse bench decode --dir DIR` encodes and keeps: ssv2.webm (VP9 427x240,
12 fps, 4 s) and kinetics.mp4 (H.264 640x360, 30 fps, 10 s, B-frames).

Each timed run does what vidfuse's does: open the file, find the frames (count or timestamps),
pick the indices with the same formulas (ported below), decode them, and turn them into the
model's input with torch ops, in chunks of 8 frames as vidfuse does:
  decode+segment8+dinov3: TSN eval segment sampling, 8 frames -> x1/255, antialiased bilinear
      squash-resize to 224x224, ImageNet mean/std -> float32 [8, 3, 224, 224]
  decode+fps25+i3d: resampled to 25 fps by timestamp -> short side 256 (antialiased bilinear),
      centre crop 224, [-1, 1] -> float32 [3, T, 224, 224]

Every peer runs in a child process of its own, so one that fails to import, raises or crashes
(the three bundle different FFmpeg builds) becomes an error row and the others still run.
"""
import argparse
import bisect
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

# The clips and their descriptions, as in apps/bench_decode.cpp.
CLIPS = [
    {"clip": "ssv2-like", "file": "ssv2.webm", "codec": "vp9", "size": "427x240", "fps": 12.0},
    {"clip": "kinetics-like", "file": "kinetics.mp4", "codec": "h264", "size": "640x360",
     "fps": 30.0},
]
SEGMENT8, FPS25 = "decode+segment8+dinov3", "decode+fps25+i3d"
MODES = [SEGMENT8, FPS25]
PEERS = ["pyav", "torchcodec", "decord"]
ALIASES = {"av": "pyav", "pyav": "pyav", "torchcodec": "torchcodec", "decord": "decord"}

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CHUNK = 8  # frames converted to float at a time (vidfuse's kChunk): bounds the temporaries


# ---------------------------------------------------------------------------------------------
# Sampling: ports of src/vidfuse/io/sampling.cpp


def segment_indices(num_frames, num_segments=8):
    """TSN / mmaction2 test-mode segments: the centre of each of N equal parts,
    floor((2k + 1) * n / (2N)) in exact integer arithmetic."""
    if num_frames <= 0:
        raise ValueError("the video has no decodable frames")
    return [((2 * k + 1) * num_frames) // (2 * num_segments) for k in range(num_segments)]


# Containers round timestamps (WebM stores milliseconds: frame 2 of a 12 fps clip sits at 167 ms,
# after the 166.67 ms tick it belongs to); half a millisecond of slack keeps resampling at the
# video's own rate the identity.
SLACK = 5e-4 + 1e-6


def fixed_rate_times(end_time, fps=25.0):
    """The output ticks t_k = k / fps (seconds from the first frame) before end_time."""
    ticks, k = [], 0
    while True:
        t = k / fps
        if k > 0 and t >= end_time - SLACK:
            return ticks
        ticks.append(t)
        k += 1


def fixed_rate_indices(times, end_time, fps=25.0):
    """Output k shows the frame on screen at t_k: the last frame with time <= t_k (+ slack).
    times: seconds from the first frame, increasing; end_time: when the last frame stops."""
    return [bisect.bisect_right(times, t + SLACK) - 1 for t in fixed_rate_times(end_time, fps)]


# ---------------------------------------------------------------------------------------------
# Transforms (torch ops; see src/vidfuse/io/video_transforms.cpp)


def short_side_size(h, w, short_side):
    """torchvision Resize(int): the long side scaled and truncated."""
    if h <= w:
        return short_side, int(short_side * w / h)
    return int(short_side * h / w), short_side


def to_float(torch, frames):
    """uint8 [n, 3, H, W] (any strides: decoders hand out NHWC memory) -> contiguous float32 in
    [0, 1], the conversion and the layout change in one pass."""
    return frames.to(torch.float32, memory_format=torch.contiguous_format).mul_(1.0 / 255.0)


def dinov3_transform(torch, F, frames):
    """uint8 [T, 3, H, W] -> float32 [T, 3, 224, 224]: x1/255, antialiased bilinear squash-resize
    (aspect ratio not kept, no crop), ImageNet normalisation."""
    T = frames.shape[0]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out = torch.empty(T, 3, 224, 224)
    for t in range(0, T, CHUNK):
        x = to_float(torch, frames[t:t + CHUNK])
        x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True,
                          align_corners=False)
        out[t:t + CHUNK] = (x - mean) / std
    return out


def i3d_transform(torch, F, frames):
    """uint8 [T, 3, H, W] -> float32 [3, T, 224, 224]: short side to 256 (antialiased bilinear;
    plain bilinear when enlarging, which is what antialias=True does then), centre crop 224,
    scaled to [-1, 1]."""
    T, _, H, W = frames.shape
    rh, rw = short_side_size(H, W, 256)
    top, left = (rh - 224) // 2, (rw - 224) // 2
    out = torch.empty(3, T, 224, 224)
    for t in range(0, T, CHUNK):
        x = to_float(torch, frames[t:t + CHUNK])
        x = F.interpolate(x, size=(rh, rw), mode="bilinear", antialias=True, align_corners=False)
        x = x[:, :, top:top + 224, left:left + 224]
        out[:, t:t + CHUNK] = x.mul(2.0).sub_(1.0).transpose(0, 1)
    return out


# ---------------------------------------------------------------------------------------------
# Peers. Each load(path, mode, threads) returns (uint8 frames [T, 3, H, W], source frame count,
# indices or None); threads 0 = FFmpeg's automatic choice, as vidfuse's "all" rows.


class PyAV:
    name, module = "pyav", "av"
    # How the peer reaches its frames, for the row's "note".
    note = ("demux pass for the frame table (packet pts, as vidfuse), then one sequential decode "
            "from the start that converts only the sampled frames to RGB (to_ndarray rgb24) and "
            "stops after the last one; no seeking")

    def __init__(self):
        import av
        import numpy

        self.av, self.np = av, numpy
        self.version = av.__version__
        self.ffmpeg = "libavcodec %d.%d.%d" % tuple(av.library_versions["libavcodec"])

    def frame_table(self, path):
        """Packet pts in presentation order, times from the first frame, and when the last frame
        ends (its packet duration, else the last interval): what vidfuse's reader builds."""
        with self.av.open(path) as c:
            s = c.streams.video[0]
            tb = float(s.time_base)
            packets = sorted((p.pts, p.duration or 0) for p in c.demux(s) if p.pts is not None)
        pts, durations = [], []
        for p, d in packets:
            if not pts or p != pts[-1]:  # a repeated timestamp is ignored, as vidfuse does
                pts.append(p)
                durations.append(d)
        times = [(p - pts[0]) * tb for p in pts]
        last = durations[-1] * tb if durations[-1] > 0 else (
            times[-1] - times[-2] if len(times) > 1 else 1.0 / float(s.average_rate or 25))
        return pts, times, times[-1] + last

    def load(self, path, mode, threads):
        pts, times, end_time = self.frame_table(path)
        n = len(pts)
        indices = segment_indices(n) if mode == SEGMENT8 else fixed_rate_indices(times, end_time)
        wanted, index_of_pts = set(indices), {p: i for i, p in enumerate(pts)}
        got = {}
        with self.av.open(path) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"  # frame + slice threads, as vidfuse's decoder
            s.codec_context.thread_count = threads
            for count, frame in enumerate(c.decode(s)):
                i = index_of_pts.get(frame.pts, count)
                if i in wanted and i not in got:
                    got[i] = frame.to_ndarray(format="rgb24")
                    if len(got) == len(wanted):
                        break
        import torch

        frames = torch.from_numpy(self.np.stack([got[i] for i in indices]))
        return frames.permute(0, 3, 1, 2), n, indices


class TorchCodec:
    name, module = "torchcodec", "torchcodec"
    note = ("seek_mode=exact (one scan builds the frame index); segment8: get_frames_at(indices); "
            "fps25: get_frames_played_at(t_k) at the 25 fps ticks; decodes only what it needs, "
            "seeking where it pays")

    def __init__(self):
        import torchcodec
        from torchcodec._core import get_ffmpeg_library_versions
        from torchcodec.decoders import VideoDecoder

        self.VideoDecoder = VideoDecoder
        self.version = torchcodec.__version__
        self.ffmpeg = "FFmpeg %s" % get_ffmpeg_library_versions().get("ffmpeg_version", "?")

    def load(self, path, mode, threads):
        d = self.VideoDecoder(path, num_ffmpeg_threads=threads, seek_mode="exact")
        m = d.metadata
        n = m.num_frames
        if mode == SEGMENT8:
            return d.get_frames_at(segment_indices(n)).data, n, None
        # The stream's end: the content's, or the header's duration where that is later (an MP4
        # whose frames carry no duration ends at its last frame's pts in torchcodec's metadata,
        # one frame early; vidfuse takes the packet durations).
        begin = m.begin_stream_seconds
        end = max(m.end_stream_seconds, (m.duration_seconds_from_header or 0.0)) - begin
        seconds = [begin + t + SLACK for t in fixed_rate_times(end)]
        # torchcodec cannot "play" a time at or past its own end of stream; those ticks show the
        # last frame.
        playable = [s for s in seconds if s < m.end_stream_seconds]
        frames = d.get_frames_played_at(playable).data
        if len(playable) < len(seconds):
            import torch

            tail = d.get_frames_at([n - 1] * (len(seconds) - len(playable))).data
            frames = torch.cat([frames, tail])
        return frames, n, None

    def indices_of(self, path, mode):
        """For --check: which source frames a load picks, found from the pts torchcodec returns
        (a second, untimed decoder)."""
        import torch

        d = self.VideoDecoder(path, seek_mode="exact")
        n = d.metadata.num_frames
        if mode == SEGMENT8:
            return segment_indices(n)
        all_pts = d.get_frames_in_range(0, n).pts_seconds
        begin, m = d.metadata.begin_stream_seconds, d.metadata
        end = max(m.end_stream_seconds, (m.duration_seconds_from_header or 0.0)) - begin
        seconds = [begin + t + SLACK for t in fixed_rate_times(end)]
        playable = [s for s in seconds if s < m.end_stream_seconds]
        pts = d.get_frames_played_at(playable).pts_seconds
        picked = [int(torch.argmin((all_pts - p).abs())) for p in pts]
        return picked + [n - 1] * (len(seconds) - len(playable))


class Decord:
    name, module = "decord", "decord"
    note = ("VideoReader (its index gives the count and frame timestamps), then "
            "get_batch(indices), which seeks to keyframes and decodes only what it needs; "
            "frames reach torch through decord's torch bridge (DLPack, no copy)")

    def __init__(self):
        import decord

        decord.bridge.set_bridge("torch")
        self.decord = decord
        self.version = decord.__version__
        self.ffmpeg = "bundled with the decord wheel"

    def load(self, path, mode, threads):
        vr = self.decord.VideoReader(path, ctx=self.decord.cpu(0), num_threads=threads)
        n = len(vr)
        if mode == SEGMENT8:
            indices = segment_indices(n)
        else:
            ts = vr.get_frame_timestamp(range(n))  # [n, 2]: start and end of each frame
            ts = ts.tolist() if hasattr(ts, "tolist") else ts
            times = [float(a) - float(ts[0][0]) for a, _ in ts]
            indices = fixed_rate_indices(times, float(ts[-1][1]) - float(ts[0][0]))
        frames = vr.get_batch(indices)  # uint8 [T, H, W, 3]
        return frames.permute(0, 3, 1, 2), n, indices


PEER_CLASSES = {"pyav": PyAV, "torchcodec": TorchCodec, "decord": Decord}


# ---------------------------------------------------------------------------------------------
# Child: one peer, every clip and mode


def base_row(peer, clip, mode, threads):
    return {"bench": "decode", "peer": peer, "clip": clip["clip"], "codec": clip["codec"],
            "size": clip["size"], "fps": clip["fps"], "mode": mode,
            # vidfuse's labels: "1", or "all" for FFmpeg's own choice (thread_count 0)
            "threads": "all" if threads == 0 else str(threads),
            "decoder_threads": threads}


def run_once(torch, F, peer, path, mode, threads):
    frames, n, indices = peer.load(path, mode, threads)
    out = dinov3_transform(torch, F, frames) if mode == SEGMENT8 else i3d_transform(torch, F,
                                                                                   frames)
    return out, frames, n, indices


def child_bench(args, name):
    torch = common.setup_torch()
    import torch.nn.functional as F

    clips = [c for c in CLIPS if os.path.exists(os.path.join(args.dir, c["file"]))]
    try:
        peer = PEER_CLASSES[name]()
    except Exception as exc:  # noqa: BLE001 -- the import failed: one row says so
        common.emit_error({"bench": "decode", "peer": name, "module": PEER_CLASSES[name].module},
                          exc)
        return
    for clip in clips:
        path = os.path.join(args.dir, clip["file"])
        for threads in args.decoder_threads:
            for mode in MODES:
                row = base_row(name, clip, mode, threads)
                try:
                    times = []
                    for _ in range(args.repeat):
                        t0 = time.perf_counter()
                        out, _, n, _ = run_once(torch, F, peer, path, mode, threads)
                        times.append(time.perf_counter() - t0)
                    best = min(times)
                    row.update(
                        seconds=best, first_run_seconds=times[0], frames_per_s=n / best,
                        source_frames=n,
                        output_frames=out.shape[0] if mode == SEGMENT8 else out.shape[1],
                        output_shape=list(out.shape), output_dtype=str(out.dtype).replace(
                            "torch.", ""), torch_threads=torch.get_num_threads(),
                        version=peer.version, ffmpeg=peer.ffmpeg, torch=torch.__version__,
                        note=peer.note)
                    common.emit(row)
                except Exception as exc:  # noqa: BLE001
                    common.emit_error(dict(row, version=peer.version), exc)


# --- correctness against vidfuse


def read_png(path):
    """A PNG as uint8 [H, W, 3], through PyAV's image decoder (the venv has no Pillow)."""
    import av

    with av.open(path) as c:
        frame = next(c.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def read_reference(ref_dir, clip, mode, transform):
    """vidfuse frames' output for one clip and sampling: source indices and uint8 frames."""
    import numpy as np

    folder = os.path.join(ref_dir, "%s-%s-%s" % (clip["clip"], mode, transform))
    with open(os.path.join(folder, "frames.json")) as f:
        meta = json.load(f)
    indices = [e["source_index"] for e in meta["frames"]]
    frames = np.stack([read_png(os.path.join(folder, e["file"])) for e in meta["frames"]])
    return indices, frames


def viewable(torch, out, mode):
    """Undo the preset's value scaling as vidfuse's preset_to_viewable does -> uint8 [T, H, W, 3]:
    both sides are then rounded the same way and compare in 1/255 steps."""
    if mode == SEGMENT8:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        x = out * std + mean
    else:
        x = out.add(1.0).mul(0.5).transpose(0, 1)
    return x.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def abs_diff(torch, a, b):
    d = (torch.as_tensor(a).to(torch.int16) - torch.as_tensor(b).to(torch.int16)).abs()
    return int(d.max()), float(d.float().mean()), float((d > 2).float().mean())


def child_check(args, name):
    torch = common.setup_torch()
    import torch.nn.functional as F

    try:
        peer = PEER_CLASSES[name]()
    except Exception as exc:  # noqa: BLE001
        common.emit_error({"bench": "decode-check", "peer": name}, exc)
        return
    for clip in CLIPS:
        path = os.path.join(args.dir, clip["file"])
        for mode in MODES:
            row = {"bench": "decode-check", "peer": name, "clip": clip["clip"], "mode": mode,
                   "reference": "vidfuse frames", "version": peer.version}
            try:
                out, frames, n, indices = run_once(torch, F, peer, path, mode, 0)
                if indices is None:
                    indices = peer.indices_of(path, mode)
                ref_idx, ref_raw = read_reference(args.ref, clip, mode, "none")
                _, ref_out = read_reference(args.ref, clip, mode, "preset")
                # The Python port of the formulas on the peer's own frame table.
                row["indices_equal"] = indices == ref_idx
                row["num_indices"] = len(indices)
                if not row["indices_equal"]:
                    row["indices"], row["vidfuse_indices"] = indices, ref_idx
                expected = [8, 3, 224, 224] if mode == SEGMENT8 else [3, len(ref_idx), 224, 224]
                row["output_shape"] = list(out.shape)
                row["shape_ok"] = list(out.shape) == expected and out.dtype == torch.float32
                raw = frames.permute(0, 2, 3, 1)
                if tuple(raw.shape) == ref_raw.shape:
                    # Decoded RGB frames: YUV->RGB conversion (swscale flags, decoder build).
                    (row["raw_max_abs_diff_255"], row["raw_mean_abs_diff_255"],
                     row["raw_frac_over_2_255"]) = abs_diff(torch, raw, ref_raw)
                if row["shape_ok"]:
                    # The model input, undone to 0..255 the way vidfuse's PNGs were written.
                    (row["out_max_abs_diff_255"], row["out_mean_abs_diff_255"],
                     row["out_frac_over_2_255"]) = abs_diff(torch, viewable(torch, out, mode),
                                                            ref_out)
                row["ok"] = bool(row["indices_equal"] and row["shape_ok"]
                                 and row.get("out_max_abs_diff_255", 255) <= args.max_diff)
                common.emit(row)
            except Exception as exc:  # noqa: BLE001
                common.emit_error(row, exc)


def make_reference(vidfuse, clip_dir, ref_dir):
    """`vidfuse frames` for each clip and sampling, raw (--transform none) and through the
    preset: the indices it picks (frames.json) and the PNGs of its frames."""
    for clip in CLIPS:
        for mode in MODES:
            sampler = (["--sampler", "segment", "--segments", "8"] if mode == SEGMENT8
                       else ["--sampler", "fps", "--fps", "25"])
            preset = "dinov3" if mode == SEGMENT8 else "i3d"
            for transform, name in (("none", "none"), (preset, "preset")):
                out = os.path.join(ref_dir, "%s-%s-%s" % (clip["clip"], mode, name))
                subprocess.run([vidfuse, "frames", os.path.join(clip_dir, clip["file"]), "--out",
                                out, "--transform", transform] + sampler,
                               check=True, stdout=subprocess.DEVNULL)


# ---------------------------------------------------------------------------------------------
# Parent: one child per peer


def print_row(row, as_json):
    if as_json:
        print(json.dumps(row), flush=True)
        return
    if "error" in row:
        print("%-10s %-13s %-22s error: %s" % (row.get("peer"), row.get("clip", "-"),
                                               row.get("mode", "-"), row["error"]), flush=True)
    elif row.get("bench") == "decode-check":
        print("%-10s %-13s %-22s indices %s, shape %s, raw max/mean %s/%.3f, output max/mean "
              "%s/%.3f (1/255)" % (row["peer"], row["clip"], row["mode"],
                                   "equal" if row["indices_equal"] else "DIFFER",
                                   "ok" if row["shape_ok"] else row["output_shape"],
                                   row.get("raw_max_abs_diff_255"),
                                   row.get("raw_mean_abs_diff_255", float("nan")),
                                   row.get("out_max_abs_diff_255"),
                                   row.get("out_mean_abs_diff_255", float("nan"))), flush=True)
    else:
        print("%-10s %-13s %-22s thr %-3s %8.1f ms %8.0f frames/s  out %s" % (
            row["peer"], row["clip"], row["mode"], row["threads"], row["seconds"] * 1e3,
            row["frames_per_s"], row["output_shape"]), flush=True)


def run_child(args, name, extra):
    """Runs one peer in its own process and relays its rows; a crash becomes an error row."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--dir", args.dir,
           "--repeat", str(args.repeat), "--decoder-threads",
           ",".join(str(t) for t in args.decoder_threads), "--max-diff", str(args.max_diff)]
    proc = subprocess.Popen(cmd + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rows, all_ok = 0, True
    for line in proc.stdout:
        line = line.strip()
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        print_row(row, args.json)
        rows += 1
        all_ok &= "error" not in row and row.get("ok", True)
    stderr = proc.stderr.read()
    proc.wait()
    if proc.returncode != 0:
        tail = [s for s in stderr.strip().splitlines() if s.strip()][-1:] or ["no output"]
        row = {"bench": "decode-check" if args.check else "decode", "peer": name,
               "error": "peer process exited with status %d after %d rows: %s"
                        % (proc.returncode, rows, tail[0][:300]),
               "cpu_isa": common.cpu_isa(), "threads": common.threads()}
        print_row(row, args.json)
    if stderr.strip() and (proc.returncode != 0 or args.verbose):
        sys.stderr.write(stderr)
    return proc.returncode == 0 and all_ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--dir", required=True, help="folder with ssv2.webm and kinetics.mp4")
    p.add_argument("--repeat", type=int, default=3, help="best of N runs")
    p.add_argument("--peers", default="av,torchcodec,decord")
    p.add_argument("--decoder-threads", default="1,all",
                   help="decoder thread settings, comma-separated: N, or 'all' (0: FFmpeg's "
                        "automatic choice, as vidfuse's 'all' rows)")
    p.add_argument("--check", action="store_true",
                   help="compare indices and pixels with `vidfuse frames` instead of timing")
    p.add_argument("--max-diff", type=int, default=6,
                   help="--check: largest output difference accepted, in 1/255 steps")
    p.add_argument("--vidfuse", help="the vidfuse binary (default: $VIDFUSE, build/vidfuse)")
    p.add_argument("--verbose", action="store_true", help="pass the peers' stderr through")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--ref", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.repeat = max(1, args.repeat)
    args.decoder_threads = [0 if t.strip() == "all" else int(t)
                            for t in str(args.decoder_threads).split(",") if t.strip()]

    if args.child:
        (child_check if args.check else child_bench)(args, args.child)
        return 0

    missing = [c["file"] for c in CLIPS if not os.path.exists(os.path.join(args.dir, c["file"]))]
    if missing:
        print("decode_peers: %s missing in %s (make them with `vidfuse bench decode --dir %s`)"
              % (", ".join(missing), args.dir, args.dir), file=sys.stderr)
        if len(missing) == len(CLIPS):
            return 2
    names = []
    for n in args.peers.split(","):
        if n.strip() and ALIASES.get(n.strip()) is None:
            p.error("unknown peer '%s' (av, torchcodec, decord)" % n)
        if n.strip() and ALIASES[n.strip()] not in names:
            names.append(ALIASES[n.strip()])

    ok = True
    if args.check:
        with tempfile.TemporaryDirectory(prefix="decode-peers-ref-") as ref:
            make_reference(common.find_vidfuse(args.vidfuse), args.dir, ref)
            for name in names:
                ok &= run_child(args, name, ["--check", "--ref", ref])
        return 0 if ok else 1
    for name in names:
        ok &= run_child(args, name, [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
