// `vidfuse`: the command-line entry point. Subcommands live in apps/cmd_*.cpp, benchmarks in
// apps/bench_*.cpp; both register themselves through apps/command.h.
#include <iostream>
#include <map>

#include "command.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/runtime.h"

namespace vidfuse::cli {
namespace {
struct Entry {
  std::string help;
  Setup setup;
};
std::map<std::string, Entry>& commands() {
  static std::map<std::string, Entry> m;
  return m;
}
std::map<std::string, Entry>& benches() {
  static std::map<std::string, Entry> m;
  return m;
}
}  // namespace

CommandRegistration::CommandRegistration(const std::string& name, const std::string& help,
                                         Setup setup) {
  commands()[name] = {help, std::move(setup)};
}
BenchRegistration::BenchRegistration(const std::string& name, const std::string& help,
                                     Setup setup) {
  benches()[name] = {help, std::move(setup)};
}

}  // namespace vidfuse::cli

int main(int argc, char** argv) {
  using namespace vidfuse::cli;
  CLI::App app{"vidfuse: two-stream (DINOv3 + I3D) video understanding in C++"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "Intra-op threads (0 = all cores)");
  std::function<int()> run;
  for (auto& [name, entry] : commands()) {
    CLI::App* sub = app.add_subcommand(name, entry.help);
    auto body = entry.setup(*sub);
    sub->callback([&run, body] { run = body; });
  }
  if (!benches().empty()) {
    CLI::App* bench =
        app.add_subcommand("bench", "Measure throughput against the hardware ceiling");
    bench->require_subcommand(1);
    for (auto& [name, entry] : benches()) {
      CLI::App* sub = bench->add_subcommand(name, entry.help);
      auto body = entry.setup(*sub);
      sub->callback([&run, body] { run = body; });
    }
  }
  CLI11_PARSE(app, argc, argv);
  try {
    vidfuse::configure_runtime(threads);
    return run ? run() : 0;
  } catch (const vidfuse::Error& e) {
    std::cerr << "vidfuse: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "vidfuse: error: " << e.what_without_backtrace() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "vidfuse: error: " << e.what() << "\n";
    return 2;
  }
}
