// sluice::zicio::Channel: a just-in-time ingestion channel (Kim et al., "zicIO", SIGMOD '25;
// design and differences from the paper in docs/zicio.md).
//
// A worker that scans a table opens a channel on the table's files (segments of one table are
// one stream, in the order given) and optionally on a sorted list of disjoint byte ranges of that
// stream. The channel keeps a ring of 2 MiB buffers (knob zicio.ring_buffers) that a control loop
// on its own thread fills with O_DIRECT reads through io_uring, straight into the buffers, each
// read released just before the worker will need it: the loop paces itself to the worker's
// measured ingestion speed S_u and the device's measured throughput S_d (Equation 1 of the
// paper), adding parallel "reward" requests when one stream of reads is slower than the worker.
// The worker's path has no system call and no copy: get_page() flips a status word and returns
// a pointer into a buffer, put_page() flips it back.
//
//   SLUICE_ASSIGN_OR_RETURN(zicio::Channel ch, zicio::Channel::open({"/data/t.0", "/data/t.1"}));
//   for (;;) {
//     Result<zicio::Page> page = ch.get_page_wait();
//     if (!page.is_ok()) {
//       if (page.status().code() == StatusCode::kOutOfRange) break;  // end of the stream
//       return page.status();
//     }
//     process(page->bytes());              // page->stream_offset says where it lies
//     SLUICE_RETURN_IF_ERROR(ch.put_page(*page));
//   }
//   ChannelStats s = ch.stats();           // wait time, bytes, paced request rate, …
//
// Pages. A chunk (one 2 MiB buffer: a 2 MiB piece of a file, or several small range pieces or
// small files packed together) is handed out as pages of options.page_size bytes (8 KiB … 2 MiB,
// a power of two); the last page of a piece (end of file, end of a range) may be shorter, and no
// page spans two pieces or two files. With ranges, or by default, pages come in stream order; with
// options.any_order a full scan may hand out whichever chunk is ready first (each page says
// where it lies). A page stays valid until it is put back; a chunk's buffer is recycled when all
// its pages are back. The worker may hold several pages; when it holds the buffer the next chunk
// needs, get_page says so (resource exhausted) rather than waiting forever.
//
// Return codes of get_page / get_page_wait: a page; kUnavailable (nothing ready yet: get_page
// never waits); kDeadlineExceeded (get_page_wait's timeout ran out); kOutOfRange (the stream is
// finished); kResourceExhausted (the worker holds the buffer the next chunk needs); kDataLoss (a
// file changed size while scanned: zicio assumes read-only data); kIoError and friends (a read
// failed). Pages before a failure are still handed out in order; the failure comes when the worker
// reaches it.
//
// A worker that runs on the para reactor hosting the control loop awaits pages instead:
//
//   for (;;) {
//     Result<zicio::Page> page = co_await ch.next_page();   // suspends, never blocks the core
//     …
//   }
//
// Thread safety: a Channel belongs to one worker thread at a time (get/put/notify_ranges/close);
// stats() may be called from any thread. The control loop is internal. Every call returns at
// once except get_page_wait, and close() / notify_ranges(), which wait for the reads in flight
// (at most max_inflight reads of 2 MiB). Move-only; destroying an open channel closes it.
// REQUIRES: no page is used after close().
#pragma once

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sluice/common/result.h"
#include "sluice/common/status.h"
#include "sluice/oqueue/oqueue.h"
#include "sluice/para/task.h"

namespace sluice::para {
class Runtime;
}

namespace sluice::zicio {

inline constexpr size_t kChunkSize = size_t{2} << 20;  // 2 MiB
inline constexpr size_t kMinPageSize = size_t{8} << 10;

// A byte range of the stream (the files concatenated in the order given).
struct Range {
  uint64_t offset = 0;
  uint64_t length = 0;
};

enum class HugePageMode { kAuto, kHugetlb, kThp, kOff };

struct ChannelOptions {
  std::string name = "scan";      // shown by stats, `sluice zicio stats` and the oqueue names
  size_t ring_buffers = 16;       // 2 MiB buffers (zicio.ring_buffers)
  size_t page_size = kChunkSize;  // zicio.page_kib
  bool any_order = false;         // full scans: hand out chunks as they become ready
  HugePageMode huge_pages = HugePageMode::kAuto;  // zicio.huge_pages
  bool direct = true;            // O_DIRECT (zicio.direct); tmpfs without it falls back
  bool require_direct = false;   // fail instead of falling back to buffered reads
  bool register_buffers = true;  // io_uring registered buffers and files (zicio.register)
  // Cap on reads in flight, reward requests included, counted in 2 MiB reads: smaller reads
  // (pieces of byte ranges) fill the same byte budget, up to one per ring buffer.
  unsigned max_inflight = 8;
  unsigned ema_shift = 4;       // α = 1/2^ema_shift for S_u and S_d (zicio.ema_shift)
  double read_slack = 0.5;      // release reads this fraction of a read time earlier
  double read_deviations = 16;  // read time = mean + this × mean absolute deviation of reads
  std::chrono::microseconds spin{20};       // get_page_wait spins this long before sleeping
  std::chrono::milliseconds idle_poll{50};  // the loop's longest sleep when waiting on the worker
  // Where the control loop runs. With `runtime`, it is a task of the para reactor serving
  // `control_core` (the paper's KzicIO on a partition of its own): the channel's reads go into
  // that reactor's io_uring (its buffers and files join the ring's tables) and the loop runs a
  // pass per completion, timer or wake-up, next to the reactor's other tasks. REQUIRES: the runtime
  // outlives the channel; a runtime stopped under an open channel fails it (cancelled). Without
  // `runtime`, the loop has a thread of its own, pinned to `control_core` when that is ≥ 0
  // (zicio.control_core).
  para::Runtime* runtime = nullptr;
  int control_core = -1;
  // File-system bypass (zicio.bypass): map each file's extents once with FIEMAP and read the
  // block device at those offsets (O_DIRECT). Root only; holes and preallocated extents read as
  // zeros; a chunk spread over too many extents is read through the file. Assumes, as zicio
  // does, that the files are not written while scanned.
  bool bypass = false;
  // Tests: read this file as the block device under every file (a sparse image holding the files'
  // blocks at their physical offsets) instead of the real device.
  std::string bypass_device_for_testing;
  // Tests: behave as if the filesystem refused O_DIRECT (tmpfs before Linux 6.6), or as if the
  // machine had no explicit huge pages.
  bool simulate_no_direct = false;
  bool simulate_no_hugetlb = false;

  // From the knobs zicio.ring_buffers, zicio.page_kib, zicio.huge_pages, zicio.direct,
  // zicio.bypass, zicio.register, zicio.max_inflight, zicio.ema_shift, zicio.read_slack,
  // zicio.read_deviations, zicio.spin_us, zicio.idle_poll_ms, zicio.control_core.
  static ChannelOptions from_knobs();
};

// One page handed to the worker. Plain data: copy it, keep it, give it back to put_page().
struct Page {
  const std::byte* data = nullptr;
  size_t size = 0;
  uint64_t stream_offset = 0;  // where data[0] lies in the stream
  uint32_t file_index = 0;     // which of the channel's files
  uint64_t file_offset = 0;    // where data[0] lies in that file
  uint64_t chunk = 0;          // the chunk's index in the channel's plan
  uint32_t slot = 0;           // the ring buffer holding it

  std::span<const std::byte> bytes() const { return {data, size}; }
};

// One event on a channel's observable queues: "zicio.<name>.pages" carries the worker's gets
// (the first page of a chunk) and puts (the return of a chunk's last page), "zicio.<name>.io"
// the control loop's submissions and completions. Unobserved, a put is one load and a branch.
struct ChunkEvent {
  enum Kind : uint32_t { kGet = 0, kPut = 1, kSubmit = 2, kComplete = 3 };
  int64_t time_ns = 0;  // CLOCK_MONOTONIC time line (the calibrated TSC clock)
  uint64_t chunk = 0;
  uint64_t bytes = 0;  // get/put: the chunk's data bytes; submit/complete: the read's bytes
  uint32_t slot = 0;
  Kind kind = kGet;
};

// A snapshot of a channel's counters (all since open; speeds are the current averages).
struct ChannelStats {
  std::string name;
  uint64_t total_bytes = 0;  // bytes the stream will hand out
  uint64_t total_chunks = 0;
  uint64_t bytes_got = 0;  // bytes handed to the worker so far
  uint64_t pages_got = 0;
  uint64_t pages_put = 0;
  uint64_t chunks_done = 0;     // chunks the worker returned entirely
  uint64_t worker_wait_ns = 0;  // time get_page_wait spent without a page
  uint64_t worker_waits = 0;    // get_page_wait calls that had to wait
  uint64_t not_ready = 0;       // non-blocking get_page calls that found nothing
  double su_bytes_per_s = 0;    // worker ingestion speed (EMA); 0 until measured
  double sd_bytes_per_s = 0;    // device throughput per request (EMA); 0 until measured
  uint64_t requests = 0;        // chunk reads submitted (one per buffer fill)
  uint64_t completions = 0;
  uint64_t device_reads = 0;       // I/O requests they took: more where small range pieces or
                                   // bypassed extents share a buffer
  uint64_t bytes_read = 0;         // bytes the device transferred (aligned reads)
  uint64_t max_inflight_seen = 0;  // chunk reads in flight at once, at most
  uint64_t reward_requests = 0;    // reads submitted while more than one stream was needed
  uint64_t paced_requests = 0;     // reads held back until their release time
  double request_rate = 0;         // reads per second between the first submit and last completion
  uint64_t control_cpu_ns = 0;     // CPU time of the control loop's thread (read once a ms while
                                   // it runs); on a reactor, the time of its passes
  uint64_t control_wakeups = 0;
  bool direct = false;  // reads bypass the page cache
  bool bypass = false;  // reads go to the block device at the files' extents
  bool registered_buffers = false;
  bool registered_files = false;
  std::string buffer_backing;  // "hugetlb", "thp" or "small pages"
  bool ring_reused = false;    // the ring of a closed channel (zicio.ring_cache_mb), not a new one
  std::string control_host;    // "thread", "thread on core N" or "para reactor on core N"
  std::string state;           // "running", "finished", "failed", "stopped"
};

class Channel {
 public:
  // Opens `paths` as one stream (in order), with `ranges` (sorted, disjoint, non-empty, inside
  // the stream; empty: the whole stream), and starts the control loop, which begins reading at
  // once. Errors: not found / permission denied (a file), invalid argument (bad ranges, a
  // directory, bad options), unimplemented (O_DIRECT refused and options.require_direct),
  // resource exhausted (buffers, io_uring).
  static Result<Channel> open(std::vector<std::string> paths, std::vector<Range> ranges = {},
                              ChannelOptions options = ChannelOptions::from_knobs());

  Channel();
  Channel(Channel&&) noexcept;
  Channel& operator=(Channel&&) noexcept;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  ~Channel();

  // The next page, never waiting (codes in the header comment).
  Result<Page> get_page();
  // The same, waiting up to `timeout` for a page: spins options.spin, then sleeps on a futex.
  Result<Page> get_page_wait(std::chrono::nanoseconds timeout = std::chrono::seconds(30));
  class Impl;
  // What next_page returns; await it where it is made (it lives in the awaiting frame and
  // refers to the channel). A page that is ready costs no allocation and no suspension.
  class [[nodiscard]] NextPage {
   public:
    bool await_ready();
    void await_suspend(std::coroutine_handle<> h);
    Result<Page> await_resume();

   private:
    friend class Channel;
    friend class Impl;
    NextPage(Impl* impl, std::chrono::nanoseconds timeout) : impl_(impl), timeout_(timeout) {}
    Impl* impl_;
    std::chrono::nanoseconds timeout_;
    std::coroutine_handle<> waiter_{};
    Page page_{};
    Status refused_;  // not awaited on the hosting reactor, or the channel closed
    int outcome_ = -1;
    bool waited_ = false;
    bool timed_out_ = false;
    int64_t start_ns_ = 0;
    int64_t deadline_ns_ = 0;
  };
  // The awaitable form of get_page_wait, for a worker that is itself a task of the para reactor
  // hosting the control loop (options.runtime, options.control_core): while no page is ready
  // the task is suspended, and the loop's next pass (a completion, a timer) hands it the next
  // page on the same core — no futex, no thread of its own, no cross-core wake-up. The reactor
  // runs the worker's other tasks meanwhile. Codes as get_page_wait; failed precondition when
  // awaited anywhere but on the hosting reactor.
  NextPage next_page(std::chrono::nanoseconds timeout = std::chrono::seconds(30));
  // Gives a page back. Errors: invalid argument (not a page of this channel, or given back
  // twice).
  Status put_page(const Page& page);
  // Replaces the plan with `ranges` (as in open). Allowed only before the first get_page:
  // failed precondition afterwards.
  Status notify_ranges(std::vector<Range> ranges);
  // Stops the control loop (waiting for reads in flight), releases buffers and files. Pages
  // still held become invalid. Idempotent; the destructor calls it. Called by a task on the
  // reactor hosting the loop, it returns at once and the loop, once its reads are in, releases
  // the rest (it cannot wait for a loop that runs on its own thread).
  Status close();

  bool is_open() const;
  ChannelStats stats() const;
  // Fallbacks taken at open (no O_DIRECT, no huge pages, no registered buffers), one line each.
  const std::vector<std::string>& notes() const;
  // The channel's event queues (see ChunkEvent); attach observers to watch it. REQUIRES: every
  // handle attached to them is detached before the channel is closed or destroyed.
  oq::OQueue<ChunkEvent>& page_events();
  oq::OQueue<ChunkEvent>& io_events();
  // The switchboard's memfd (for `sluice zicio stats` in another process, via /proc/PID/fd).
  int switchboard_fd() const;

 private:
  explicit Channel(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;  // shared with a control loop hosted by a para reactor
};

// Checks a range list against a stream of `stream_bytes`: sorted, disjoint, non-empty, inside.
Status validate_ranges(const std::vector<Range>& ranges, uint64_t stream_bytes);

// Reads a switchboard (a channel's memfd, e.g. /proc/PID/fd/N) read-only and returns its stats.
Result<ChannelStats> read_switchboard(const std::string& path);

}  // namespace sluice::zicio
