#include "sluice/para/arena.h"

#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <set>

namespace sluice::para {
namespace {

TEST(ArenaTest, AllocatesAlignedBlocksAndReusesFreedOnes) {
  Result<Arena> a = Arena::create({.size = size_t{4} << 20, .lock = false});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  void* p = a->allocate(4096, 4096);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 4096, 0u);
  EXPECT_TRUE(a->contains(p, 4096));
  void* q = a->allocate(100);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % 64, 0u);
  a->free(p, 4096, 4096);
  EXPECT_EQ(a->allocate(3000, 4096), p);  // same size class comes back from the free list
  EXPECT_EQ(a->bytes_in_use(), 4096u + 128u);
}

TEST(ArenaTest, ExhaustionReturnsNull) {
  Result<Arena> a = Arena::create({.size = size_t{2} << 20, .lock = false});
  ASSERT_TRUE(a.is_ok());
  std::set<void*> blocks;
  for (;;) {
    void* p = a->allocate(size_t{256} << 10, 4096);
    if (p == nullptr)
      break;
    EXPECT_TRUE(blocks.insert(p).second);
  }
  EXPECT_EQ(blocks.size(), 8u);
  EXPECT_EQ(a->allocate(size_t{4} << 20), nullptr);
}

TEST(ArenaTest, MissingHugePagesFallsBackToThpWithANote) {
  Result<Arena> a = Arena::create({.size = size_t{4} << 20,
                                   .huge_pages = HugePages::kHugetlb,
                                   .lock = false,
                                   .simulate_no_hugetlb = true});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_NE(a->backing(), ArenaBacking::kHugetlb);
  ASSERT_FALSE(a->notes().empty());
  EXPECT_NE(a->notes().front().find("nr_hugepages"), std::string::npos) << a->notes().front();
}

TEST(ArenaTest, RequiredHugetlbPagesMissingIsAClearError) {
  Result<Arena> a = Arena::create({.size = size_t{4} << 20,
                                   .huge_pages = HugePages::kHugetlb,
                                   .require_huge_pages = true,
                                   .lock = false,
                                   .simulate_no_hugetlb = true});
  ASSERT_FALSE(a.is_ok());
  EXPECT_EQ(a.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(a.status().message().find("sysctl vm.nr_hugepages"), std::string::npos)
      << a.status().message();
}

TEST(ArenaTest, HugePagesOffUsesSmallPages) {
  Result<Arena> a = Arena::create({.size = size_t{2} << 20, .huge_pages = HugePages::kOff});
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->backing(), ArenaBacking::kSmallPages);
  EXPECT_NE(a->describe().find("4 KiB pages"), std::string::npos);
}

TEST(ArenaTest, LocksAndBindsWhenAsked) {
  Result<Arena> a = Arena::create({.size = size_t{2} << 20, .numa_node = 0, .lock = true});
  ASSERT_TRUE(a.is_ok());
  // Either locked, or a note says why not (RLIMIT_MEMLOCK without CAP_IPC_LOCK).
  bool noted = false;
  for (const auto& n : a->notes())
    noted = noted || n.find("mlock") != std::string::npos;
  EXPECT_TRUE(a->locked() || noted);
}

// A child process without CAP_IPC_LOCK and with a 1 MiB RLIMIT_MEMLOCK creates a 4 MiB locked
// arena: it must fall back to an unlocked arena with a note naming the limit, or fail cleanly
// when the lock is required.
TEST(ArenaTest, MemlockLimitFallsBackWithANote) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers replace mlock with a no-op that succeeds";
#endif
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &hdr, data) != 0)
      _exit(10);
    data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
    if (syscall(SYS_capset, &hdr, data) != 0)
      _exit(11);
    rlimit lim{size_t{1} << 20, size_t{1} << 20};
    if (setrlimit(RLIMIT_MEMLOCK, &lim) != 0)
      _exit(12);
    Result<Arena> a = Arena::create({.size = size_t{4} << 20, .lock = true});
    if (!a.is_ok() || a->locked())
      _exit(13);
    bool noted = false;
    for (const auto& n : a->notes())
      noted = noted || n.find("RLIMIT_MEMLOCK 1 MiB") != n.npos;
    if (!noted)
      _exit(14);
    Result<Arena> strict =
        Arena::create({.size = size_t{4} << 20, .lock = true, .require_lock = true});
    if (strict.is_ok() || strict.status().code() != StatusCode::kResourceExhausted)
      _exit(15);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child step that failed: " << WEXITSTATUS(status);
}

TEST(ArenaTest, ZeroSizeIsInvalid) {
  Result<Arena> a = Arena::create({.size = 0});
  ASSERT_FALSE(a.is_ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
}

TEST(ArenaTest, ParsesHugePagesNames) {
  EXPECT_EQ(*parse_huge_pages("thp"), HugePages::kThp);
  EXPECT_FALSE(parse_huge_pages("yes").is_ok());
}

}  // namespace
}  // namespace sluice::para
