// `sluice zicio scan FILE… [--ranges …] [--rate BYTES/s] [--host para|task|thread]`: streams
// files through a channel as a worker would, optionally processing at a set rate, and prints
// throughput, the worker's wait time, the paced request rate and the process's CPU time.
// `sluice zicio stats PID`: reads the switchboards of the channels open in a running process
// (through /proc/PID/fd; the same user, or root).
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "sluice/cli/command.h"
#include "sluice/common/clock.h"
#include "sluice/common/topology.h"
#include "sluice/para/runtime.h"
#include "sluice/zicio/channel.h"

namespace sluice::zicio::cli {
namespace {

struct ScanOptions {
  std::vector<std::string> files;
  std::string ranges;
  std::string rate;
  size_t page_kib = 0;
  size_t ring = 0;
  bool any_order = false;
  bool quiet = false;
  std::string host = "para";
};

Result<uint64_t> parse_size(const std::string& text, const char* what) {
  if (text.empty())
    return invalid_argument(std::string("empty ") + what);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || end == text.c_str() || !std::isfinite(v) || v < 0)
    return invalid_argument(std::string("cannot read ") + what + " '" + text + "'");
  double mult = 1;
  const std::string suffix(end);
  if (suffix == "k" || suffix == "K" || suffix == "KiB")
    mult = 1024;
  else if (suffix == "m" || suffix == "M" || suffix == "MiB")
    mult = 1024.0 * 1024;
  else if (suffix == "g" || suffix == "G" || suffix == "GiB")
    mult = 1024.0 * 1024 * 1024;
  else if (!suffix.empty())
    return invalid_argument(std::string("unknown unit '") + suffix + "' in " + what + " '" + text +
                            "' (use K, M or G)");
  // 2^64 and above would wrap in the conversion; a file is far smaller anyway.
  if (v * mult >= 0x1p64)
    return invalid_argument(std::string(what) + " '" + text + "' is too large");
  return static_cast<uint64_t>(v * mult);
}

// "OFF:LEN,OFF:LEN" with optional K/M/G units.
Result<std::vector<Range>> parse_ranges(const std::string& text) {
  std::vector<Range> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos)
      comma = text.size();
    const std::string item = text.substr(pos, comma - pos);
    const size_t colon = item.find(':');
    if (colon == std::string::npos)
      return invalid_argument("range '" + item + "' is not OFFSET:LENGTH");
    SLUICE_ASSIGN_OR_RETURN(uint64_t off, parse_size(item.substr(0, colon), "range offset"));
    SLUICE_ASSIGN_OR_RETURN(uint64_t len, parse_size(item.substr(colon + 1), "range length"));
    out.push_back({.offset = off, .length = len});
    pos = comma + 1;
  }
  return out;
}

void print_stats(const ChannelStats& s, std::FILE* out) {
  std::fprintf(out,
               "  channel %s (%s): %" PRIu64 " of %" PRIu64 " bytes handed out, %" PRIu64
               " pages got, %" PRIu64 " put, %" PRIu64 " of %" PRIu64 " chunks done\n",
               s.name.c_str(), s.state.c_str(), s.bytes_got, s.total_bytes, s.pages_got,
               s.pages_put, s.chunks_done, s.total_chunks);
  std::fprintf(out,
               "  worker: S_u %.1f MiB/s, waited %.3f ms in %" PRIu64 " waits, %" PRIu64
               " non-blocking polls found nothing\n",
               s.su_bytes_per_s / (1 << 20), static_cast<double>(s.worker_wait_ns) / 1e6,
               s.worker_waits, s.not_ready);
  std::fprintf(out,
               "  control: %" PRIu64 " reads (%" PRIu64 " paced, %" PRIu64 " reward; %" PRIu64
               " I/O requests), %.1f reads/s, S_d %.1f MiB/s per read, max %" PRIu64
               " in flight, %" PRIu64 " wake-ups, %.3f ms CPU\n",
               s.requests, s.paced_requests, s.reward_requests, s.device_reads, s.request_rate,
               s.sd_bytes_per_s / (1 << 20), s.max_inflight_seen, s.control_wakeups,
               static_cast<double>(s.control_cpu_ns) / 1e6);
  std::fprintf(out, "  I/O: %s, %s buffers%s%s; control loop: %s\n",
               s.direct ? "O_DIRECT" : "buffered (page cache)", s.buffer_backing.c_str(),
               s.registered_buffers ? ", registered buffers" : "",
               s.registered_files ? ", registered files" : "", s.control_host.c_str());
}

// CPU time of every thread of this process so far.
int64_t process_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// What the simulated worker did, and its time line when it holds a rate.
struct ScanTotals {
  uint64_t rate = 0;         // bytes/s to process at; 0: as fast as pages come
  int64_t worker_clock = 0;  // the worker's own time line (it does not count waits for data)
  uint64_t checksum = 0;
  uint64_t bytes = 0;

  // Touches the page and returns when the worker is done with it (now, without a rate).
  int64_t take(const Page& p) {
    // Touch every 64th byte so the data is really read.
    const auto* d = reinterpret_cast<const unsigned char*>(p.data);
    for (size_t i = 0; i < p.size; i += 64)
      checksum = checksum * 31 + d[i];
    bytes += p.size;
    if (rate == 0)
      return 0;
    const int64_t now = monotonic_ns();
    worker_clock =
        std::max(worker_clock, now - 1000000) +
        static_cast<int64_t>(static_cast<double>(p.size) * 1e9 / static_cast<double>(rate));
    return worker_clock;
  }
};

// The worker as a task of the reactor hosting `ch`'s loop (--host task).
para::Task<Result<ScanTotals>> scan_as_task(Channel* ch, ScanTotals totals) {
  for (;;) {
    Result<Page> p = co_await ch->next_page(std::chrono::seconds(60));
    if (!p.is_ok()) {
      if (p.status().code() == StatusCode::kOutOfRange)
        break;
      co_return p.status().with_context("scan");
    }
    const int64_t until = totals.take(*p);
    if (const int64_t now = monotonic_ns(); until > now)
      (void)co_await para::sleep_for(std::chrono::nanoseconds(until - now));
    SLUICE_CO_RETURN_IF_ERROR(ch->put_page(*p));
  }
  co_return totals;
}

Status run_scan(const ScanOptions& so) {
  ChannelOptions o = ChannelOptions::from_knobs();
  if (so.page_kib != 0)
    o.page_size = so.page_kib << 10;
  if (so.ring != 0)
    o.ring_buffers = so.ring;
  o.any_order = so.any_order;
  std::vector<Range> ranges;
  if (!so.ranges.empty()) {
    SLUICE_ASSIGN_OR_RETURN(ranges, parse_ranges(so.ranges));
  }
  uint64_t rate = 0;
  if (!so.rate.empty()) {
    SLUICE_ASSIGN_OR_RETURN(rate, parse_size(so.rate, "rate"));
    if (rate == 0)
      return invalid_argument("--rate must be positive (bytes per second)");
  }
  // --host para: the control loop runs as a task of a para reactor on zicio.control_core
  // (default: the last core this process may use); --host task: so does the worker, awaiting its
  // pages (Channel::next_page); --host thread: the loop on a thread of its own, as in a
  // process that embeds a channel without sluice's runtime.
  std::unique_ptr<para::Runtime> runtime;
  if (so.host != "para" && so.host != "thread" && so.host != "task")
    return invalid_argument("--host must be para, thread or task, not '" + so.host + "'");
  if (so.host == "para" || so.host == "task") {
    SLUICE_ASSIGN_OR_RETURN(CpuTopology topo, CpuTopology::detect());
    const std::vector<int>& allowed = topo.allowed_cpus();
    if (allowed.empty())
      return internal_error("no CPU to run on (empty affinity mask)");
    if (o.control_core < 0)
      o.control_core = allowed.back();
    else if (std::find(allowed.begin(), allowed.end(), o.control_core) == allowed.end())
      return invalid_argument("zicio.control_core " + std::to_string(o.control_core) +
                              " is not among this process's cores (" + topo.summary() + ")");
    SLUICE_ASSIGN_OR_RETURN(para::RuntimeOptions ro, para::RuntimeOptions::from_knobs());
    ro.cores = {o.control_core};
    SLUICE_ASSIGN_OR_RETURN(runtime, para::Runtime::start(ro));
    o.runtime = runtime.get();
  }
  SLUICE_ASSIGN_OR_RETURN(Channel ch, Channel::open(so.files, ranges, o));
  for (const std::string& n : ch.notes())
    std::fprintf(stderr, "sluice zicio scan: note: %s\n", n.c_str());
  std::printf("sluice zicio scan: pid %d, switchboard /proc/%d/fd/%d (sluice zicio stats %d)\n",
              getpid(), getpid(), ch.switchboard_fd(), getpid());
  std::fflush(stdout);
  const int64_t start = monotonic_ns();
  const int64_t cpu_start = process_cpu_ns();
  ScanTotals totals{.rate = rate, .worker_clock = start};
  if (so.host == "task") {
    // The worker is a task of the reactor that hosts the loop: it awaits its pages, and holds
    // its rate by sleeping on the reactor's timer, so the loop runs meanwhile.
    Result<ScanTotals> done =
        runtime->run_on(o.control_core, [c = &ch, totals] { return scan_as_task(c, totals); });
    SLUICE_RETURN_IF_ERROR(done.status());
    totals = *done;
  } else {
    for (;;) {
      Result<Page> p = ch.get_page_wait(std::chrono::seconds(60));
      if (!p.is_ok()) {
        if (p.status().code() == StatusCode::kOutOfRange)
          break;
        return p.status().with_context("scan");
      }
      const int64_t until = totals.take(*p);
      if (until > monotonic_ns()) {
        timespec ts{.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
      }
      SLUICE_RETURN_IF_ERROR(ch.put_page(*p));
    }
  }
  const uint64_t bytes = totals.bytes;
  const uint64_t checksum = totals.checksum;
  const double secs = static_cast<double>(monotonic_ns() - start) / 1e9;
  const double cpu_s = static_cast<double>(process_cpu_ns() - cpu_start) / 1e9;
  const ChannelStats s = ch.stats();
  std::printf("scanned %" PRIu64 " bytes in %.3f s: %.1f MiB/s (checksum %016" PRIx64 ")\n", bytes,
              secs, static_cast<double>(bytes) / secs / (1 << 20), checksum);
  std::printf("worker wait %.3f ms (%.1f%% of the scan)%s\n",
              static_cast<double>(s.worker_wait_ns) / 1e6,
              100.0 * static_cast<double>(s.worker_wait_ns) / 1e9 / secs,
              rate ? (", processing at " + std::to_string(rate) + " B/s").c_str() : "");
  std::printf("paced request rate %.1f reads/s (%" PRIu64 " reads)\n", s.request_rate, s.requests);
  // Every thread of the process: the worker, the control loop and the reactor hosting it.
  std::printf("CPU %.3f s for the scan: %.4f s per GiB\n", cpu_s,
              bytes == 0 ? 0.0 : cpu_s / (static_cast<double>(bytes) / (1 << 30)));
  if (!so.quiet)
    print_stats(s, stdout);
  return ch.close();
}

Status run_stats(int pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr)
    return errno_status(errno, "cannot list " + dir + " (is process " + std::to_string(pid) +
                                   " running, and yours?)");
  int found = 0;
  Status first_error;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.')
      continue;
    const std::string link = dir + "/" + e->d_name;
    char target[256] = {};
    const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0 || std::string(target).rfind("/memfd:sluice-zicio:", 0) != 0)
      continue;
    Result<ChannelStats> s = read_switchboard(link);
    if (!s.is_ok()) {
      if (first_error.is_ok())
        first_error = s.status();
      continue;
    }
    ++found;
    print_stats(*s, stdout);
  }
  closedir(d);
  if (found == 0) {
    if (!first_error.is_ok())
      return first_error;
    return not_found("process " + std::to_string(pid) + " has no open zicio channel");
  }
  return Status::ok();
}

}  // namespace

SLUICE_REGISTER_COMMAND(
    zicio, {.name = "zicio",
            .help = "Just-in-time ingestion channels: scan files, read a running scan's stats",
            .order = 35,
            .setup = [](CLI::App& zicio) {
              zicio.require_subcommand(1);
              auto so = std::make_shared<ScanOptions>();
              auto* scan = zicio.add_subcommand(
                  "scan", "stream files (one stream, in order) through a zicio channel");
              scan->add_option("files", so->files, "files of the stream, in order")->required();
              scan->add_option("--ranges", so->ranges,
                               "OFFSET:LENGTH,… byte ranges of the stream (K/M/G units)");
              scan->add_option("--rate", so->rate,
                               "simulate a worker that processes BYTES/s (K/M/G units)");
              scan->add_option("--page-kib", so->page_kib,
                               "page size in KiB (default: knob zicio.page_kib)");
              scan->add_option("--ring", so->ring,
                               "2 MiB buffers (default: knob zicio.ring_buffers)");
              scan->add_flag("--any-order", so->any_order, "full scan in completion order");
              scan->add_flag("--quiet", so->quiet, "only the summary lines");
              scan->add_option("--host", so->host,
                               "where the control loop runs: para (a reactor on core "
                               "zicio.control_core, default the last core), task (that reactor, "
                               "with the worker a task on it too) or thread")
                  ->capture_default_str();
              sluice::cli::bind_action(*scan, [so] { return run_scan(*so); });

              auto pid = std::make_shared<int>(0);
              auto* stats = zicio.add_subcommand(
                  "stats", "print the channels of a running process from their switchboards");
              stats->add_option("pid", *pid, "process id")->required();
              sluice::cli::bind_action(*stats, [pid] { return run_stats(*pid); });
            }});

}  // namespace sluice::zicio::cli
