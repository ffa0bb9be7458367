// The rings of closed channels, kept for the next open (zicio.ring_cache_mb): what is reused,
// what is not, and that a kept ring neither leaks one scan's bytes into the next nor answers a
// page used after its channel closed.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sluice/common/knobs.h"
#include "sluice/zicio/channel.h"
#include "zicio/channel_test_support.h"

namespace sluice::zicio {
namespace {

using namespace test_support;  // NOLINT(google-build-using-namespace): shared fixtures

// Each test starts with an empty cache of the size it names and leaves the default behind.
class RingCacheTest : public ::testing::Test {
 protected:
  static void set_cache_mb(int mb) {
    ASSERT_TRUE(KnobRegistry::global().set("zicio.ring_cache_mb", std::to_string(mb)).is_ok());
  }
  void SetUp() override {
    // A cache of 0 unmaps what earlier tests left: every test starts from nothing kept.
    set_cache_mb(0);
    ChannelOptions o = small_options();
    auto flush = Channel::open({files_.make(9, kMiB)}, {}, o);
    ASSERT_TRUE(flush.is_ok());
    ASSERT_TRUE(flush->close().is_ok());
  }
  void TearDown() override { set_cache_mb(64); }

  // Opens `paths` as one stream with `o`, checks every byte of the scan (drain(): the bytes of
  // the stream's n-th file follow pattern n) and closes; returns whether the ring came from the
  // cache.
  static bool scan(const std::vector<std::string>& paths, uint64_t size, const ChannelOptions& o) {
    auto ch = Channel::open(paths, {}, o);
    EXPECT_TRUE(ch.is_ok()) << ch.status().to_string();
    if (!ch.is_ok())
      return false;
    const bool reused = ch->stats().ring_reused;
    uint64_t bytes = 0;
    drain(*ch, &bytes);
    EXPECT_EQ(bytes, size);
    EXPECT_TRUE(ch->close().is_ok());
    return reused;
  }

  TempFiles files_{disk_dir()};
};

TEST_F(RingCacheTest, NextChannelReusesTheRingAndSeesOnlyItsOwnBytes) {
  set_cache_mb(64);
  // The first scan fills the ring mostly with pattern-1 bytes (the stream's second file); the
  // second scan's only file is pattern 0, shorter, and ends inside a buffer the first filled
  // completely: a page that showed anything the read did not write would fail drain()'s check.
  const uint64_t pad = kMiB + 5;
  const uint64_t big = 9 * kMiB + 4096 * 3 + 17;
  const uint64_t small = 3 * kMiB + 123;
  const std::string first = files_.make(0, pad);
  const std::string a = files_.make(1, big);
  const std::string b = files_.make(0, small);
  EXPECT_FALSE(scan({first, a}, pad + big, small_options()));
  EXPECT_TRUE(scan({b}, small, small_options()));
  EXPECT_TRUE(scan({first, a}, pad + big, small_options()));
}

TEST_F(RingCacheTest, AnotherRingSizeOrBackingGetsANewRing) {
  set_cache_mb(64);
  const std::string a = files_.make(0, 5 * kMiB);
  EXPECT_FALSE(scan({a}, 5 * kMiB, small_options()));
  ChannelOptions larger = small_options();
  larger.ring_buffers = 8;
  EXPECT_FALSE(scan({a}, 5 * kMiB, larger));
  ChannelOptions small_pages = small_options();
  small_pages.huge_pages = HugePageMode::kOff;
  EXPECT_FALSE(scan({a}, 5 * kMiB, small_pages));
  // Each of the three is kept now (8 + 16 + 8 MiB under 64): each is found again.
  EXPECT_TRUE(scan({a}, 5 * kMiB, small_options()));
  EXPECT_TRUE(scan({a}, 5 * kMiB, larger));
  EXPECT_TRUE(scan({a}, 5 * kMiB, small_pages));
}

TEST_F(RingCacheTest, ZeroKeepsNothing) {
  set_cache_mb(0);
  const std::string a = files_.make(0, 3 * kMiB);
  EXPECT_FALSE(scan({a}, 3 * kMiB, small_options()));
  EXPECT_FALSE(scan({a}, 3 * kMiB, small_options()));
}

TEST_F(RingCacheTest, TheOldestRingMakesRoomForTheNewest) {
  set_cache_mb(8);  // one ring of 4 × 2 MiB
  const std::string a = files_.make(0, 3 * kMiB);
  auto first = Channel::open({a}, {}, small_options());
  auto second = Channel::open({a}, {}, small_options());
  ASSERT_TRUE(first.is_ok() && second.is_ok());
  ASSERT_TRUE(first->close().is_ok());   // kept
  ASSERT_TRUE(second->close().is_ok());  // kept; the first one is unmapped
  auto third = Channel::open({a}, {}, small_options());
  auto fourth = Channel::open({a}, {}, small_options());
  ASSERT_TRUE(third.is_ok() && fourth.is_ok());
  EXPECT_TRUE(third->stats().ring_reused);
  EXPECT_FALSE(fourth->stats().ring_reused);
}

TEST_F(RingCacheTest, RingLargerThanTheCacheIsUnmapped) {
  set_cache_mb(4);  // smaller than one ring of 8 MiB
  const std::string a = files_.make(0, 3 * kMiB);
  EXPECT_FALSE(scan({a}, 3 * kMiB, small_options()));
  EXPECT_FALSE(scan({a}, 3 * kMiB, small_options()));
}

using RingCacheDeathTest = RingCacheTest;

TEST_F(RingCacheDeathTest, PageUsedAfterItsChannelClosedStillFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  set_cache_mb(64);
  const std::string a = files_.make(0, 3 * kMiB);
  auto use_after_close = [&] {
    auto ch = Channel::open({a}, {}, small_options());
    if (!ch.is_ok())
      std::abort();
    files_.remove_all();  // this child dies by the fault, so no destructor would unlink them
    Result<Page> p = ch->get_page_wait(std::chrono::seconds(20));
    if (!p.is_ok())
      std::abort();
    const volatile std::byte* data = p->data;
    (void)ch->close();  // the ring is kept, PROT_NONE
    std::fprintf(stderr, "read %d\n", static_cast<int>(data[0]));
  };
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  EXPECT_DEATH(use_after_close(), "SEGV");  // the sanitizer reports the fault and exits
#else
  EXPECT_EXIT(use_after_close(), ::testing::KilledBySignal(SIGSEGV), "");
#endif
  // No channel took the ring in between: the read must fault, not print.
}

}  // namespace
}  // namespace sluice::zicio
