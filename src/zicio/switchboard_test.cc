#include "zicio/switchboard.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

namespace sluice::zicio::detail {
namespace {

Switchboard make(uint32_t slots = 4) {
  auto sb = Switchboard::create({.name = "test", .num_slots = slots, .total_chunks = 10});
  EXPECT_TRUE(sb.is_ok()) << sb.status().to_string();
  return std::move(sb).value();
}

TEST(SwitchboardTest, StatusWordPacksThirtyBitsOfCountAndTwoOfState) {
  EXPECT_EQ(status_state(pack_status(SlotState::kDone, 2u << 20)), SlotState::kDone);
  EXPECT_EQ(status_bytes(pack_status(SlotState::kDone, 2u << 20)), 2u << 20);
  EXPECT_EQ(status_bytes(pack_status(SlotState::kReady, kCountMask)), kCountMask);
  EXPECT_EQ(status_state(pack_status(SlotState::kInUse, kCountMask)), SlotState::kInUse);
  EXPECT_EQ(pack_status(SlotState::kEmpty, 0), 0u);
}

TEST(SwitchboardTest, FullCycleEmptyReadyInUseDoneEmpty) {
  Switchboard sb = make();
  EXPECT_EQ(sb.state(1), SlotState::kEmpty);
  ASSERT_TRUE(sb.publish(1, 7, 4096));
  EXPECT_EQ(sb.state(1), SlotState::kReady);
  uint64_t chunk = 0;
  uint32_t bytes = 0;
  ASSERT_TRUE(sb.acquire(1, 7, &chunk, &bytes));
  EXPECT_EQ(chunk, 7u);
  EXPECT_EQ(bytes, 4096u);
  EXPECT_EQ(sb.state(1), SlotState::kInUse);
  ASSERT_TRUE(sb.release(1));
  EXPECT_EQ(sb.state(1), SlotState::kDone);
  EXPECT_EQ(status_bytes(sb.slot(1).status.load()), 4096u);
  ASSERT_TRUE(sb.recycle(1));
  EXPECT_EQ(sb.state(1), SlotState::kEmpty);
}

TEST(SwitchboardTest, EachTransitionRefusesTheWrongStartingState) {
  Switchboard sb = make();
  uint64_t chunk = 0;
  uint32_t bytes = 0;
  // From empty only publish works.
  EXPECT_FALSE(sb.acquire(0, Switchboard::kAnyChunk, &chunk, &bytes));
  EXPECT_FALSE(sb.release(0));
  EXPECT_FALSE(sb.recycle(0));
  EXPECT_FALSE(sb.revoke(0));
  ASSERT_TRUE(sb.publish(0, 3, 100));
  // From ready: no second publish, no release, no recycle.
  EXPECT_FALSE(sb.publish(0, 4, 100));
  EXPECT_FALSE(sb.release(0));
  EXPECT_FALSE(sb.recycle(0));
  ASSERT_TRUE(sb.acquire(0, 3, &chunk, &bytes));
  // From in-use: nothing but release; the control loop cannot revoke or recycle it.
  EXPECT_FALSE(sb.publish(0, 4, 100));
  EXPECT_FALSE(sb.acquire(0, Switchboard::kAnyChunk, &chunk, &bytes));
  EXPECT_FALSE(sb.recycle(0));
  EXPECT_FALSE(sb.revoke(0));
  ASSERT_TRUE(sb.release(0));
  // From done: only recycle.
  EXPECT_FALSE(sb.release(0));
  EXPECT_FALSE(sb.publish(0, 4, 100));
  EXPECT_FALSE(sb.revoke(0));
  EXPECT_FALSE(sb.acquire(0, Switchboard::kAnyChunk, &chunk, &bytes));
  EXPECT_TRUE(sb.recycle(0));
}

TEST(SwitchboardTest, AcquireChecksTheChunkId) {
  Switchboard sb = make();
  ASSERT_TRUE(sb.publish(2, 9, 1));
  uint64_t chunk = 0;
  uint32_t bytes = 0;
  EXPECT_FALSE(sb.acquire(2, 8, &chunk, &bytes));  // the worker wants chunk 8: not this one
  EXPECT_EQ(sb.state(2), SlotState::kReady);
  EXPECT_TRUE(sb.acquire(2, Switchboard::kAnyChunk, &chunk, &bytes));
  EXPECT_EQ(chunk, 9u);
}

TEST(SwitchboardTest, RevokeTakesAReadyBufferBack) {
  Switchboard sb = make();
  ASSERT_TRUE(sb.publish(0, 1, 10));
  ASSERT_TRUE(sb.revoke(0));
  EXPECT_EQ(sb.state(0), SlotState::kEmpty);
  uint64_t chunk = 0;
  uint32_t bytes = 0;
  EXPECT_FALSE(sb.acquire(0, 1, &chunk, &bytes));
}

// The paper's §4.1.2 rule: acquire (ready → in-use) and revoke (ready → empty) both CAS, so
// exactly one of them wins every race.
TEST(SwitchboardTest, AcquireAndRevokeRaceHasExactlyOneWinner) {
  Switchboard sb = make(1);
  for (int round = 0; round < 2000; ++round) {
    ASSERT_TRUE(sb.publish(0, static_cast<uint64_t>(round), 64));
    std::atomic<int> go{0};
    bool acquired = false, revoked = false;
    std::thread worker([&] {
      while (go.load() == 0) {
      }
      uint64_t c = 0;
      uint32_t b = 0;
      acquired = sb.acquire(0, static_cast<uint64_t>(round), &c, &b);
    });
    std::thread control([&] {
      while (go.load() == 0) {
      }
      revoked = sb.revoke(0);
    });
    go.store(1);
    worker.join();
    control.join();
    ASSERT_NE(acquired, revoked) << "round " << round;
    if (acquired) {
      ASSERT_TRUE(sb.release(0));
      ASSERT_TRUE(sb.recycle(0));
    }
    ASSERT_EQ(sb.state(0), SlotState::kEmpty);
  }
}

TEST(SwitchboardTest, AnotherMappingSeesTheSameLayout) {
  Switchboard sb = make(3);
  sb.worker().pages_got.store(42);
  sb.control().submitted.store(7);
  ASSERT_TRUE(sb.publish(2, 5, 123));
  const std::string path = "/proc/self/fd/" + std::to_string(sb.fd());
  auto ro = Switchboard::open_readonly(path);
  ASSERT_TRUE(ro.is_ok()) << ro.status().to_string();
  EXPECT_EQ(ro->num_slots(), 3u);
  EXPECT_EQ(ro->header().total_chunks, 10u);
  EXPECT_EQ(std::string(ro->header().name), "test");
  EXPECT_EQ(ro->header().pid, getpid());
  EXPECT_EQ(ro->worker().pages_got.load(), 42u);
  EXPECT_EQ(ro->control().submitted.load(), 7u);
  EXPECT_EQ(ro->state(2), SlotState::kReady);
  EXPECT_EQ(ro->slot(2).chunk.load(), 5u);
  sb.worker().pages_got.store(43);  // shared, not a copy
  EXPECT_EQ(ro->worker().pages_got.load(), 43u);
}

TEST(SwitchboardTest, OpenReadonlyRefusesAFileThatIsNotASwitchboard) {
  char path[] = "/var/tmp/sluice_zicio_sb_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string junk(8192, 'x');
  ASSERT_EQ(write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  close(fd);
  auto r = Switchboard::open_readonly(path);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not a zicio switchboard"), std::string::npos);
  unlink(path);
  EXPECT_EQ(Switchboard::open_readonly("/nonexistent/zicio").status().code(),
            StatusCode::kNotFound);
}

TEST(SwitchboardTest, FutexWaitReturnsWhenTheValueDiffers) {
  std::atomic<uint32_t> word{5};
  futex_wait(&word, 4, 1000000000);  // value differs: returns at once
  futex_wake_all(&word);             // nobody waits: harmless
  SUCCEED();
}

}  // namespace
}  // namespace sluice::zicio::detail
