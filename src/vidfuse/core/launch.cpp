#include "vidfuse/core/launch.h"

#include <arpa/inet.h>
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
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      const std::string kv = *e;
      bool ours = false;
      for (const char* name : {"RANK=", "LOCAL_RANK=", "WORLD_SIZE=", "MASTER_ADDR=",
                               "MASTER_PORT=", "OMP_NUM_THREADS="})
        ours = ours || kv.rfind(name, 0) == 0;
      if (!ours) env.push_back(kv);
    }
    env.push_back("RANK=" + std::to_string(rank));
    env.push_back("LOCAL_RANK=" + std::to_string(rank));
    env.push_back("WORLD_SIZE=" + std::to_string(nproc));
    env.push_back("MASTER_ADDR=127.0.0.1");
    env.push_back("MASTER_PORT=" + std::to_string(port));
    env.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
    std::vector<char*> envp, args;
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_copy = argv;
    for (auto& s : argv_copy) args.push_back(s.data());
    args.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, args.data(), envp.data()) != 0) {
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

}  // namespace vidfuse
