// `vidfuse synth --out DIR`: a procedural "something-something" dataset (encoded videos + SSv2
// manifests for the action, object and composite label sets), deterministic from --seed. A rerun
// into the same folder keeps the clips already there, so an interrupted run can be finished.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "command.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/synth.h"

namespace {

struct SynthArgs {
  std::string out, size = "160x120", actions, objects;
  vidfuse::data::SynthOptions options;
};

void parse_size(const std::string& s, int64_t& w, int64_t& h) {
  const auto x = s.find_first_of("xX");
  try {
    if (x == std::string::npos) throw std::invalid_argument(s);
    size_t used_w = 0, used_h = 0;
    w = std::stoll(s.substr(0, x), &used_w);
    h = std::stoll(s.substr(x + 1), &used_h);
    if (used_w != x || used_h != s.size() - x - 1) throw std::invalid_argument(s);
  } catch (const std::logic_error&) {
    throw vidfuse::Error("synth: --size '" + s + "': expected WIDTHxHEIGHT, e.g. 160x120");
  }
}

int run_synth(SynthArgs a) {
  using namespace vidfuse::data;
  SynthOptions& o = a.options;
  parse_size(a.size, o.width, o.height);
  if (!a.actions.empty()) o.actions = parse_synth_actions(a.actions);
  if (!a.objects.empty()) o.objects = parse_synth_objects(a.objects);
  o = normalize_synth_options(o);  // errors before anything is written

  // One progress line, redrawn in place on a terminal; a log gets a line every 10%.
  const bool tty = isatty(fileno(stderr));
  int64_t last_decile = -1;
  auto progress = [&](const SynthProgress& p) {
    if (tty) {
      std::fprintf(stderr, "\rsynth: %lld/%lld clips (%lld rendered, %lld already there)",
                   static_cast<long long>(p.done), static_cast<long long>(p.total),
                   static_cast<long long>(p.rendered), static_cast<long long>(p.skipped));
      std::fflush(stderr);
    } else if (p.done * 10 / p.total != last_decile) {
      last_decile = p.done * 10 / p.total;
      std::fprintf(stderr, "synth: %lld/%lld clips\n", static_cast<long long>(p.done),
                   static_cast<long long>(p.total));
    }
  };
  const SynthSummary s = write_synth_dataset(a.out, o, progress);
  if (tty) std::fprintf(stderr, "\n");
  std::printf(
      "synth: %lld clips (%lld rendered, %lld kept) in %s: %lld train / %lld validation; "
      "%lld actions x %lld objects = %lld composite classes; %s, %lldx%lld, %lld frames at %g "
      "fps, seed %llu; %.1f s\n",
      static_cast<long long>(s.clips), static_cast<long long>(s.rendered),
      static_cast<long long>(s.skipped), a.out.c_str(), static_cast<long long>(s.train),
      static_cast<long long>(s.validation), static_cast<long long>(s.actions),
      static_cast<long long>(s.objects), static_cast<long long>(s.actions * s.objects),
      o.format.c_str(), static_cast<long long>(o.width), static_cast<long long>(o.height),
      static_cast<long long>(o.frames), o.fps, static_cast<unsigned long long>(o.seed), s.seconds);
  std::printf("  label sets: %s/labels.json (actions), %s/object/, %s/composite/\n", a.out.c_str(),
              a.out.c_str(), a.out.c_str());
  return 0;
}

}  // namespace

VIDFUSE_COMMAND(
    "synth",
    "Render a synthetic something-something dataset (encoded videos + SSv2 manifests for the "
    "action, object and composite label sets)",
    [](CLI::App& sub) {
      auto a = std::make_shared<SynthArgs>();
      sub.add_option("--out", a->out, "Output folder (a rerun keeps the clips already there)")
          ->required();
      sub.add_option("--clips", a->options.clips, "Number of clips")->capture_default_str();
      sub.add_option("--seed", a->options.seed, "Seed: same seed, same dataset")
          ->capture_default_str();
      sub.add_option("--size", a->size, "Frame size WIDTHxHEIGHT (even)")->capture_default_str();
      sub.add_option("--frames", a->options.frames, "Frames per clip")->capture_default_str();
      sub.add_option("--fps", a->options.fps, "Frame rate")->capture_default_str();
      sub.add_option("--format", a->options.format,
                     "webm (VP9) | mp4 (H.264) | both (half the clips each)")
          ->capture_default_str();
      sub.add_option("--actions", a->actions,
                     "N (the first N) or comma-separated names, e.g. left-to-right,fall "
                     "(default: all " +
                         std::to_string(vidfuse::data::synth_actions().size()) + ")");
      sub.add_option("--objects", a->objects,
                     "N (the first N) or comma-separated names, e.g. 'red ball,blue box' "
                     "(default: all " +
                         std::to_string(vidfuse::data::synth_objects().size()) + ")");
      sub.add_option("--val-fraction", a->options.val_fraction,
                     "Share of each composite class held out for validation")
          ->capture_default_str();
      sub.add_option("--jobs", a->options.jobs, "Worker threads (0 = one per core)")
          ->capture_default_str();
      return [a]() { return run_synth(*a); };
    });
