#include "sluice/para/task.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace sluice::para {
namespace {

// Drives a task that never suspends on anything external (no reactor needed).
template <typename T>
T run_sync(Task<T> t) {
  std::optional<T> out;
  auto driver = [](Task<T> inner, std::optional<T>* o) -> Task<void> {
    o->emplace(co_await std::move(inner));
  };
  Task<void> d = driver(std::move(t), &out);
  d.handle().resume();
  EXPECT_TRUE(d.done());
  return std::move(*out);
}

Task<int> leaf(int x) {
  co_return x * 2;
}
Task<int> chain(int depth) {
  if (depth == 0)
    co_return 1;
  int below = co_await chain(depth - 1);
  co_return below + co_await leaf(1);
}
Task<int> thrower() {
  throw std::runtime_error("boom");
  co_return 0;
}
Task<void> nothing(int* hits) {
  ++*hits;
  co_return;
}

TEST(TaskTest, IsLazyAndReturnsItsValue) {
  int hits = 0;
  Task<void> t = nothing(&hits);
  EXPECT_EQ(hits, 0);
  EXPECT_FALSE(t.done());
  t.handle().resume();
  EXPECT_EQ(hits, 1);
  EXPECT_EQ(run_sync(leaf(21)), 42);
}

TEST(TaskTest, DeepChainsUseSymmetricTransfer) {
#if defined(__SANITIZE_ADDRESS__)
  // Sanitizer builds do not turn the transfer into a tail call, so each level takes stack.
  constexpr int kDepth = 200;
#else
  constexpr int kDepth = 10000;
#endif
  EXPECT_EQ(run_sync(chain(kDepth)), 1 + 2 * kDepth);
}

TEST(TaskTest, ExceptionsReachTheAwaiter) {
  auto wrapper = []() -> Task<std::string> {
    try {
      co_await thrower();
    } catch (const std::runtime_error& e) {
      co_return std::string(e.what());
    }
    co_return std::string("no throw");
  };
  EXPECT_EQ(run_sync(wrapper()), "boom");
}

TEST(TaskTest, WhenAllKeepsOrder) {
  std::vector<Task<int>> ts;
  for (int i = 0; i < 5; ++i)
    ts.push_back(leaf(i));
  std::vector<int> v = run_sync(when_all(std::move(ts)));
  EXPECT_EQ(v, (std::vector<int>{0, 2, 4, 6, 8}));
  int hits = 0;
  auto [a, b] = run_sync(when_all(leaf(5), nothing(&hits)));
  EXPECT_EQ(a, 10);
  (void)b;
  EXPECT_EQ(hits, 1);
  EXPECT_TRUE(run_sync(when_all(std::vector<Task<int>>{})).empty());
}

TEST(TaskTest, DestroyingAnUnstartedTaskFreesIt) {
  int hits = 0;
  { Task<void> t = nothing(&hits); }
  EXPECT_EQ(hits, 0);
}

}  // namespace
}  // namespace sluice::para
