// zicio_bench: the data-ingestion microbenchmark of the zicIO paper (§5.2) for sluice::zicio and
// its peers in one driver. A simulated worker scans a file (or only its odd-numbered batches)
// and processes the data at a set rate: it touches every byte (sums 8-byte words) and spins to
// hold the rate. The data reach it through one of
//
//   pread      buffered pread, posix_fadvise(SEQUENTIAL) so the kernel reads ahead
//   direct     pread with O_DIRECT, one request at a time
//   uring      io_uring, O_DIRECT, registered buffer and file, a prefetch pipeline of
//              depth = 32 MiB / request size (the same 32 MiB of buffers zicio uses)
//   zicio      sluice::zicio::Channel (get_page_wait / put_page), options from the knobs, its
//              control loop a task of a para reactor on the last core (as `sluice zicio scan`
//              runs it); the runtime is started once for the whole benchmark
//   zicio-thread  the same with the control loop on a thread of its own (a channel embedded in
//              a process without sluice's runtime), pinned to the same core as the reactor
//
// The worker (every method) runs pinned to the first core the process may use, zicio's control
// loop to the last; fio runs in its own process, unpinned.
//   zicio-q16  zicio with max_inflight = 16 (as many reads in flight as fio and uring)
//   zicio-task zicio with the worker a task of the reactor hosting the control loop, awaiting
//              pages with next_page (one core for both, the workers' core, no cross-core
//              wake-up); unlimited rate only (a rate-holding spin would hold the loop's reactor
//              too); zicio-task-q16 the same with max_inflight = 16
//   uring-qN   io_uring with N reads in flight (e.g. uring-q4: 4 × 2 MiB)
//   uring-thp  io_uring with buffers on transparent huge pages (as zicio's ring); uring-thp-qN
//   fio        fio --ioengine=io_uring --direct=1 --bs=2M --iodepth=16 (no worker: the device's
//              ceiling on this file, as fio measures it)
//   fio-qN     the same with --iodepth=N
//
// Before the timed runs every method scans the start of the file once, untimed (its buffers and
// zicio's ring are then in place). Every run starts with a cold page cache (sync; drop_caches),
// methods are interleaved (each repetition runs every method once, starting one later than the
// last), and each run prints one JSON object per line: wall time, the worker's wait time (time
// blocked for data, measured on the worker thread), the process's CPU time (getrusage, zicio's
// control thread and fio's process included), the time of the worker's pass over the bytes and its
// spin to hold a rate (pass_s, TSC) and what is left of the CPU time per GiB beside it
// (io_cpu_s_per_gib: the method's own cost), bytes, throughput, the block device's reads and their
// mean size (after any split or merge) and the share of the machine's CPU that other processes used
// during the run (/proc/stat).
// The worker's time line (struct Worker) explains how a rate is held on a shared machine.
//
//   zicio_bench --file /var/tmp/f --bytes 8G --methods pread,direct,uring,zicio,fio
//                --rates 0,512M,1G --req 256K --reps 5 > runs.jsonl
//   zicio_bench --file /var/tmp/f --bytes 2G --ranges 64K,1M,64M --methods pread,uring,zicio
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sluice/common/clock.h"
#include "sluice/common/knobs.h"
#include "sluice/common/topology.h"
#include "sluice/para/runtime.h"
#include "sluice/zicio/channel.h"

namespace {

using sluice::zicio::Range;

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "zicio_bench: %s\n", what.c_str());
  std::exit(1);
}

uint64_t parse_size(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str())
    die("not a size: '" + s + "' (examples: 4096, 256K, 2M, 8G)");
  double mult = 1;
  switch (*end) {
    case 'K':
    case 'k': mult = 1024.0; break;
    case 'M':
    case 'm': mult = 1024.0 * 1024; break;
    case 'G':
    case 'g': mult = 1024.0 * 1024 * 1024; break;
    case '\0': break;
    default: die("unknown unit in size '" + s + "' (use K, M or G)");
  }
  return static_cast<uint64_t>(v * mult);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty())
      out.push_back(item);
  return out;
}

// ---- the simulated worker ---------------------------------------------------------------

// The worker's pass over the bytes: the sum of every 8-byte word. One out-of-line function for
// every method: inlined into each method's loop, the same source took different register
// allocations (the partial sums spilled to the stack in some) and the same bytes cost up to 13 %
// more CPU in one method than in another.
[[gnu::noinline]] uint64_t sum_words(const std::byte* p, size_t n) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t a, b, c, d;
    std::memcpy(&a, p + i, 8);
    std::memcpy(&b, p + i + 8, 8);
    std::memcpy(&c, p + i + 16, 8);
    std::memcpy(&d, p + i + 24, 8);
    s0 += a;
    s1 += b;
    s2 += c;
    s3 += d;
  }
  for (; i < n; ++i)
    s0 += static_cast<uint64_t>(p[i]);
  return s0 + s1 + s2 + s3;
}

// Processes data at `rate` bytes/s (0: as fast as it can): sums every 8-byte word, then spins
// until the worker's own time line says the data are done. The time line advances by n / rate
// per buffer and by the time the worker spent waiting for data (a wait is never made up for by
// processing faster later), but not by time the thread was merely descheduled while it
// processed: on a shared machine a worker preempted for a time slice catches up on the next
// buffers (up to kMaxCatchUpNs), so the rate holds on average whenever the thread gets enough
// CPU to sum the bytes. The same rule applies to every method.
struct Worker {
  double ns_per_byte = 0;
  uint64_t sum = 0;
  uint64_t bytes = 0;
  int64_t wait_ns = 0;
  uint64_t pass_ticks = 0;  // TSC ticks in sum_words and the rate's spin: alike in every method
  int64_t due_ns = 0;       // the worker's time line; 0 until the first buffer

  // Called by the methods around every get of data that may block.
  void add_wait(int64_t ns) {
    wait_ns += ns;
    if (due_ns != 0)
      due_ns += ns;
  }

  void process(const std::byte* p, size_t n) {
    if (ns_per_byte > 0) {
      const int64_t now = now_ns();
      due_ns = due_ns == 0 ? now : std::max(due_ns, now - kMaxCatchUpNs);
    }
    const sluice::TscClock& tsc = sluice::TscClock::global();
    const uint64_t t0 = tsc.ticks();
    sum += sum_words(p, n);
    bytes += n;
    if (ns_per_byte > 0) {
      due_ns += static_cast<int64_t>(static_cast<double>(n) * ns_per_byte);
      while (now_ns() < due_ns) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
      }
    }
    pass_ticks += tsc.ticks() - t0;
  }

  // A worker further behind its time line than this (descheduled for long) catches up only this
  // much: longer bursts of unpaced processing would distort the rate the channel measures.
  static constexpr int64_t kMaxCatchUpNs = 250'000'000;
};

// ---- the plan: what to read -------------------------------------------------------------

// The bytes the worker must process: either [0, bytes) or the odd-numbered batches of it.
std::vector<Range> make_ranges(uint64_t bytes, uint64_t batch) {
  std::vector<Range> r;
  if (batch == 0) {
    r.push_back({0, bytes});
    return r;
  }
  for (uint64_t off = batch; off < bytes; off += 2 * batch)
    r.push_back({off, std::min(batch, bytes - off)});
  return r;
}

// Each range cut into requests of at most `req` bytes, aligned to `req` within the range.
std::vector<Range> cut(const std::vector<Range>& ranges, uint64_t req) {
  std::vector<Range> out;
  for (const Range& r : ranges)
    for (uint64_t o = 0; o < r.length; o += req)
      out.push_back({r.offset + o, std::min(req, r.length - o)});
  return out;
}

struct RunResult {
  uint64_t bytes_read = 0;  // bytes the device (or page cache) delivered to the method
  std::string note;
};

// `huge`: ask for transparent huge pages (THP in madvise mode), as zicio does for its ring. A
// 2 MiB read into one huge page is one segment; into 4 KiB pages it is 512, more than many
// devices take in one request (virtio-blk: max_segments), so the block layer splits it.
void* aligned_buffer(size_t bytes, bool huge = false) {
  void* p = nullptr;
  if (posix_memalign(&p, 2 << 20, bytes) != 0)
    die("cannot allocate " + std::to_string(bytes) + " bytes of buffers");
  if (huge)
    (void)madvise(p, bytes, MADV_HUGEPAGE);
  std::memset(p, 0, bytes);
  return p;
}

// The peers' buffers, kept across runs as zicio keeps the rings of closed channels
// (zicio.ring_cache_mb): on a VM that hands freed memory back to its host, first touching 32 MiB
// costs tens of milliseconds of CPU, which would be counted as scanning. --fresh-buffers
// allocates them per run instead (and sets zicio.ring_cache_mb to 0).
bool g_fresh_buffers = false;

struct KeptBuffer {
  void* p = nullptr;
  size_t bytes = 0;
  bool huge = false;
};

// A buffer of `bytes` for one run: kept (and handed out again) unless --fresh-buffers. `*owned`
// holds it when it is the run's own.
std::byte* run_buffer(size_t bytes, bool huge, std::unique_ptr<void, decltype(&std::free)>* owned) {
  if (g_fresh_buffers) {
    owned->reset(aligned_buffer(bytes, huge));
    return static_cast<std::byte*>(owned->get());
  }
  static std::vector<KeptBuffer> kept;
  for (const KeptBuffer& k : kept)
    if (k.bytes == bytes && k.huge == huge)
      return static_cast<std::byte*>(k.p);
  kept.push_back({aligned_buffer(bytes, huge), bytes, huge});
  return static_cast<std::byte*>(kept.back().p);
}

// ---- peers --------------------------------------------------------------------------------

RunResult run_pread(const std::string& path, const std::vector<Range>& ranges, uint64_t req,
                    bool direct, Worker& w) {
  const int fd = open(path.c_str(), O_RDONLY | (direct ? O_DIRECT : 0));
  if (fd < 0)
    die("open " + path + ": " + std::strerror(errno));
  if (!direct)
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::unique_ptr<void, decltype(&std::free)> owned(nullptr, &std::free);
  std::byte* p = run_buffer(req, false, &owned);
  RunResult res;
  for (const Range& piece : cut(ranges, req)) {
    const int64_t t0 = now_ns();
    const ssize_t got = pread(fd, p, piece.length, static_cast<off_t>(piece.offset));
    w.add_wait(now_ns() - t0);
    if (got != static_cast<ssize_t>(piece.length))
      die("short pread of " + path + " at " + std::to_string(piece.offset));
    res.bytes_read += static_cast<uint64_t>(got);
    w.process(p, static_cast<size_t>(got));
  }
  close(fd);
  return res;
}

// The best pipeline a careful engineer would write with io_uring alone: O_DIRECT, one registered
// buffer area and a registered file, `depth` reads in flight at all times, submissions batched,
// the worker consuming in order and resubmitting each slot as soon as it is done with it.
RunResult run_uring(const std::string& path, const std::vector<Range>& ranges, uint64_t req,
                    uint64_t budget, bool huge, Worker& w) {
  const std::vector<Range> pieces = cut(ranges, req);
  // Slots as large as the largest piece (ranges shorter than `req` give shorter pieces), as many
  // as the buffer budget allows: 32 MiB of 64 KiB batches is 512 reads in flight.
  uint64_t slot_bytes = 4096;
  for (const Range& p : pieces)
    slot_bytes = std::max(slot_bytes, (p.length + 4095) / 4096 * 4096);
  req = slot_bytes;
  const unsigned depth = static_cast<unsigned>(std::clamp<uint64_t>(budget / req, 2, 4096));
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECT);
  if (fd < 0)
    die("open " + path + ": " + std::strerror(errno));
  io_uring ring{};
  if (int rc = io_uring_queue_init(depth, &ring, 0); rc < 0)
    die(std::string("io_uring_queue_init: ") + std::strerror(-rc));
  const size_t area = size_t{depth} * req;
  std::unique_ptr<void, decltype(&std::free)> owned(nullptr, &std::free);
  std::byte* base = run_buffer(area, huge, &owned);
  iovec iov{base, area};
  const bool fixed = io_uring_register_buffers(&ring, &iov, 1) == 0;
  const bool regfile = io_uring_register_files(&ring, &fd, 1) == 0;
  RunResult res;
  if (!fixed || !regfile)
    res.note = "unregistered";
  std::vector<int32_t> done(depth, -1);  // bytes completed per slot; -1: in flight
  size_t next_submit = 0;
  unsigned unsubmitted = 0;
  auto prep = [&](size_t i) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (sqe == nullptr)
      die("io_uring: no free SQE");
    const unsigned slot = static_cast<unsigned>(i % depth);
    std::byte* dst = base + size_t{slot} * req;
    const int f = regfile ? 0 : fd;
    if (fixed)
      io_uring_prep_read_fixed(sqe, f, dst, static_cast<unsigned>(pieces[i].length),
                               pieces[i].offset, 0);
    else
      io_uring_prep_read(sqe, f, dst, static_cast<unsigned>(pieces[i].length), pieces[i].offset);
    if (regfile)
      sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, i);
    done[slot] = -1;
    ++unsubmitted;
  };
  while (next_submit < pieces.size() && next_submit < depth)
    prep(next_submit++);
  io_uring_submit(&ring);
  unsubmitted = 0;
  const unsigned batch = std::max(1u, depth / 8);
  for (size_t i = 0; i < pieces.size(); ++i) {
    const unsigned slot = static_cast<unsigned>(i % depth);
    if (done[slot] < 0) {
      const int64_t t0 = now_ns();
      while (done[slot] < 0) {
        io_uring_cqe* cqe = nullptr;
        const int rc =
            unsubmitted > 0 ? io_uring_submit_and_wait(&ring, 1) : io_uring_wait_cqe(&ring, &cqe);
        unsubmitted = 0;
        if (rc < 0 && rc != -EINTR)
          die(std::string("io_uring wait: ") + std::strerror(-rc));
        unsigned head = 0, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
          const uint64_t k = io_uring_cqe_get_data64(cqe);
          if (cqe->res < 0)
            die("io_uring read at " + std::to_string(pieces[k].offset) + ": " +
                std::strerror(-cqe->res));
          done[k % depth] = cqe->res;
          ++seen;
        }
        io_uring_cq_advance(&ring, seen);
      }
      w.add_wait(now_ns() - t0);
    }
    if (static_cast<uint64_t>(done[slot]) != pieces[i].length)
      die("short io_uring read of " + path + " at " + std::to_string(pieces[i].offset));
    res.bytes_read += pieces[i].length;
    w.process(base + size_t{slot} * req, pieces[i].length);
    if (next_submit < pieces.size())
      prep(next_submit++);
    if (unsubmitted >= batch) {
      io_uring_submit(&ring);
      unsubmitted = 0;
    }
  }
  io_uring_queue_exit(&ring);
  close(fd);
  return res;
}

// Cores of the run: the worker on the first this process may use, zicio's control loop (on a
// para reactor, or on its own thread) on the last.
int g_worker_core = 0;
int g_control_core = 0;

// The para runtime that hosts zicio's control loops: a reactor on the control core (method
// zicio) and one on the worker core (zicio-task), started before the first run and kept (idle,
// asleep) for the others.
sluice::para::Runtime* control_runtime() {
  static std::unique_ptr<sluice::para::Runtime> rt = [] {
    auto ro = sluice::para::RuntimeOptions::from_knobs();
    if (!ro.is_ok())
      die("para options: " + ro.status().to_string());
    ro->cores = {g_control_core};
    if (g_worker_core != g_control_core)
      ro->cores.push_back(g_worker_core);
    auto started = sluice::para::Runtime::start(*ro);
    if (!started.is_ok())
      die("para runtime: " + started.status().to_string());
    return std::move(*started);
  }();
  return rt.get();
}

// zicio-task: the worker is itself a task of the reactor that hosts the control loop and
// awaits its pages (Channel::next_page), so one core does both, as in the io_uring loop, and no
// completion crosses cores. A Task's parameters are copied into its frame, so no capture can
// dangle.
sluice::para::Task<sluice::Result<sluice::zicio::ChannelStats>> scan_on_reactor(
    std::string path, std::vector<Range> ranges, sluice::zicio::ChannelOptions opt, Worker* w) {
  SLUICE_CO_ASSIGN_OR_RETURN(sluice::zicio::Channel ch,
                             sluice::zicio::Channel::open({path}, ranges, opt));
  for (;;) {
    const int64_t t0 = now_ns();
    sluice::Result<sluice::zicio::Page> page = co_await ch.next_page(std::chrono::seconds(60));
    w->add_wait(now_ns() - t0);
    if (!page.is_ok()) {
      if (page.status().code() == sluice::StatusCode::kOutOfRange)
        break;
      co_return page.status();
    }
    w->process(page->data, page->size);
    SLUICE_CO_RETURN_IF_ERROR(ch.put_page(*page));
  }
  sluice::zicio::ChannelStats s = ch.stats();
  SLUICE_CO_RETURN_IF_ERROR(ch.close());
  co_return s;
}

// The same scan with the worker on this thread (get_page_wait).
sluice::Result<sluice::zicio::ChannelStats> scan_on_thread(const std::string& path,
                                                           const std::vector<Range>& ranges,
                                                           const sluice::zicio::ChannelOptions& opt,
                                                           Worker& w) {
  SLUICE_ASSIGN_OR_RETURN(sluice::zicio::Channel ch,
                          sluice::zicio::Channel::open({path}, ranges, opt));
  for (;;) {
    const int64_t t0 = now_ns();
    auto page = ch.get_page_wait(std::chrono::seconds(60));
    w.add_wait(now_ns() - t0);
    if (!page.is_ok()) {
      if (page.status().code() == sluice::StatusCode::kOutOfRange)
        break;
      return page.status();
    }
    w.process(page->data, page->size);
    SLUICE_RETURN_IF_ERROR(ch.put_page(*page));
  }
  sluice::zicio::ChannelStats s = ch.stats();
  SLUICE_RETURN_IF_ERROR(ch.close());
  return s;
}

// Where a zicio run puts its control loop and its worker.
enum class ZicioHost {
  kReactor,  // loop on a para reactor, worker on this thread (method zicio)
  kThread,   // loop on a thread of its own (zicio-thread)
  kTask,     // loop and worker both on the reactor (zicio-task)
};

RunResult run_zicio(const std::string& path, const std::vector<Range>& ranges, uint64_t file_size,
                    unsigned max_inflight, ZicioHost host, Worker& w) {
  sluice::zicio::ChannelOptions opt = sluice::zicio::ChannelOptions::from_knobs();
  opt.name = "bench";
  if (max_inflight != 0)
    opt.max_inflight = max_inflight;
  // zicio-task's worker runs where every other method's worker runs: the core that takes the
  // disk's interrupts would charge their handling to whichever method ran there.
  opt.control_core = host == ZicioHost::kTask ? g_worker_core : g_control_core;
  if (host != ZicioHost::kThread)
    opt.runtime = control_runtime();
  std::vector<Range> rs = ranges;
  if (rs.size() == 1 && rs[0].offset == 0 && rs[0].length == file_size)
    rs.clear();  // a full scan: no range list
  Worker* wp = &w;
  const sluice::Result<sluice::zicio::ChannelStats> r =
      host == ZicioHost::kTask
          ? opt.runtime->run_on(opt.control_core,
                                [path, rs, opt, wp] { return scan_on_reactor(path, rs, opt, wp); })
          : scan_on_thread(path, rs, opt, w);
  if (!r.is_ok())
    die("zicio: " + r.status().to_string());
  const sluice::zicio::ChannelStats& s = *r;
  RunResult res;
  res.bytes_read = s.bytes_read;
  char note[256];
  std::snprintf(note, sizeof note,
                "chan_wait_ns=%" PRIu64 " waits=%" PRIu64 " reads=%" PRIu64 " paced=%" PRIu64
                " reward=%" PRIu64 " max_inflight=%" PRIu64 " ctl_cpu_ns=%" PRIu64
                " su=%.0f sd=%.0f %s %s",
                s.worker_wait_ns, s.worker_waits, s.requests, s.paced_requests, s.reward_requests,
                s.max_inflight_seen, s.control_cpu_ns, s.su_bytes_per_s, s.sd_bytes_per_s,
                s.direct ? "direct" : "buffered", s.buffer_backing.c_str());
  res.note = note;
  return res;
}

// fio's sequential read of the same bytes; CPU time is fio's (RUSAGE_CHILDREN).
RunResult run_fio(const std::string& path, uint64_t bytes, unsigned depth, double* fio_bw) {
  const std::string cmd =
      "fio --name=ceiling --filename=" + path +
      " --rw=read --ioengine=io_uring --direct=1 --bs=2M --iodepth=" + std::to_string(depth) +
      " --fixedbufs --registerfiles --size=" + std::to_string(bytes) + " --output-format=json 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr)
    die("cannot run fio");
  std::string out;
  char line[4096];
  while (std::fgets(line, sizeof line, f) != nullptr)
    out += line;
  if (pclose(f) != 0)
    die("fio failed:\n" + out);
  RunResult res;
  // jobs[0].read comes first in fio's JSON: its io_bytes and bw_bytes are the first such keys.
  auto field = [&](const char* key) -> double {
    const size_t at = out.find(std::string("\"") + key + "\"");
    if (at == std::string::npos)
      die(std::string("no ") + key + " in fio's output:\n" + out);
    return std::strtod(out.c_str() + out.find(':', at) + 1, nullptr);
  };
  res.bytes_read = static_cast<uint64_t>(field("io_bytes"));
  *fio_bw = field("bw_bytes");
  return res;
}

// ---- measurement around a run -------------------------------------------------------------

struct CpuSample {
  uint64_t busy = 0, total = 0;  // jiffies, all CPUs
};

CpuSample read_proc_stat() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  uint64_t v[10] = {};
  f >> cpu;
  for (uint64_t& x : v)
    f >> x;
  CpuSample s;
  for (uint64_t x : v)
    s.total += x;
  s.total -= v[8] + v[9];  // guest time is already counted in user
  s.busy = s.total - v[3] - v[4];
  return s;
}

double rusage_s(int who) {
  rusage ru{};
  getrusage(who, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Reads completed and sectors read by the block device holding the file (/sys/dev/block/M:m/stat):
// their ratio is the size of the requests the device actually saw, after any splitting.
struct DiskSample {
  uint64_t reads = 0, sectors = 0;
};

DiskSample read_disk(const std::string& stat_path) {
  std::ifstream f(stat_path);
  DiskSample d;
  uint64_t merges = 0;
  f >> d.reads >> merges >> d.sectors;
  return d;
}

void drop_caches() {
  sync();
  std::ofstream f("/proc/sys/vm/drop_caches");
  f << "3\n";
  f.flush();
  if (!f)
    die("cannot write /proc/sys/vm/drop_caches (run as root, or pass --warm)");
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a;
  f >> a;
  return a;
}

struct Config {
  std::string file;
  uint64_t bytes = 0;
  std::vector<std::string> methods;
  std::vector<uint64_t> rates{0};
  std::vector<uint64_t> reqs{256 << 10};
  std::vector<uint64_t> batches{0};  // 0: full scan
  uint64_t uring_budget = 32 << 20;
  uint64_t uring_req = 0;  // 0: same request sizes as the pread methods
  int reps = 1;
  bool warm = false;
  int opens = 0;          // --opens: time channel opens instead of scans
  int idle_ms = 0;        // --opens: pause before each open
  int worker_core = -1;   // -1: the first core this process may use
  int control_core = -1;  // -1: the last
  std::string tag;
  std::string disk_stat;  // /sys/dev/block/M:m/stat of the file's device
};

// Scans `ranges` of the file (the first `bytes`, for fio) with `method`; sets the request size
// it used and, for fio, fio's own bandwidth.
RunResult scan_with(const Config& c, const std::string& method, const std::vector<Range>& ranges,
                    uint64_t bytes, uint64_t req, uint64_t file_size, Worker& w,
                    uint64_t* used_req_out, double* fio_bw_out) {
  RunResult res;
  double fio_bw = 0;
  uint64_t used_req = req;
  if (method == "pread") {
    res = run_pread(c.file, ranges, req, false, w);
  } else if (method == "direct") {
    res = run_pread(c.file, ranges, req, true, w);
  } else if (method == "uring") {
    used_req = c.uring_req != 0 ? c.uring_req : req;
    res = run_uring(c.file, ranges, used_req, c.uring_budget, false, w);
  } else if (method == "zicio") {
    used_req = sluice::zicio::kChunkSize;
    res = run_zicio(c.file, ranges, file_size, 0, ZicioHost::kReactor, w);
  } else if (method == "zicio-thread") {
    used_req = sluice::zicio::kChunkSize;
    res = run_zicio(c.file, ranges, file_size, 0, ZicioHost::kThread, w);
  } else if (method == "zicio-task" || method == "zicio-task-q16") {
    used_req = sluice::zicio::kChunkSize;
    res =
        run_zicio(c.file, ranges, file_size, method == "zicio-task" ? 0 : 16, ZicioHost::kTask, w);
  } else if (method == "zicio-q16") {
    used_req = sluice::zicio::kChunkSize;
    res = run_zicio(c.file, ranges, file_size, 16, ZicioHost::kReactor, w);
  } else if (method.starts_with("uring-")) {
    // uring-qN (N reads in flight), uring-thp (huge-page buffers), uring-thp-qN.
    used_req = c.uring_req != 0 ? c.uring_req : req;
    const bool huge = method.find("-thp") != std::string::npos;
    const size_t q = method.find("-q");
    const uint64_t n = q == std::string::npos ? c.uring_budget / used_req
                                              : std::strtoull(method.c_str() + q + 2, nullptr, 10);
    res = run_uring(c.file, ranges, used_req, std::max<uint64_t>(n, 2) * used_req, huge, w);
  } else if (method.starts_with("fio-q")) {
    used_req = 2 << 20;
    const auto n = static_cast<unsigned>(std::strtoul(method.c_str() + 5, nullptr, 10));
    res = run_fio(c.file, bytes, std::max(n, 1u), &fio_bw);
    w.bytes = res.bytes_read;
  } else if (method == "fio") {
    used_req = 2 << 20;
    res = run_fio(c.file, bytes, 16, &fio_bw);
    w.bytes = res.bytes_read;
  } else {
    die("unknown method '" + method +
        "' (pread, direct, uring, uring-qN, uring-thp[-qN], zicio, zicio-thread, zicio-q16, "
        "zicio-task, zicio-task-q16, fio, fio-qN)");
  }
  *used_req_out = used_req;
  *fio_bw_out = fio_bw;
  return res;
}

void run_one(const Config& c, const std::string& method, uint64_t rate, uint64_t req,
             uint64_t batch, int rep, uint64_t file_size) {
  const std::vector<Range> ranges = make_ranges(c.bytes, batch);
  uint64_t want = 0;
  for (const Range& r : ranges)
    want += r.length;
  if (!c.warm)
    drop_caches();
  Worker w;
  w.ns_per_byte = rate > 0 ? 1e9 / static_cast<double>(rate) : 0;
  const std::string load = loadavg();
  const CpuSample st0 = read_proc_stat();
  const DiskSample d0 = read_disk(c.disk_stat);
  const double self0 = rusage_s(RUSAGE_SELF), child0 = rusage_s(RUSAGE_CHILDREN);
  const int64_t t0 = now_ns();
  double fio_bw = 0;
  uint64_t used_req = req;
  const RunResult res =
      scan_with(c, method, ranges, c.bytes, req, file_size, w, &used_req, &fio_bw);
  const int64_t wall = now_ns() - t0;
  const double cpu = (rusage_s(RUSAGE_SELF) - self0) + (rusage_s(RUSAGE_CHILDREN) - child0);
  const CpuSample st1 = read_proc_stat();
  const DiskSample d1 = read_disk(c.disk_stat);
  const uint64_t dev_reads = d1.reads - d0.reads;
  const double dev_kib = dev_reads > 0 ? static_cast<double>(d1.sectors - d0.sectors) * 512 / 1024 /
                                             static_cast<double>(dev_reads)
                                       : 0;
  if (w.bytes != want && !method.starts_with("fio"))
    die(method + " processed " + std::to_string(w.bytes) + " bytes, expected " +
        std::to_string(want));
  const double secs = static_cast<double>(wall) / 1e9;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double ncpu = static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN));
  const double busy_s = static_cast<double>(st1.busy - st0.busy) / hz;
  const double others = std::max(0.0, busy_s - cpu) / (secs * ncpu);
  const double gib = static_cast<double>(w.bytes) / static_cast<double>(1ull << 30);
  // The worker's own pass over the bytes (and its spin to hold a rate), the same code for every
  // method: what is left of the CPU time is the method's cost of bringing the bytes (fio: all of
  // its CPU, it has no pass).
  const double pass_s = sluice::TscClock::global().ticks_to_ns(w.pass_ticks) / 1e9;
  // fio: its own bandwidth (the device's ceiling), not the wall time with fio's start-up.
  const double gib_per_s =
      method.starts_with("fio") ? fio_bw / static_cast<double>(1ull << 30) : gib / secs;
  std::printf(
      "{\"tag\":\"%s\",\"method\":\"%s\",\"rate\":%" PRIu64 ",\"req\":%" PRIu64
      ",\"batch\":%" PRIu64 ",\"rep\":%d,\"bytes\":%" PRIu64 ",\"bytes_read\":%" PRIu64
      ",\"wall_s\":%.4f,\"wait_s\":%.4f,\"wait_share\":%.5f,\"cpu_s\":%.4f,\"cpu_s_per_gib\":%.4f"
      ",\"pass_s\":%.4f,\"io_cpu_s_per_gib\":%.4f"
      ",\"gib_per_s\":%.4f,\"fio_bw_gib_per_s\":%.4f,\"others_cpu_share\":%.3f,"
      "\"loadavg\":%s,\"device_reads\":%" PRIu64
      ",\"device_read_kib\":%.1f,"
      "\"checksum\":%" PRIu64 ",\"note\":\"%s\"}\n",
      c.tag.c_str(), method.c_str(), rate, used_req, batch, rep, w.bytes, res.bytes_read, secs,
      static_cast<double>(w.wait_ns) / 1e9,
      static_cast<double>(w.wait_ns) / static_cast<double>(wall), cpu, gib > 0 ? cpu / gib : 0,
      pass_s, gib > 0 ? std::max(0.0, cpu - pass_s) / gib : 0, gib_per_s,
      fio_bw / static_cast<double>(1ull << 30), others, load.c_str(), dev_reads, dev_kib, w.sum,
      res.note.c_str());
  std::fflush(stdout);
}

// --opens: what opening a channel costs, to its first page and through its close, with a new
// ring and with the ring the previous channel left in the cache, alternately (the cache is set
// to 0 or to its value before each close). The pause before each open lets a VM that reports
// free memory to its host hand the last ring's pages back, as happens between scans that are
// seconds apart.
void run_opens(const Config& c) {
  const sluice::Result<sluice::KnobInfo> knob =
      sluice::KnobRegistry::global().info("zicio.ring_cache_mb");
  if (!knob.is_ok())
    die(knob.status().to_string());
  const std::string cache_on = knob->value == "0" ? knob->default_value : knob->value;
  auto set_cache = [](const std::string& mb) {
    if (auto st = sluice::KnobRegistry::global().set("zicio.ring_cache_mb", mb); !st.is_ok())
      die(st.to_string());
  };
  set_cache("0");
  for (int i = 0; i < c.opens; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(c.idle_ms));
    sluice::zicio::ChannelOptions opt = sluice::zicio::ChannelOptions::from_knobs();
    opt.name = "opens";
    const double cpu0 = rusage_s(RUSAGE_SELF);
    const int64_t t0 = now_ns();
    auto ch = sluice::zicio::Channel::open({c.file}, {}, opt);
    if (!ch.is_ok())
      die("zicio: " + ch.status().to_string());
    const int64_t t1 = now_ns();
    auto page = ch->get_page_wait(std::chrono::seconds(20));
    if (!page.is_ok())
      die("zicio: " + page.status().to_string());
    const int64_t t2 = now_ns();
    const bool reused = ch->stats().ring_reused;
    set_cache(i % 2 == 0 ? cache_on : "0");  // the next open finds this ring, or none
    if (auto st = ch->close(); !st.is_ok())
      die("zicio: " + st.to_string());
    const int64_t t3 = now_ns();
    std::printf(
        "{\"tag\":\"%s\",\"method\":\"open\",\"idle_ms\":%d,\"ring_reused\":%s,"
        "\"open_ms\":%.3f,\"first_page_ms\":%.3f,\"close_ms\":%.3f,\"cpu_ms\":%.3f}\n",
        c.tag.c_str(), c.idle_ms, reused ? "true" : "false", static_cast<double>(t1 - t0) / 1e6,
        static_cast<double>(t2 - t1) / 1e6, static_cast<double>(t3 - t2) / 1e6,
        (rusage_s(RUSAGE_SELF) - cpu0) * 1e3);
    std::fflush(stdout);
  }
}

void usage() {
  std::puts(
      "usage: zicio_bench --file PATH [--bytes N] [--methods pread,direct,uring,zicio,fio]\n"
      "         [--rates 0,512M,1G] [--req 4K,64K,256K] [--uring-req 2M] [--uring-budget 32M]\n"
      "         [--ranges 64K,1M,64M] [--reps N] [--warm] [--tag NAME]\n"
      "         [--worker-core N] [--control-core N] [--fresh-buffers] [--opens N [--idle-ms M]]\n"
      "  --bytes   scan the first N bytes of the file (default: all of it)\n"
      "  --rates   worker processing rates in bytes/s, 0 = unlimited\n"
      "  --req     request sizes of pread, direct (and uring unless --uring-req)\n"
      "  --ranges  batch sizes: read only the odd-numbered batches (default: full scan)\n"
      "  --warm    do not drop the page cache before each run\n"
      "  --worker-core, --control-core  cores of the worker (every method's; zicio-task's\n"
      "            loop too) and of zicio's control loop; default: the first and the last this\n"
      "            process may use\n"
      "  --fresh-buffers  every run maps new buffers (peers) and rings (zicio); default: kept\n"
      "  --opens N  time N channel opens (to the first page) and closes instead, alternately\n"
      "            with a new ring and a kept one; --idle-ms M pauses before each\n"
      "One JSON object per run on stdout; methods are interleaved within each repetition.");
}

}  // namespace

int main(int argc, char** argv) {
  // Knobs from the environment (SLUICE_ZICIO_MAX_INFLIGHT=16, SLUICE_PARA_IDLE_SPIN_US=0, …), as
  // the sluice command reads them.
  if (auto st = sluice::KnobRegistry::global().load_environment(
          sluice::KnobRegistry::current_environment());
      !st.is_ok())
    die(st.to_string());
  Config c;
  c.methods = {"pread", "direct", "uring", "zicio"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc)
        die("missing value after " + a);
      return argv[++i];
    };
    auto sizes = [&](const std::string& s) {
      std::vector<uint64_t> v;
      for (const std::string& x : split(s))
        v.push_back(parse_size(x));
      return v;
    };
    if (a == "--file")
      c.file = val();
    else if (a == "--bytes")
      c.bytes = parse_size(val());
    else if (a == "--methods")
      c.methods = split(val());
    else if (a == "--rates")
      c.rates = sizes(val());
    else if (a == "--req")
      c.reqs = sizes(val());
    else if (a == "--uring-req")
      c.uring_req = parse_size(val());
    else if (a == "--uring-budget")
      c.uring_budget = parse_size(val());
    else if (a == "--ranges")
      c.batches = sizes(val());
    else if (a == "--reps")
      c.reps = std::atoi(val().c_str());
    else if (a == "--warm")
      c.warm = true;
    else if (a == "--tag")
      c.tag = val();
    else if (a == "--opens")
      c.opens = std::atoi(val().c_str());
    else if (a == "--idle-ms")
      c.idle_ms = std::atoi(val().c_str());
    else if (a == "--fresh-buffers")
      g_fresh_buffers = true;
    else if (a == "--worker-core")
      c.worker_core = std::atoi(val().c_str());
    else if (a == "--control-core")
      c.control_core = std::atoi(val().c_str());
    else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else {
      usage();
      die("unknown argument " + a);
    }
  }
  if (c.file.empty()) {
    usage();
    return 2;
  }
  if (g_fresh_buffers)
    if (auto st = sluice::KnobRegistry::global().set("zicio.ring_cache_mb", "0"); !st.is_ok())
      die(st.to_string());
  struct stat st {};
  if (stat(c.file.c_str(), &st) != 0)
    die("stat " + c.file + ": " + std::strerror(errno));
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (c.opens > 0) {
    run_opens(c);
    return 0;
  }
  c.disk_stat = "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" +
                std::to_string(minor(st.st_dev)) + "/stat";
  if (c.bytes == 0)
    c.bytes = file_size;
  if (c.bytes > file_size)
    die("--bytes is larger than " + c.file);
  for (uint64_t r : c.reqs)
    if (r == 0 || r % 4096 != 0)
      die("request sizes must be multiples of 4 KiB");
  // An empty range list means a full scan to zicio: a batch size that leaves no odd batch to
  // read would scan everything in zicio's runs and nothing in the others'.
  for (uint64_t batch : c.batches)
    if (batch != 0 && batch >= c.bytes)
      die("--ranges " + std::to_string(batch) + " leaves no odd-numbered batch in the " +
          std::to_string(c.bytes) + " bytes scanned (raise --bytes)");
  // The worker runs on the first core this process may use, for every method; zicio's control
  // loop on the last (method zicio: a para reactor, started before any run is timed, as a
  // sluice process has its runtime running before it opens channels; zicio-thread: a thread
  // pinned there).
  {
    auto topo = sluice::CpuTopology::detect();
    if (!topo.is_ok() || topo->allowed_cpus().empty())
      die("cannot read the CPU topology");
    g_worker_core = c.worker_core >= 0 ? c.worker_core : topo->allowed_cpus().front();
    g_control_core = c.control_core >= 0 ? c.control_core : topo->allowed_cpus().back();
    for (const std::string& m : c.methods)
      if (m == "zicio" || m == "zicio-q16" || m.starts_with("zicio-task"))
        (void)control_runtime();
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(static_cast<size_t>(g_worker_core), &one);
    if (pthread_setaffinity_np(pthread_self(), sizeof one, &one) != 0)
      die("cannot pin the worker to core " + std::to_string(g_worker_core));
  }
  // Untimed, once per configuration: every method scans the start of the file, so its buffers
  // (zicio: its ring, kept for the next channel) are mapped and touched before the first timed
  // run, as in a process that has been running. On this VM the first touch of memory the host
  // took back costs tens of milliseconds, and fell on whichever method ran first.
  for (uint64_t batch : c.batches)
    for (uint64_t req : c.reqs)
      for (const std::string& m : c.methods) {
        if (m.starts_with("fio") || (m.starts_with("zicio") && req != c.reqs.front()))
          continue;
        const uint64_t prefix = std::min(c.bytes, std::max<uint64_t>(4 * batch, 64 << 20));
        Worker w;
        uint64_t used_req = 0;
        double fio_bw = 0;
        (void)scan_with(c, m, make_ranges(prefix, batch), prefix, req, file_size, w, &used_req,
                        &fio_bw);
      }
  for (int rep = 0; rep < c.reps; ++rep)
    for (uint64_t batch : c.batches)
      for (uint64_t rate : c.rates)
        for (uint64_t req : c.reqs)
          // The order rotates with the repetition (A B C D, B C D A, …): whatever state one run
          // leaves behind (a disk cache below the VM, the page allocator) favours each method
          // equally often.
          for (size_t k = 0; k < c.methods.size(); ++k) {
            const std::string& m = c.methods[(k + static_cast<size_t>(rep)) % c.methods.size()];
            // zicio and fio choose their own request size: run them once per request sweep.
            if ((m.starts_with("zicio") || m.starts_with("fio")) && req != c.reqs.front())
              continue;
            if (m.starts_with("fio") && (rate != 0 || batch != 0))
              continue;
            // The task worker's rate spin would hold the reactor its control loop runs on.
            if (m.starts_with("zicio-task") && rate != 0)
              continue;
            run_one(c, m, rate, req, batch, rep, file_size);
          }
  return 0;
}
