// Subcommand registry: each apps/cmd_*.cpp registers itself, so adding a command touches one file.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace vidfuse::cli {

// `setup` adds the subcommand's options to `sub` and returns the function that runs it (exit code).
using Setup = std::function<std::function<int()>(CLI::App& sub)>;

struct CommandRegistration {
  CommandRegistration(const std::string& name, const std::string& help, Setup setup);
};

// Benchmarks (`vidfuse bench NAME`) register the same way.
struct BenchRegistration {
  BenchRegistration(const std::string& name, const std::string& help, Setup setup);
};

}  // namespace vidfuse::cli

#define VIDFUSE_CONCAT_INNER(a, b) a##b
#define VIDFUSE_CONCAT(a, b) VIDFUSE_CONCAT_INNER(a, b)
// __COUNTER__, not __LINE__: in a unity build two registrations on the same line of two files
// share one translation unit.
#define VIDFUSE_COMMAND(name, help, setup)                                                         \
  static ::vidfuse::cli::CommandRegistration VIDFUSE_CONCAT(vidfuse_cmd_, __COUNTER__)(name, help, \
                                                                                       setup)
#define VIDFUSE_BENCH(name, help, setup)                                                           \
  static ::vidfuse::cli::BenchRegistration VIDFUSE_CONCAT(vidfuse_bench_, __COUNTER__)(name, help, \
                                                                                       setup)
