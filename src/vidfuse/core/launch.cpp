#include "vidfuse/core/launch.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>

#include "vidfuse/core/error.h"

extern char** environ;

namespace vidfuse {

namespace {

int free_local_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("cannot open a socket to find a free port for the workers");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  if (!ok) throw Error("cannot bind a local port for the workers' rendezvous");
  return ntohs(addr.sin_port);
}

// This process's environment without `names`' entries, then `extra` ("NAME=value").
std::vector<std::string> child_environment(const std::vector<std::string>& names,
                                           const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    bool ours = false;
    for (const auto& name : names) ours = ours || kv.rfind(name + "=", 0) == 0;
    if (!ours) env.push_back(kv);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// posix_spawn of this executable with `argv` (argv[0] included) and `env`; stdout and stderr go
// to `log_path` when one is given. Returns the pid, or -1.
pid_t spawn_self(std::vector<std::string> argv, std::vector<std::string> env,
                 const std::string& log_path = "") {
  std::vector<char*> envp, args;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  for (auto& s : argv) args.push_back(s.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!log_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  }
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

std::vector<std::string> this_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  std::string cur;
  for (char c : all) {
    if (c == '\0') {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) args.push_back(cur);
  return args;
}

bool launched_as_worker() { return std::getenv("RANK") || std::getenv("WORLD_SIZE"); }

int launch_local_workers(int nproc, const std::vector<std::string>& argv) {
  if (nproc < 1) throw Error("--nproc must be >= 1, got " + std::to_string(nproc));
  const int port = free_local_port();
  // Each rank gets an equal share of the cores, as torchrun's OMP_NUM_THREADS default intends:
  // N ranks each using every core would oversubscribe the machine N times.
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const unsigned threads = std::max(1u, cores / static_cast<unsigned>(nproc));
  std::vector<pid_t> pids;
  for (int rank = 0; rank < nproc; ++rank) {
    const std::vector<std::string> env = child_environment(
        {"RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "OMP_NUM_THREADS"},
        {"RANK=" + std::to_string(rank), "LOCAL_RANK=" + std::to_string(rank),
         "WORLD_SIZE=" + std::to_string(nproc), "MASTER_ADDR=127.0.0.1",
         "MASTER_PORT=" + std::to_string(port), "OMP_NUM_THREADS=" + std::to_string(threads)});
    const pid_t pid = spawn_self(argv, env);
    if (pid < 0) {
      for (pid_t p : pids) ::kill(p, SIGTERM);
      throw Error("cannot start worker rank " + std::to_string(rank));
    }
    pids.push_back(pid);
  }
  int result = 0;
  for (size_t done = 0; done < pids.size(); ++done) {
    int status = 0;
    const pid_t pid = ::wait(&status);
    if (pid < 0) break;
    const int code = exit_code(status);
    if (code != 0 && result == 0) {
      result = code;
      // A rank that died leaves the others blocked in a collective until the timeout.
      for (pid_t p : pids)
        if (p != pid) ::kill(p, SIGTERM);
    }
  }
  return result;
}

void run_local_jobs(const std::vector<LocalJob>& jobs, int parallel,
                    const std::function<void(size_t)>& on_start,
                    const std::function<void(size_t, int)>& on_done) {
  if (parallel < 1) throw Error("run_local_jobs: parallel must be >= 1");
  const std::string self = this_command_line().front();
  std::map<pid_t, size_t> running;
  size_t next = 0;
  while (next < jobs.size() || !running.empty()) {
    while (next < jobs.size() && static_cast<int>(running.size()) < parallel) {
      const LocalJob& job = jobs[next];
      std::vector<std::string> argv = {self};
      argv.insert(argv.end(), job.args.begin(), job.args.end());
      const pid_t pid = spawn_self(
          argv,
          child_environment({"OMP_NUM_THREADS"},
                            {"OMP_NUM_THREADS=" + std::to_string(std::max(1, job.threads))}),
          job.log_path);
      if (pid < 0) {
        for (const auto& [p, i] : running) ::kill(p, SIGTERM);
        for (size_t k = 0; k < running.size(); ++k) ::wait(nullptr);
        throw Error("cannot start a child process for " + job.log_path);
      }
      running[pid] = next;
      on_start(next++);
    }
    int status = 0;
    const pid_t pid = ::wait(&status);
    if (pid < 0) throw Error("run_local_jobs: lost track of the child processes");
    auto it = running.find(pid);
    if (it == running.end()) continue;  // not one of ours
    const size_t index = it->second;
    running.erase(it);
    try {
      on_done(index, exit_code(status));
    } catch (...) {  // the caller gives up: leave no job running behind it
      for (const auto& [p, i] : running) ::kill(p, SIGTERM);
      for (size_t k = 0; k < running.size(); ++k) ::wait(nullptr);
      throw;
    }
  }
}

}  // namespace vidfuse
