// The demo's oqueue step: a file system's read requests on an observable queue, with the four
// kinds of handle the paper defines. A page cache consumes them, a prefetch policy observes every
// one (strong), another looks only at file 2's reads (filtered), and a third asks for the recent
// history when it decides (weak). The step checks the paper's promises as it goes and fails
// loudly if one breaks.
#include <fmt/format.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "sluice/cli/command.h"
#include "sluice/oqueue/oqueue.h"

namespace sluice::oq::cli {
namespace {

struct ReadRequest {
  uint32_t file;
  uint32_t seq;  // per-producer sequence number, to check exactly-once and order
  uint64_t offset;
};

bool is_file_two(const ReadRequest& r, uint64_t /*arg*/) {
  return r.file == 2;
}

Status run_oqueue_step(sluice::cli::DemoContext& ctx) {
  const uint32_t n = ctx.quick ? 20'000 : 200'000;
  OQueue<ReadRequest> reads("demo.fs_reads", 64);

  // Nothing attached: puts capture nothing.
  {
    auto fs = reads.attach_producer();
    for (uint32_t i = 0; i < 1000; ++i) {
      fs.put({1, i, i * 4096ULL});
    }
  }
  if (reads.stats().captures != 0) {
    return internal_error("an unobserved queue captured messages");
  }

  auto page_cache = reads.attach_consumer(WaitPolicy::kBlock);
  auto prefetcher = reads.attach_strong_observer(WaitPolicy::kBlock);
  auto file_two = reads.attach_strong_observer(WaitPolicy::kBlock, &is_file_two);
  auto recent = reads.attach_weak_observer(8);

  std::thread fs_thread([&reads, n] {
    auto fs = reads.attach_producer(WaitPolicy::kBlock);
    for (uint32_t i = 0; i < n; ++i) {
      fs.put({i % 4, i, (i / 4) * 8192ULL});
    }
  });
  uint64_t taken_sum = 0;
  std::thread cache_thread([&] {
    for (uint32_t i = 0; i < n; ++i) {
      taken_sum += page_cache.take().seq;
    }
  });
  uint32_t out_of_order = 0;
  std::thread prefetch_thread([&] {
    for (uint32_t i = 0; i < n; ++i) {
      out_of_order += prefetcher.strong_observe().seq != i ? 1U : 0U;
    }
  });
  uint32_t file_two_seen = 0;
  uint32_t wrong_file = 0;
  std::thread file_two_thread([&] {
    for (uint32_t i = 0; i < n / 4; ++i) {
      wrong_file += file_two.strong_observe().file != 2 ? 1U : 0U;
      ++file_two_seen;
    }
  });
  fs_thread.join();
  cache_thread.join();
  prefetch_thread.join();
  file_two_thread.join();

  const uint64_t expected_sum = uint64_t{n} * (n - 1) / 2;
  if (taken_sum != expected_sum) {
    return internal_error("the consumer did not take every message exactly once");
  }
  if (out_of_order != 0 || wrong_file != 0) {
    return internal_error(
        fmt::format("strong observers saw {} messages out of order and {} "
                    "they did not ask for",
                    out_of_order, wrong_file));
  }
  const std::vector<ReadRequest> last = recent.history(8);
  if (last.empty() || last.back().seq != n - 1) {
    return internal_error("the weak observer's history does not end at the last message");
  }

  const QueueStats s = reads.stats();
  std::fprintf(ctx.out,
               "   %u read requests: the page cache took each once, the prefetcher saw all in "
               "order,\n   the file-2 observer saw its %u and nothing else\n",
               n, file_two_seen);
  std::string tail;
  for (const ReadRequest& r : last) {
    tail += fmt::format(" {}@{}", r.file, r.offset);
  }
  std::fprintf(ctx.out, "   weak history, oldest first (file@offset):%s\n", tail.c_str());
  std::fprintf(ctx.out,
               "   counters: puts %llu, captures %llu, takes %llu, observes %llu, waits %llu "
               "(1000 puts before anyone attached captured nothing)\n",
               static_cast<unsigned long long>(s.puts), static_cast<unsigned long long>(s.captures),
               static_cast<unsigned long long>(s.takes),
               static_cast<unsigned long long>(s.observes),
               static_cast<unsigned long long>(s.waits));
  return {};
}

SLUICE_REGISTER_DEMO_STEP(oqueue, {.name = "oqueue",
                                   .summary = "observable queues: consumer, strong, filtered and "
                                              "weak observers on one stream",
                                   .order = 20,
                                   .run = run_oqueue_step});

}  // namespace
}  // namespace sluice::oq::cli
