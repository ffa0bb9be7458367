// `sluice demo` step "zicio": writes a table of known bytes, scans it through a channel as a
// worker that processes at a set rate (slower than the disk, so the control loop must pace its
// reads), checks every byte, and prints the worker's wait time next to the paced request rate.
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "sluice/cli/command.h"
#include "sluice/common/clock.h"
#include "sluice/zicio/channel.h"

namespace sluice::zicio::cli {
namespace {

uint64_t word_at(uint64_t index) {
  return index * 0x9E3779B97F4A7C15ull ^ (index >> 7);
}

Status write_table(const std::string& path, uint64_t bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return errno_status(errno, "create " + path);
  std::vector<uint64_t> block(size_t{1} << 17);  // 1 MiB
  for (uint64_t off = 0; off < bytes; off += block.size() * 8) {
    for (size_t i = 0; i < block.size(); ++i)
      block[i] = word_at(off / 8 + i);
    const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes - off, block.size() * 8));
    if (::write(fd, block.data(), n) != static_cast<ssize_t>(n)) {
      const int err = errno;
      ::close(fd);
      return errno_status(err, "write " + path);
    }
  }
  ::close(fd);
  return {};
}

// Scans `path` processing `rate` bytes per second (0: as fast as it can); checks every word.
Status scan(sluice::cli::DemoContext& ctx, const std::string& path, uint64_t rate) {
  ChannelOptions o = ChannelOptions::from_knobs();
  o.name = "demo";
  SLUICE_ASSIGN_OR_RETURN(Channel ch, Channel::open({path}, {}, o));
  const int64_t start = monotonic_ns();
  int64_t worker_clock = start;
  uint64_t bad_words = 0;
  for (;;) {
    Result<Page> p = ch.get_page_wait(std::chrono::seconds(60));
    if (!p.is_ok()) {
      if (p.status().code() == StatusCode::kOutOfRange)
        break;
      return p.status().with_context("demo scan");
    }
    const uint64_t first = p->stream_offset / 8;
    for (size_t i = 0; i < p->size / 8; ++i) {
      uint64_t w;
      std::memcpy(&w, p->data + i * 8, 8);
      bad_words += w != word_at(first + i);
    }
    if (rate != 0) {  // the worker's own time line, not counting time spent waiting for data
      const int64_t now = monotonic_ns();
      worker_clock =
          std::max(worker_clock, now - 1000000) +
          static_cast<int64_t>(static_cast<double>(p->size) * 1e9 / static_cast<double>(rate));
      if (worker_clock > now) {
        const timespec ts{.tv_sec = worker_clock / 1000000000,
                          .tv_nsec = worker_clock % 1000000000};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
      }
    }
    SLUICE_RETURN_IF_ERROR(ch.put_page(*p));
  }
  const double secs = static_cast<double>(monotonic_ns() - start) / 1e9;
  const ChannelStats s = ch.stats();
  if (bad_words != 0) {
    return data_loss("zicio demo: " + std::to_string(bad_words) + " words of " + path +
                     " differ from what was written");
  }
  std::fprintf(ctx.out,
               "   %-22s %7.1f MiB/s, worker waited %5.1f%% of %.2f s; %" PRIu64 " reads (%" PRIu64
               " paced, %" PRIu64 " reward), %.0f reads/s, %s%s\n",
               rate ? ("worker at " + std::to_string(rate >> 20) + " MiB/s:").c_str()
                    : "worker unthrottled:",
               static_cast<double>(s.bytes_got) / secs / (1 << 20),
               100.0 * static_cast<double>(s.worker_wait_ns) / (secs * 1e9), secs, s.requests,
               s.paced_requests, s.reward_requests, s.request_rate,
               s.direct ? "O_DIRECT" : "buffered", s.bypass ? ", block device" : "");
  return {};
}

Status run_zicio_step(sluice::cli::DemoContext& ctx) {
  const uint64_t bytes = ctx.quick ? (uint64_t{32} << 20) : (uint64_t{256} << 20);
  const std::string path = sluice::cli::DemoContext::scratch_path("sluice_zicio_demo");
  Status st = write_table(path, bytes);
  if (st.is_ok()) {
    std::fprintf(ctx.out, "   table %s: %" PRIu64 " MiB of known words; every word is checked\n",
                 path.c_str(), bytes >> 20);
    st = scan(ctx, path, uint64_t{128} << 20);
    if (st.is_ok())
      st = scan(ctx, path, 0);
  }
  ::unlink(path.c_str());
  return st;
}

SLUICE_REGISTER_DEMO_STEP(zicio, {.name = "zicio",
                                  .summary = "just-in-time ingestion: a paced scan that keeps the "
                                             "worker from waiting",
                                  .order = 35,
                                  .run = run_zicio_step});

}  // namespace
}  // namespace sluice::zicio::cli
