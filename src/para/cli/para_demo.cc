// `sluice demo` step "para": starts the runtime on the allowed cores, sends work across cores
// with submit_to, reads a temporary file with O_DIRECT into arena memory, and shares one file
// through a virtual queue.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "sluice/cli/command.h"
#include "sluice/common/clock.h"
#include "sluice/common/topology.h"
#include "sluice/para/file.h"
#include "sluice/para/runtime.h"
#include "sluice/para/virtual_queue.h"

namespace sluice::para::cli {
namespace {

Status write_file(const std::string& path, size_t blocks) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return errno_status(errno, "create " + path);
  std::string block(4096, '\0');
  for (size_t b = 0; b < blocks; ++b) {
    std::snprintf(block.data(), block.size(), "block %zu", b);
    if (::write(fd, block.data(), block.size()) != 4096) {
      ::close(fd);
      return errno_status(errno, "write " + path);
    }
  }
  ::close(fd);
  return {};
}

Status run_para_step(sluice::cli::DemoContext& ctx) {
  SLUICE_ASSIGN_OR_RETURN(RuntimeOptions o, RuntimeOptions::from_knobs());
  o.arena_size = std::min<size_t>(o.arena_size, size_t{16} << 20);
  const int64_t t0 = monotonic_ns();
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Runtime> rt, Runtime::start(o));
  std::fprintf(ctx.out, "   runtime: %zu partition(s) on cores %s, started in %.1f ms\n",
               rt->size(), format_cpu_list(rt->cores()).c_str(),
               static_cast<double>(monotonic_ns() - t0) / 1e6);
  // The start-up facts live on each reactor; read them there (reactor-local state).
  for (int core : rt->cores()) {
    Result<std::string> about = rt->run_on(core, [] {
      Reactor& r = local_reactor();
      return "arena " + r.arena().describe() + "; io_uring " + r.ring_info().describe();
    });
    if (about.is_ok())
      std::fprintf(ctx.out, "     core %d: %s\n", core, about->c_str());
  }
  for (const std::string& note : rt->notes())
    std::fprintf(ctx.out, "     note: %s\n", note.c_str());

  // Cross-core messages: every partition asks every other one for its core id.
  const int rounds = ctx.quick ? 100 : 10000;
  const int first = rt->cores().front();
  const int last = rt->cores().back();
  struct Ping {
    int target;
    int rounds;
  } ping{last, rounds};
  const int64_t t1 = monotonic_ns();
  Result<int> pings = rt->run_on(first, [&ping]() -> Task<int> {
    int ok = 0;
    for (int i = 0; i < ping.rounds; ++i) {
      Result<int> where = co_await submit_to(ping.target, [] { return local_reactor().core(); });
      ok += where.is_ok() && *where == ping.target ? 1 : 0;
    }
    co_return ok;
  });
  SLUICE_RETURN_IF_ERROR(pings.status());
  const double us = static_cast<double>(monotonic_ns() - t1) / 1e3 / rounds;
  std::fprintf(ctx.out,
               "   submit_to: %d round trips core %d -> core %d, all answered by core %d; %.1f us "
               "each (idle reactors poll briefly, then sleep until an eventfd wakes them)\n",
               *pings, first, last, last, us);

  // O_DIRECT reads of a temporary file into arena memory.
  const std::string path = sluice::cli::DemoContext::scratch_path("sluice_para_demo");
  const size_t blocks = 64;
  SLUICE_RETURN_IF_ERROR(write_file(path, blocks));
  struct ReadJob {
    std::string path;
    size_t blocks;
  } job{path, blocks};
  Result<std::string> read = rt->run_on(last, [&job]() -> Task<Result<std::string>> {
    SLUICE_CO_ASSIGN_OR_RETURN(File f, co_await File::open(job.path, {}));
    Buffer buf = local_reactor().allocate(4096);
    std::string first_words;
    const size_t picks[] = {0, 7, 42, job.blocks - 1};
    for (size_t b : picks) {
      SLUICE_CO_ASSIGN_OR_RETURN(size_t n, co_await f.read_at(b * 4096, buf.span()));
      if (n != 4096)
        co_return data_loss("short read of " + job.path);
      first_words += (first_words.empty() ? "'" : ", '") +
                     std::string(reinterpret_cast<const char*>(buf.data())) + "'";
    }
    const bool in_arena = local_reactor().arena().contains(buf.data(), buf.size());
    co_return std::string(f.direct() ? "O_DIRECT" : "buffered (no O_DIRECT on this filesystem)") +
        (local_reactor().ring_info().registered_buffers && in_arena ? ", READ_FIXED into the arena"
                                                                    : ", into the arena") +
        ": " + first_words;
  });
  std::filesystem::remove(path);
  SLUICE_RETURN_IF_ERROR(read.status());
  std::fprintf(ctx.out, "   file: 4 reads of 4 KiB on core %d, %s\n", last, read->c_str());

  // A virtual queue: one partition owns a counter; every partition floods it.
  struct Counter {
    uint64_t ops = 0;
  } counter;
  VirtualQueue<Counter> vq(*rt, first, &counter, {.max_inflight = 1});
  const int per = ctx.quick ? 100 : 1000;
  std::vector<std::thread> threads;
  for (int core : rt->cores()) {
    threads.emplace_back([&rt, &vq, core, per] {
      (void)rt->run_on(core, [&vq, per]() -> Task<int> {
        std::vector<Task<Result<uint64_t>>> calls;
        for (int i = 0; i < per; ++i) {
          calls.push_back(vq.call([](Counter& c) -> Task<uint64_t> {
            co_await yield();
            co_return ++c.ops;
          }));
        }
        co_await when_all(std::move(calls));
        co_return 0;
      });
    });
  }
  for (auto& t : threads)
    t.join();
  rt->stop();
  std::string served;
  for (size_t i = 0; i < vq.scheduler().served().size(); ++i) {
    served += (i ? ", " : "") + std::string("core ") + std::to_string(rt->cores()[i]) + ": " +
              std::to_string(vq.scheduler().served()[i]);
  }
  std::fprintf(ctx.out,
               "   virtual queue: core %d owns a counter; %d calls from each partition served "
               "round-robin (%s); counter = %llu\n",
               first, per, served.c_str(), static_cast<unsigned long long>(counter.ops));
  uint64_t messages = 0;
  for (uint32_t i = 0; i < rt->size(); ++i)
    messages += rt->inbound(i).stats().takes;
  std::fprintf(ctx.out,
               "   stopped cleanly; %llu messages crossed the observable queues "
               "para.inbound.<core>\n",
               static_cast<unsigned long long>(messages));
  return {};
}

SLUICE_REGISTER_DEMO_STEP(para, {.name = "para",
                                 .summary = "partitioned runtime: cross-core messages, O_DIRECT "
                                            "reads, a virtual queue",
                                 .order = 30,
                                 .run = run_para_step});

}  // namespace
}  // namespace sluice::para::cli
