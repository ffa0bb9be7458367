// Scenario drivers shared by bench/para/para_bench.cc and `sluice para bench`: para against its
// peers, each call one measurement.
//
//   storage  4 KiB random O_DIRECT reads at a fixed queue depth on one core: para vs fio
//            (ioengine=io_uring, same file, same depth, pinned to the same core)
//   message  cross-core request/reply round trip: para submit_to vs std::mutex +
//            std::condition_variable hand-off between two pinned threads
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/common/clock.h"
#include "sluice/common/result.h"
#include "sluice/para/file.h"
#include "sluice/para/runtime.h"

namespace sluice::para::bench {

inline double median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Creates (or reuses, if it has the size) a file of `bytes` filled with non-zero data.
inline Status make_data_file(const std::string& path, uint64_t bytes) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd < 0)
    return errno_status(errno, "create " + path);
  const off_t have = lseek(fd, 0, SEEK_END);
  if (have == static_cast<off_t>(bytes)) {
    ::close(fd);
    return {};
  }
  if (ftruncate(fd, 0) != 0) {
    ::close(fd);
    return errno_status(errno, "truncate " + path);
  }
  std::vector<char> block(size_t{1} << 20);
  std::mt19937_64 rng(42);
  for (auto& c : block)
    c = static_cast<char>(rng() | 1);
  for (uint64_t off = 0; off < bytes; off += block.size()) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(block.size(), bytes - off));
    if (::pwrite(fd, block.data(), n, static_cast<off_t>(off)) != static_cast<ssize_t>(n)) {
      ::close(fd);
      return errno_status(errno, "write " + path);
    }
  }
  fsync(fd);
  ::close(fd);
  return {};
}

struct IoResult {
  double iops = 0;
  double p99_us = 0;  // para only
};

// para: one partition on `core`, `depth` coroutines each keeping one 4 KiB O_DIRECT read in
// flight at a random aligned offset, for `seconds`.
inline Result<IoResult> para_random_reads(const std::string& path, int core, int depth,
                                          double seconds, IdleMode idle = IdleMode::kSleep) {
  RuntimeOptions o;
  o.cores = {core};
  o.arena_size = size_t{16} << 20;
  o.idle = idle;
  o.offload_threads = 1;
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Runtime> rt, Runtime::start(o));
  struct Shared {
    std::string path;
    int depth;
    double seconds;
  } shared{path, depth, seconds};
  auto body = [&shared]() -> Task<Result<IoResult>> {
    SLUICE_CO_ASSIGN_OR_RETURN(File f, co_await File::open(shared.path, {.require_direct = true}));
    SLUICE_CO_ASSIGN_OR_RETURN(uint64_t size, f.size());
    const uint64_t blocks = size / 4096;
    if (blocks == 0)
      co_return invalid_argument(shared.path + " is smaller than 4 KiB");
    const int64_t end = monotonic_ns() + static_cast<int64_t>(shared.seconds * 1e9);
    std::vector<uint64_t> counts(static_cast<size_t>(shared.depth), 0);
    auto worker = [](const File* file, uint64_t nblocks, int64_t until, uint64_t seed,
                     uint64_t* count) -> Task<Status> {
      Buffer buf = local_reactor().allocate(4096);
      std::mt19937_64 rng(seed);
      while (monotonic_ns() < until) {
        const uint64_t off = (rng() % nblocks) * 4096;
        Result<size_t> n = co_await file->read_at(off, buf.span());
        if (!n.is_ok())
          co_return n.status();
        ++*count;
      }
      co_return Status();
    };
    std::vector<Task<Status>> ws;
    for (int i = 0; i < shared.depth; ++i) {
      ws.push_back(
          worker(&f, blocks, end, static_cast<uint64_t>(i) + 1, &counts[static_cast<size_t>(i)]));
    }
    const int64_t start = monotonic_ns();
    std::vector<Status> st = co_await when_all(std::move(ws));
    const double elapsed = static_cast<double>(monotonic_ns() - start) / 1e9;
    for (const Status& s : st) {
      if (!s.is_ok())
        co_return s;
    }
    uint64_t total = 0;
    for (uint64_t c : counts)
      total += c;
    co_return IoResult{static_cast<double>(total) / elapsed, 0};
  };
  Result<IoResult> r = rt->run_on(core, body);
  rt->stop();
  return r;
}

// fio with the same file, block size, depth and core. Needs `fio` on PATH. `registered`: fio
// registers its buffers and file with the ring (--fixedbufs --registerfiles), as para does with
// its arena — the stricter peer.
inline Result<IoResult> fio_random_reads(const std::string& path, int core, int depth,
                                         double seconds, bool registered = false) {
  const std::string cmd =
      "fio --name=para-peer --filename=" + path +
      " --ioengine=io_uring --direct=1 --rw=randread --bs=4k --iodepth=" + std::to_string(depth) +
      (registered ? " --fixedbufs --registerfiles" : "") +
      " --numjobs=1 --thread --cpus_allowed=" + std::to_string(core) +
      " --time_based --runtime=" + std::to_string(std::max(1, static_cast<int>(seconds))) +
      " --randrepeat=0 --norandommap --output-format=json 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr)
    return unavailable("cannot run fio");
  std::string out;
  std::array<char, 4096> buf;
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0)
    out.append(buf.data(), n);
  const int rc = pclose(p);
  if (rc != 0)
    return unavailable("fio failed (exit " + std::to_string(rc) + "); is it installed?");
  const size_t brace = out.find('{');
  if (brace == std::string::npos)
    return internal_error("fio printed no JSON");
  nlohmann::json j = nlohmann::json::parse(out.substr(brace), nullptr, false);
  if (j.is_discarded())
    return internal_error("fio printed unparseable JSON");
  IoResult r;
  r.iops = j["jobs"][0]["read"]["iops"].get<double>();
  return r;
}

// para: `iters` request/reply round trips from core a to core b; returns ns per round trip.
inline Result<double> para_round_trip_ns(int a, int b, int iters, IdleMode idle) {
  RuntimeOptions o;
  o.cores = {a, b};
  o.arena_size = size_t{4} << 20;
  o.idle = idle;
  o.offload_threads = 1;
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Runtime> rt, Runtime::start(o));
  auto body = [b, iters]() -> Task<Result<double>> {
    for (int i = 0; i < 1000; ++i)
      (void)co_await submit_to(b, [] { return 1; });  // warm-up
    const int64_t start = monotonic_ns();
    int64_t sum = 0;
    for (int i = 0; i < iters; ++i) {
      Result<int> r = co_await submit_to(b, [i] { return i; });
      sum += r.value_or(0);
    }
    const double ns = static_cast<double>(monotonic_ns() - start) / iters;
    if (sum != static_cast<int64_t>(iters) * (iters - 1) / 2)
      co_return internal_error("bad sum");
    co_return ns;
  };
  Result<double> r = rt->run_on(a, body);
  rt->stop();
  return r;
}

inline void pin_to(int core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<size_t>(core), &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// The peer: a request slot guarded by a mutex, two condition variables, two pinned threads.
inline double mutex_cv_round_trip_ns(int a, int b, int iters) {
  std::mutex mu;
  std::condition_variable to_server, to_client;
  bool has_request = false, has_reply = false, quit = false;
  int request = 0, reply = 0;
  std::thread server([&] {
    pin_to(b);
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      to_server.wait(lock, [&] { return has_request || quit; });
      if (quit)
        return;
      has_request = false;
      reply = request;
      has_reply = true;
      to_client.notify_one();
    }
  });
  double ns = 0;
  std::thread client([&] {
    pin_to(a);
    auto one = [&](int v) {
      std::unique_lock<std::mutex> lock(mu);
      request = v;
      has_request = true;
      to_server.notify_one();
      to_client.wait(lock, [&] { return has_reply; });
      has_reply = false;
      return reply;
    };
    for (int i = 0; i < 1000; ++i)
      one(i);
    const int64_t start = monotonic_ns();
    int64_t sum = 0;
    for (int i = 0; i < iters; ++i)
      sum += one(i);
    ns = static_cast<double>(monotonic_ns() - start) / iters;
    if (sum < 0)
      std::abort();
  });
  client.join();
  {
    std::lock_guard<std::mutex> lock(mu);
    quit = true;
  }
  to_server.notify_one();
  server.join();
  return ns;
}

}  // namespace sluice::para::bench
