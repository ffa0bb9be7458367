// Where the control loop runs (a thread of its own, pinned or not, or a task of a para reactor)
// and how many reads it keeps in flight.
#include <fcntl.h>
#include <sched.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/common/topology.h"
#include "sluice/para/runtime.h"
#include "sluice/zicio/channel.h"
#include "zicio/channel_test_support.h"

namespace sluice::zicio {
namespace {

using namespace test_support;  // NOLINT(google-build-using-namespace): shared fixtures

int first_allowed_core() {
  Result<CpuTopology> topo = CpuTopology::detect();
  return topo.is_ok() && !topo->allowed_cpus().empty() ? topo->allowed_cpus().front() : 0;
}

std::unique_ptr<para::Runtime> start_runtime(int core) {
  para::RuntimeOptions o;
  o.cores = {core};
  o.arena_size = size_t{16} << 20;
  o.offload_threads = 1;
  Result<std::unique_ptr<para::Runtime>> rt = para::Runtime::start(o);
  EXPECT_TRUE(rt.is_ok()) << rt.status().to_string();
  return rt.is_ok() ? std::move(*rt) : nullptr;
}

TEST(ChannelHostTest, ReactorHostedLoopHandsOutExactlyTheBytes) {
  const int core = first_allowed_core();
  std::unique_ptr<para::Runtime> rt = start_runtime(core);
  ASSERT_NE(rt, nullptr);
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 7 * kMiB + 5);
  const std::string b = tf.make(1, 3 * kMiB);
  ChannelOptions o = small_options();
  o.runtime = rt.get();
  o.control_core = core;
  const auto t0 = std::chrono::steady_clock::now();
  auto ch = Channel::open({a, b}, {}, o);
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  uint64_t bytes = 0;
  const std::vector<uint64_t> offs = drain(*ch, &bytes);
  EXPECT_EQ(bytes, 10 * kMiB + 5);
  for (size_t i = 1; i < offs.size(); ++i)
    EXPECT_LT(offs[i - 1], offs[i]);
  // The loop marks the stream finished right after publishing the last chunk, which the worker
  // may already have taken; close() waits for the loop, so the state read after it is settled.
  EXPECT_TRUE(ch->close().is_ok());
  const ChannelStats s = ch->stats();
  EXPECT_EQ(s.control_host, "para reactor on core " + std::to_string(core));
  EXPECT_EQ(s.state, "finished");
  EXPECT_EQ(s.completions, s.total_chunks);
  EXPECT_GT(s.control_wakeups, 0u);
  // The loop's time is its passes' (on the TSC clock): some, and within the scan's wall time.
  const auto wall = std::chrono::steady_clock::now() - t0;
  EXPECT_GT(s.control_cpu_ns, 0u);
  EXPECT_LE(
      s.control_cpu_ns,
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(wall).count()));
  rt->stop();
}

// A reactor-hosted channel reads on the reactor's ring, into its buffers and files registered in
// that ring's tables, and gives the entries back when its loop ends: more channels one after
// another than the table could hold at once (1024 entries, 16 per channel) all read with
// registered buffers and files.
TEST(ChannelHostTest, ChannelsOnOneReactorGiveTheirRingTableEntriesBack) {
  const int core = first_allowed_core();
  std::unique_ptr<para::Runtime> rt = start_runtime(core);
  ASSERT_NE(rt, nullptr);
  if (!rt->reactor(0).ring_info().buffer_table)
    GTEST_SKIP() << "this kernel's io_uring has no sparse tables";
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 3 * kMiB + 11);
  const std::string b = tf.make(1, 1 * kMiB);
  ChannelOptions o = small_options();
  o.ring_buffers = 16;
  o.runtime = rt.get();
  o.control_core = core;
  for (int i = 0; i < 70; ++i) {
    auto ch = Channel::open({a, b}, {}, o);
    ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
    uint64_t bytes = 0;
    drain(*ch, &bytes);
    EXPECT_EQ(bytes, 4 * kMiB + 11);
    ASSERT_TRUE(ch->close().is_ok());
    const ChannelStats s = ch->stats();
    EXPECT_TRUE(s.registered_buffers)
        << "channel " << i << ": " << (ch->notes().empty() ? "" : ch->notes().back());
    EXPECT_TRUE(s.registered_files) << "channel " << i;
    if (!s.registered_buffers || !s.registered_files)
      break;
  }
  rt->stop();
}

// Without registration (zicio.register off, or the reactor's tables refused the channel) the
// reads on the reactor's ring are plain READs on the files' own descriptors, and hand out the
// same bytes.
TEST(ChannelHostTest, AReactorHostedChannelWithoutRegistrationReadsThePlainWay) {
  const int core = first_allowed_core();
  std::unique_ptr<para::Runtime> rt = start_runtime(core);
  ASSERT_NE(rt, nullptr);
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 5 * kMiB + 7);
  const std::string b = tf.make(1, 2 * kMiB);
  ChannelOptions o = small_options();
  o.register_buffers = false;
  o.runtime = rt.get();
  o.control_core = core;
  auto ch = Channel::open({a, b}, {}, o);
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  uint64_t bytes = 0;
  drain(*ch, &bytes);
  EXPECT_EQ(bytes, 7 * kMiB + 7);
  ASSERT_TRUE(ch->close().is_ok());
  const ChannelStats s = ch->stats();
  EXPECT_FALSE(s.registered_buffers);
  EXPECT_FALSE(s.registered_files);
  EXPECT_EQ(s.state, "finished");
  rt->stop();
}

// What a worker task on the hosting reactor saw: every byte checked against the pattern.
struct TaskScan {
  uint64_t bytes = 0;
  std::vector<uint64_t> offsets;
  Status first_wait;  // next_page with a zero timeout before anything could be read
  Status end;
  ChannelStats stats;
};

// Opens the channel on this reactor, asks for a page before the loop could run a pass (so none
// can be ready: passes run on this thread only when the task suspends), then drains it.
para::Task<Result<TaskScan>> scan_as_task(std::vector<std::string> paths, ChannelOptions o) {
  SLUICE_CO_ASSIGN_OR_RETURN(Channel ch, Channel::open(std::move(paths), {}, o));
  TaskScan out;
  out.first_wait = (co_await ch.next_page(std::chrono::nanoseconds(0))).status();
  for (;;) {
    Result<Page> p = co_await ch.next_page(std::chrono::seconds(20));
    if (!p.is_ok()) {
      out.end = p.status();
      break;
    }
    for (size_t i = 0; i < p->size; i += 4099)
      if (static_cast<uint8_t>(p->data[i]) != pattern(p->file_index, p->file_offset + i))
        co_return internal_error("wrong byte at stream offset " +
                                 std::to_string(p->stream_offset + i));
    out.bytes += p->size;
    out.offsets.push_back(p->stream_offset);
    SLUICE_CO_RETURN_IF_ERROR(ch.put_page(*p));
  }
  SLUICE_CO_RETURN_IF_ERROR(ch.close());
  out.stats = ch.stats();
  co_return out;
}

TEST(ChannelHostTest, AWorkerTaskOnTheHostingReactorAwaitsEveryPageInOrder) {
  const int core = first_allowed_core();
  std::unique_ptr<para::Runtime> rt = start_runtime(core);
  ASSERT_NE(rt, nullptr);
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 9 * kMiB + 3);
  const std::string b = tf.make(1, 4 * kMiB);
  ChannelOptions o = small_options();
  o.runtime = rt.get();
  o.control_core = core;
  o.page_size = 512 << 10;
  Result<TaskScan> r = rt->run_on(core, [a, b, o] { return scan_as_task({a, b}, o); });
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const TaskScan& scan = *r;
  EXPECT_EQ(scan.first_wait.code(), StatusCode::kDeadlineExceeded) << scan.first_wait.to_string();
  EXPECT_EQ(scan.end.code(), StatusCode::kOutOfRange) << scan.end.to_string();
  EXPECT_EQ(scan.bytes, 13 * kMiB + 3);
  for (size_t i = 1; i < scan.offsets.size(); ++i)
    EXPECT_LT(scan.offsets[i - 1], scan.offsets[i]);
  EXPECT_EQ(scan.stats.state, "finished");
  EXPECT_EQ(scan.stats.bytes_got, 13 * kMiB + 3);
  EXPECT_GT(scan.stats.worker_waits, 0u);
  rt->stop();
}

// Closes after the first page, with reads still in flight: close() returns at once on the
// hosting reactor, and the loop finishes the teardown once they are in.
para::Task<Result<ChannelStats>> close_mid_scan(std::string path, ChannelOptions o) {
  SLUICE_CO_ASSIGN_OR_RETURN(Channel ch, Channel::open({std::move(path)}, {}, o));
  SLUICE_CO_ASSIGN_OR_RETURN(Page p, co_await ch.next_page(std::chrono::seconds(20)));
  SLUICE_CO_RETURN_IF_ERROR(ch.put_page(p));
  SLUICE_CO_RETURN_IF_ERROR(ch.close());
  if (ch.is_open())
    co_return internal_error("still open after close()");
  if (Status again = (co_await ch.next_page(std::chrono::seconds(1))).status(); again.is_ok())
    co_return internal_error("a page after close()");
  // Let the loop drain its reads: it runs on this reactor between our suspensions.
  for (int i = 0; i < 2000 && ch.stats().state == "running"; ++i)
    (void)co_await para::sleep_for(std::chrono::milliseconds(1));
  co_return ch.stats();
}

TEST(ChannelHostTest, ClosingOnTheHostingReactorMidScanLeavesTheTeardownToTheLoop) {
  const int core = first_allowed_core();
  std::unique_ptr<para::Runtime> rt = start_runtime(core);
  ASSERT_NE(rt, nullptr);
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 64 * kMiB);
  ChannelOptions o = small_options();
  o.runtime = rt.get();
  o.control_core = core;
  o.max_inflight = 4;
  Result<ChannelStats> r = rt->run_on(core, [a, o] { return close_mid_scan(a, o); });
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->state, "stopped");
  EXPECT_EQ(r->completions, r->requests);  // every read came in before the buffers went
  EXPECT_LT(r->completions, r->total_chunks);
  rt->stop();  // no task or read left behind: stop returns without its shutdown timeout
}

// The reactor-hosted loop shares the channel's state: assigning over an open channel must
// still close it (its loop stops, its descriptors go), not merely drop a reference.
TEST(ChannelHostTest, AssigningOverAnOpenChannelClosesIt) {
  const int core = first_allowed_core();
  std::unique_ptr<para::Runtime> rt = start_runtime(core);
  ASSERT_NE(rt, nullptr);
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 16 * kMiB);
  ChannelOptions o = small_options();
  o.runtime = rt.get();
  o.control_core = core;
  auto first = Channel::open({a}, {}, o);
  auto second = Channel::open({a}, {}, o);
  ASSERT_TRUE(first.is_ok() && second.is_ok());
  const int old_fd = first->switchboard_fd();
  ASSERT_GE(old_fd, 0);
  *first = std::move(*second);
  // The old state goes when its loop task has ended, on the reactor: wait for its descriptor.
  bool gone = false;
  for (int i = 0; i < 5000 && !gone; ++i) {
    gone = fcntl(old_fd, F_GETFD) < 0 && errno == EBADF;
    if (!gone)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(gone) << "the replaced channel's switchboard is still open";
  uint64_t bytes = 0;
  (void)drain(*first, &bytes);  // the channel moved in works
  EXPECT_EQ(bytes, 16 * kMiB);
  EXPECT_TRUE(first->close().is_ok());
  rt->stop();
}

TEST(ChannelHostTest, NextPageOffTheHostingReactorIsRefused) {
  const int core = first_allowed_core();
  std::unique_ptr<para::Runtime> rt = start_runtime(core);
  ASSERT_NE(rt, nullptr);
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 3 * kMiB);
  // A channel whose loop has a thread of its own has no hosting reactor to resume a task.
  auto threaded = Channel::open({a}, {}, small_options());
  ASSERT_TRUE(threaded.is_ok()) << threaded.status().to_string();
  Channel* ch = &*threaded;
  // The refusal travels back as a value (a Status result would read as the call's own).
  Result<std::pair<StatusCode, std::string>> r =
      rt->run_on(core, [ch]() -> para::Task<std::pair<StatusCode, std::string>> {
        const Status s = (co_await ch->next_page(std::chrono::seconds(1))).status();
        co_return std::pair{s.code(), std::string(s.message())};
      });
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->first, StatusCode::kFailedPrecondition) << r->second;
  EXPECT_NE(r->second.find("get_page_wait"), std::string::npos) << r->second;
  // The channel itself is unharmed: a thread still drains it.
  uint64_t bytes = 0;
  (void)drain(*threaded, &bytes);
  EXPECT_EQ(bytes, 3 * kMiB);
  rt->stop();
}

TEST(ChannelHostTest, ReactorHostedLoopReleasesReadsOnItsTimer) {
  // A worker slower than the device: reads wait for their release times, which only the timer
  // entry in the channel's ring can bring (no completion is due then).
  const int core = first_allowed_core();
  std::unique_ptr<para::Runtime> rt = start_runtime(core);
  ASSERT_NE(rt, nullptr);
  TempFiles tf(disk_dir());
  const uint64_t size = 20 * kMiB;
  const std::string a = tf.make(0, size);
  ChannelOptions o = small_options();
  o.runtime = rt.get();
  o.control_core = core;
  o.read_deviations = 0;  // release against the mean read time: the test wants late releases
  o.read_slack = 0;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  uint64_t bytes = 0;
  for (;;) {
    Result<Page> p = ch->get_page_wait(std::chrono::seconds(20));
    if (!p.is_ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kOutOfRange) << p.status().to_string();
      break;
    }
    for (size_t i = 0; i < p->size; i += 4099)
      ASSERT_EQ(static_cast<uint8_t>(p->data[i]), pattern(0, p->file_offset + i));
    bytes += p->size;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // ≈ 70 MB/s of "work"
    ASSERT_TRUE(ch->put_page(*p).is_ok());
  }
  EXPECT_EQ(bytes, size);
  const ChannelStats s = ch->stats();
  EXPECT_GT(s.paced_requests, 0u);
  EXPECT_EQ(s.completions, 10u);
  EXPECT_TRUE(ch->close().is_ok());
  rt->stop();
}

TEST(ChannelHostTest, RuntimeStoppedUnderAnOpenChannelFailsItWithoutAHang) {
  const int core = first_allowed_core();
  std::unique_ptr<para::Runtime> rt = start_runtime(core);
  ASSERT_NE(rt, nullptr);
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 32 * kMiB);
  ChannelOptions o = small_options();
  o.runtime = rt.get();
  o.control_core = core;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  Result<Page> first = ch->get_page_wait(std::chrono::seconds(20));
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  ASSERT_TRUE(ch->put_page(*first).is_ok());
  rt->stop();
  // Pages already read may still come; then the channel says why it cannot go on.
  Status end;
  for (int i = 0; i < 32; ++i) {
    Result<Page> p = ch->get_page_wait(std::chrono::seconds(20));
    if (!p.is_ok()) {
      end = p.status();
      break;
    }
    ASSERT_TRUE(ch->put_page(*p).is_ok());
  }
  EXPECT_EQ(end.code(), StatusCode::kCancelled) << end.to_string();
  EXPECT_NE(end.message().find("para runtime"), std::string::npos) << end.to_string();
  EXPECT_EQ(ch->stats().state, "failed");
  EXPECT_TRUE(ch->close().is_ok());
}

TEST(ChannelHostTest, HostCoreWithoutAReactorIsRefused) {
  const int core = first_allowed_core();
  std::unique_ptr<para::Runtime> rt = start_runtime(core);
  ASSERT_NE(rt, nullptr);
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, kMiB);
  ChannelOptions o = small_options();
  o.runtime = rt.get();
  o.control_core = core + 1000;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_FALSE(ch.is_ok());
  EXPECT_EQ(ch.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ch.status().message().find("no reactor on core"), std::string::npos)
      << ch.status().to_string();
  rt->stop();
}

TEST(ChannelHostTest, ThreadHostIsPinnedToTheControlCore) {
  const int core = first_allowed_core();
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 5 * kMiB);
  ChannelOptions o = small_options();
  o.control_core = core;
  const auto t0 = std::chrono::steady_clock::now();
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  uint64_t bytes = 0;
  (void)drain(*ch, &bytes);
  EXPECT_EQ(bytes, 5 * kMiB);
  EXPECT_EQ(ch->stats().control_host, "thread on core " + std::to_string(core));
  // The thread's CPU clock is read at most once a millisecond while it runs, and once at its
  // end: after close the figure is the whole loop's, and no more than the time it ran.
  ASSERT_TRUE(ch->close().is_ok());
  const auto wall = std::chrono::steady_clock::now() - t0;
  EXPECT_GT(ch->stats().control_cpu_ns, 0u);
  EXPECT_LE(
      ch->stats().control_cpu_ns,
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(wall).count()));

  o.control_core = CPU_SETSIZE + 1;
  auto bad = Channel::open({a}, {}, o);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("zicio.control_core"), std::string::npos);

  auto plain = Channel::open({a}, {}, small_options());
  ASSERT_TRUE(plain.is_ok());
  EXPECT_EQ(plain->stats().control_host, "thread");
}

TEST(ChannelHostTest, SmallRangePiecesShareTheByteBudgetOfOneRead) {
  // max_inflight counts 2 MiB reads: 64 KiB range pieces, packed 32 to a buffer, have 32 I/O
  // requests in flight in that budget, not one buffer's worth of reads each.
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 8 * kMiB);
  std::vector<Range> ranges;
  for (uint64_t off = 64 << 10; off < 8 * kMiB; off += 128 << 10)
    ranges.push_back({.offset = off, .length = 64 << 10});
  ChannelOptions o = small_options();
  o.ring_buffers = 16;
  o.max_inflight = 1;
  auto ch = Channel::open({a}, ranges, o);
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  uint64_t bytes = 0;
  const std::vector<uint64_t> offs = drain(*ch, &bytes);
  EXPECT_EQ(bytes, ranges.size() * (64 << 10));
  ASSERT_EQ(offs.size(), ranges.size());
  for (size_t i = 0; i < ranges.size(); ++i)
    EXPECT_EQ(offs[i], ranges[i].offset);
  const ChannelStats s = ch->stats();
  EXPECT_EQ(s.total_chunks, 2u);
  EXPECT_EQ(s.requests, 2u);
  EXPECT_EQ(s.device_reads, ranges.size());
  EXPECT_EQ(s.max_inflight_seen, 1u);
}

TEST(ChannelHostTest, WholeChunkReadsStayWithinMaxInflight) {
  TempFiles tf(disk_dir());
  const std::string a = tf.make(0, 24 * kMiB);
  ChannelOptions o = small_options();
  o.ring_buffers = 8;
  o.max_inflight = 2;
  auto ch = Channel::open({a}, {}, o);
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  uint64_t bytes = 0;
  (void)drain(*ch, &bytes);
  EXPECT_EQ(bytes, 24 * kMiB);
  EXPECT_LE(ch->stats().max_inflight_seen, 2u);
  EXPECT_GE(ch->stats().max_inflight_seen, 1u);
}

}  // namespace
}  // namespace sluice::zicio
