"""vidfuse side by side with today's Python stack: one table, every figure a ratio.

  bash bench/compare/run.sh [path/to/vidfuse]       # sets up .venv, then runs this

Each row runs vidfuse's own benchmark (`vidfuse bench ... --json`) and the peers' scripts in this
folder one after the other on the same machine, with the same weights (random, real shapes, written
once and loaded by both sides), the same inputs and the same thread count, and puts the figures
next to each other with the ratio vidfuse / fastest peer (> 1: vidfuse is faster) and the GEMM
ceiling each side measured in its own run. Before timing, each model row checks that both sides
compute the same function on those weights (parity rows).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import common

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable


def log(msg):
    print("compare: " + msg, file=sys.stderr, flush=True)


def run_json(cmd, env, timeout):
    """Runs one side of a row; returns its JSON lines (a failed run becomes one error row)."""
    log(" ".join(cmd))
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return [{"error": "timed out after %d s" % timeout}]
    rows = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    if p.returncode != 0 and not rows:
        tail = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
        rows.append({"error": "exit %d: %s" % (p.returncode, tail[:300])})
    log("  %.0f s, %d rows" % (time.perf_counter() - t0, len(rows)))
    return rows


class Compare:
    def __init__(self, args):
        self.args = args
        self.threads = args.threads
        self.env = dict(os.environ, COMPARE_THREADS=str(self.threads),
                        OMP_NUM_THREADS=str(self.threads), PYTHONUNBUFFERED="1")
        self.work = args.work
        os.makedirs(self.work, exist_ok=True)
        self.raw = open(os.path.join(args.out, "compare.jsonl"), "w")
        self.table = []  # (row, dtype, vidfuse figure, peers {name: figure|str}, unit, notes)
        self.parity = []
        self.done_checks = set()

    def once(self, check):
        """True the first time: parity checks run in the first round only."""
        first_time = check not in self.done_checks
        self.done_checks.add(check)
        return first_time

    def vidfuse(self, *argv, timeout=1800):
        cmd = [self.args.vidfuse, "--threads", str(self.threads), "bench", *argv, "--json"]
        return self.record("vidfuse", run_json(cmd, self.env, timeout))

    def peer(self, script, *argv, timeout=3600):
        return self.record(script, run_json([PY, os.path.join(HERE, script), *argv], self.env,
                                            timeout))

    def record(self, side, rows):
        for r in rows:
            self.raw.write(json.dumps(dict(r, side=side)) + "\n")
        self.raw.flush()
        return rows

    def add(self, row, dtype, unit, ours, ours_gemm, peers, higher_is_better=True):
        """ours: a figure or None; peers: [(name, figure | None, gemm, why-not)]."""
        self.table.append(dict(row=row, dtype=dtype, unit=unit, ours=ours, ours_gemm=ours_gemm,
                               peers=peers, higher=higher_is_better))

    # ---- the rows ----

    def weights(self):
        d = os.path.join(self.work, "dinov3-vitb16-random")
        if not os.path.exists(os.path.join(d, "model.safetensors")):
            self.peer("dinov3_peers.py", "--save-weights", d)
        i = os.path.join(self.work, "i3d-rgb-random.pt")
        if not os.path.exists(i):
            self.peer("i3d_peer.py", "--save-weights", i)
        return d, i

    def check_parity(self, dinov3, i3d):
        v = self.args.vidfuse
        self.parity.append(("DINOv3: transformers vs vidfuse forward", self.peer(
            "dinov3_peers.py", "--weights", dinov3, "--check-parity", "--vidfuse", v)))
        self.parity.append(("I3D: PyTorch I3D vs vidfuse forward", self.peer(
            "i3d_peer.py", "--weights", i3d, "--check-parity", "--json", "--vidfuse", v)))

    def check_fusion_parity(self):
        self.parity.append(("fusion: PyTorch model and step vs vidfuse train/eval", self.peer(
            "fusion_peer.py", "--check-parity", "--vidfuse", self.args.vidfuse)))

    def dinov3(self, weights):
        it = str(self.args.iters)
        for dtype in self.dtypes():
            ours = self.vidfuse("dinov3", "--weights", weights, "--dtype", dtype, "--iters", it)
            peers = self.peer("dinov3_peers.py", "--weights", weights, "--json", "--dtype", dtype,
                              "--iters", it)
            o = first(ours, dtype=dtype)
            self.add("DINOv3 ViT-B/16 224², batch 8", dtype, "img/s", o.get("images_per_s"),
                     o.get("gemm_gflops"), peer_figures(peers, "images_per_s", dtype=dtype))

    def i3d(self, weights):
        it = str(max(2, self.args.iters - 1))
        for dtype in self.dtypes():
            ours = self.vidfuse("i3d", "--weights", weights, "--dtype", dtype, "--iters", it)
            peers = self.peer("i3d_peer.py", "--weights", weights, "--json", "--dtype", dtype,
                              "--iters", it, "--mode", "both")
            o = first(ours, dtype=dtype)
            self.add("I3D RGB 64×224², 1 clip", dtype, "clips/s", inv(o.get("s_per_clip")),
                     o.get("gemm_gflops"),
                     [(n, inv(f), g, w) for n, f, g, w in
                      peer_figures(peers, "s_per_clip", dtype=dtype)])

    def decode(self):
        d = os.path.join(self.work, "decode-clips")
        # A clip takes 40-600 ms: best of 3 still catches page-fault and scheduling noise of 40 %
        # on this kind of VM (seen: one side's three SSv2 runs all at 60 ms, its best of 8 at 43),
        # so both sides take the best of at least 8.
        rep = str(max(8, self.args.iters))
        ours = self.vidfuse("decode", "--dir", d, "--repeat", rep)
        if self.once("decode-check"):
            self.parity.append(("decode: peers' frames vs vidfuse frames", self.peer(
                "decode_peers.py", "--check", "--json", "--dir", d, "--vidfuse",
                self.args.vidfuse)))
        peers = self.peer("decode_peers.py", "--json", "--dir", d, "--repeat", rep)
        for clip, mode in [(c, m) for c in ("ssv2-like", "kinetics-like")
                           for m in ("decode+segment8+dinov3", "decode+fps25+i3d")]:
            o = first(ours, clip=clip, mode=mode, threads="all")
            ff = o.get("ffmpeg_frames_per_s")
            self.add("decode + sample + resize, %s (%s)" % (clip, mode), "—", "frames/s",
                     o.get("frames_per_s"), None,
                     peer_figures(peers, "frames_per_s", clip=clip, mode=mode,
                                  threads="all") +
                     ([("ffmpeg -f null (decode only, ceiling)", ff, None, None)] if ff else []),
                     )

    def extract(self, dinov3, i3d):
        d = os.path.join(self.work, "extract-clips")
        n = str(self.args.videos)
        for dtype in self.dtypes():
            ours = self.vidfuse("extract", "--videos", n, "--dir", d, "--dtype", dtype,
                                "--dinov3-weights", dinov3, "--i3d-weights", i3d, timeout=3600)
            peers = self.peer("extract_peer.py", "--json", "--dir", d, "--videos", n, "--dtype",
                              dtype, "--dinov3-weights", dinov3, "--i3d-weights", i3d)
            o = first(ours, dtype=dtype)
            self.add("extract end to end (decode, DINOv3 ×16 frames + I3D 64×224², write), "
                     "SSv2-like clips", dtype, "videos/s", o.get("e2e_videos_per_s"), None,
                     peer_figures(peers, "e2e_videos_per_s", dtype=dtype))

    def fusion(self):
        if self.once("fusion-parity"):
            self.check_fusion_parity()
        it = str(max(2, self.args.iters - 1))
        for dtype in self.dtypes():
            ours = self.vidfuse("fusion", "--iters", it, "--precision", dtype)
            peers = self.peer("fusion_peer.py", "--mode", "both", "--iters", it, "--precision",
                              dtype)
            o = first(ours)
            for key, what in (("train_samples_per_s", "training step"),
                              ("eval_samples_per_s", "evaluation")):
                self.add("fusion %s, default config, SSv2-shaped features, batch 32" % what,
                         dtype, "samples/s", o.get(key), o.get("gemm_gflops"),
                         peer_figures(peers, key))

    def dtypes(self):
        if self.args.dtype != "auto":
            return [self.args.dtype]
        return ["fp32", "bf16"] if common.has_native_bf16() else ["fp32"]

    # ---- the table ----

    def markdown(self):
        isa = common.cpu_isa()
        lines = [
            "Machine: %s, %d cores, ISA `%s`, %d threads on both sides; %s." % (
                cpu_model(), os.cpu_count(), isa, self.threads, time.strftime("%Y-%m-%d")),
            "",
            "| row | dtype | vidfuse | fastest peer | vidfuse / fastest | other peers | GEMM ceiling "
            "(vidfuse run / peer run) |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in merge_rounds(self.table):
            ok = [(n, f, g) for n, f, g, w in t["peers"] if f is not None and "ceiling" not in n]
            ceilings = [(n, f) for n, f, g, w in t["peers"] if f is not None and "ceiling" in n]
            failed = [(n, w) for n, f, g, w in t["peers"] if f is None]
            best = max(ok, key=lambda p: p[1]) if ok else None
            ours = fmt(t["ours"], t["unit"]) if t["ours"] is not None else "failed"
            ratio = "%.2f" % (t["ours"] / best[1]) if best and t["ours"] else "—"
            if best and t["ours"] and t["ours"] < best[1]:
                ratio = "**%s** (behind)" % ratio
            others = ["%s %s" % (n, fmt(f, "")) for n, f, g in ok if best and n != best[0]]
            others += ["%s %s" % (n, fmt(f, "")) for n, f in ceilings]
            others += ["%s: %s" % (n, w) for n, w in failed]
            peer_gemm = next((g for n, f, g in ok if best and n == best[0]), None)
            gemm = "%s / %s" % (gflops(t["ours_gemm"]), gflops(peer_gemm))
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                t["row"], t["dtype"], ours,
                "%s %s" % (best[0], fmt(best[1], t["unit"])) if best else "none ran", ratio,
                "; ".join(others) or "—", gemm))
        if not common.has_native_bf16():
            lines += ["", "bf16 rows: not measured, this CPU (`%s`) has no native bf16 (LibTorch and "
                      "the peers emulate it, ~90x slower than fp32)." % isa]
        if self.parity:
            lines += ["", "Parity (both sides on the same weights and inputs, checked before timing):"]
            lines += ["- %s: %s" % (what, parity_summary(rows)) for what, rows in self.parity]
        return "\n".join(lines) + "\n"


def merge_rounds(table):
    """With --rounds, each row was measured several times, the sides alternating: keep each side's
    best figure (with the ceiling of the run it came from). On a shared VM the speed drifts
    between runs; the best of interleaved runs is the least disturbed one of each side."""
    merged = {}
    for t in table:
        key = (t["row"], t["dtype"])
        if key not in merged:
            merged[key] = dict(t, peers=list(t["peers"]))
            continue
        m = merged[key]
        if t["ours"] is not None and (m["ours"] is None or t["ours"] > m["ours"]):
            m["ours"], m["ours_gemm"] = t["ours"], t["ours_gemm"]
        best = {p[0]: i for i, p in enumerate(m["peers"])}
        for p in t["peers"]:
            i = best.get(p[0])
            if i is None:
                m["peers"].append(p)
            elif p[1] is not None and (m["peers"][i][1] is None or p[1] > m["peers"][i][1]):
                m["peers"][i] = p
    return list(merged.values())


def parity_summary(rows):
    """One line for a check's rows: ok only when every row says ok and none failed."""
    judged = [r for r in rows if "ok" in r or "error" in r]
    if not judged:
        return "NOT RUN (no result rows)"
    bad = [r for r in judged if "error" in r or not r.get("ok")]
    figures = []
    for r in judged:
        for key in ("max_rel_err", "max_rel_error_logits", "out_max_abs_diff_255"):
            if isinstance(r.get(key), (int, float)):
                figures.append((key, r[key]))
    detail = "%d check(s)" % len(judged)
    for key in ("max_rel_err", "max_rel_error_logits"):
        vals = [v for k, v in figures if k == key]
        if vals:
            detail += ", worst max relative error %.1e" % max(vals)
    diffs = [v for k, v in figures if k == "out_max_abs_diff_255"]
    if diffs:
        detail += ", same frame indices, worst pixel difference %g/255" % max(diffs)
    if bad:
        why = bad[0].get("error") or bad[0].get("check") or bad[0].get("peer") or "?"
        return "**FAILED** (%d of %s; first: %s)" % (len(bad), detail, why)
    return "ok (%s)" % detail


def first(rows, **match):
    for r in rows:
        if all(str(r.get(k)) == str(v) for k, v in match.items()) and "error" not in r:
            return r
    return {}


def peer_figures(rows, key, **match):
    """[(peer, figure or None, its GEMM ceiling, why it has no figure)] for rows matching `match`."""
    out = []
    for r in rows:
        if not all(str(r.get(k)) == str(v) for k, v in match.items() if k in r):
            continue
        name = r.get("peer", "?")
        why = r.get("error") or r.get("skipped")
        out.append((name, None if why else r.get(key), r.get("gemm_gflops"),
                    why or (None if r.get(key) is not None else "no %s in its output" % key)))
    return out


def inv(x):
    return 1.0 / x if x else None


def fmt(x, unit):
    if x is None:
        return "—"
    s = "%.3g" % x if x < 100 else "%.0f" % x
    return (s + " " + unit).strip()


def gflops(g):
    return "%.0f GFLOP/s" % g if g else "—"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


ROWS = ["dinov3", "i3d", "decode", "extract", "fusion"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vidfuse", required=True, help="the vidfuse binary")
    ap.add_argument("--rows", default=",".join(ROWS), help="subset of " + ",".join(ROWS))
    ap.add_argument("--threads", type=int, default=common.threads())
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per figure")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every row this many times, the sides alternating; best kept")
    ap.add_argument("--videos", type=int, default=8, help="clips in the extraction row")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 too where native), fp32, bf16")
    ap.add_argument("--out", default="compare-out")
    ap.add_argument("--work", default=None, help="weights and clips (reused between runs)")
    args = ap.parse_args()
    args.vidfuse = os.path.abspath(args.vidfuse)
    os.makedirs(args.out, exist_ok=True)
    args.work = args.work or os.path.join(args.out, "work")
    c = Compare(args)
    rows = args.rows.split(",")
    dinov3_w = i3d_w = None
    if {"dinov3", "i3d", "extract"} & set(rows):
        dinov3_w, i3d_w = c.weights()
        c.check_parity(dinov3_w, i3d_w)
    for name in [r for _ in range(args.rounds) for r in rows]:
        if name == "dinov3":
            c.dinov3(dinov3_w)
        elif name == "i3d":
            c.i3d(i3d_w)
        elif name == "decode":
            c.decode()
        elif name == "extract":
            c.extract(dinov3_w, i3d_w)
        elif name == "fusion":
            c.fusion()
        else:
            sys.exit("unknown row " + name)
        md = c.markdown()  # rewritten after every row: a long run shows what it has so far
        with open(os.path.join(args.out, "compare.md.tmp"), "w") as f:
            f.write(md)
        os.replace(os.path.join(args.out, "compare.md.tmp"), os.path.join(args.out, "compare.md"))
    print(c.markdown())


if __name__ == "__main__":
    main()
