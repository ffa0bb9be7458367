#include "sluice/para/file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "sluice/para/testing.h"

namespace sluice::para {
namespace {

PARA_TEST(FileTest, WritesAndReadsBackWithODirect) {
  const std::string path = testing::test_file_path("rw");
  Result<File> f = co_await File::open(path, {.write = true, .create = true, .truncate = true});
  if (!f.is_ok()) {
    ADD_FAILURE() << f.status().to_string();
    co_return;
  }
  Reactor& r = local_reactor();
  Buffer out = r.allocate(8192);
  Buffer in = r.allocate(8192);
  for (size_t i = 0; i < out.size(); ++i)
    out.data()[i] = static_cast<std::byte>(i * 7);
  Result<size_t> w = co_await f->write_at(0, out.span());
  EXPECT_EQ(w.value_or(0), 8192u) << w.status().to_string();
  Result<size_t> n = co_await f->read_at(0, in.span());
  EXPECT_EQ(n.value_or(0), 8192u) << n.status().to_string();
  EXPECT_EQ(std::memcmp(in.data(), out.data(), 8192), 0);
  EXPECT_EQ(f->size().value_or(0), 8192u);
  EXPECT_TRUE((co_await f->sync()).is_ok());
  // Reading past the end returns 0 bytes, not an error.
  Result<size_t> eof = co_await f->read_at(1 << 20, in.span());
  EXPECT_EQ(eof.value_or(1), 0u);
  f->close();
  std::filesystem::remove(path);
}

PARA_TEST(FileTest, MisalignedDirectReadIsAClearError) {
  const std::string path = testing::test_file_path("misaligned");
  Result<File> f = co_await File::open(path, {.write = true, .create = true, .truncate = true});
  if (!f.is_ok() || !f->direct()) {
    SUCCEED() << "no O_DIRECT here";  // GTEST_SKIP cannot return from a coroutine
    co_return;
  }
  Buffer b = local_reactor().allocate(8192);
  Result<size_t> n = co_await f->read_at(100, b.span().subspan(0, 4096));
  EXPECT_EQ(n.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(n.status().message().find("aligned"), std::string::npos);
  std::filesystem::remove(path);
}

PARA_TEST(FileTest, OpeningAMissingFileIsNotFound) {
  Result<File> f = co_await File::open("/nonexistent/para/file", {});
  EXPECT_EQ(f.status().code(), StatusCode::kNotFound);
  EXPECT_NE(f.status().message().find("/nonexistent/para/file"), std::string::npos);
}

PARA_TEST(FileTest, CancelledTokenFailsReadsAtOnce) {
  const std::string path = testing::test_file_path("cancel");
  Result<File> f = co_await File::open(path, {.write = true, .create = true, .truncate = true});
  if (!f.is_ok()) {
    ADD_FAILURE() << f.status().to_string();
    co_return;
  }
  CancelToken token;
  token.cancel();
  Buffer b = local_reactor().allocate(4096);
  Result<size_t> n = co_await f->read_at(0, b.span(), &token);
  EXPECT_EQ(n.status().code(), StatusCode::kCancelled);
  std::filesystem::remove(path);
}

PARA_TEST(FileTest, FilesystemWithoutODirectFallsBackOrFails) {
  // tmpfs refused O_DIRECT before Linux 6.6; the refusal is simulated so the test holds on
  // every kernel.
  const std::string path = testing::test_file_path("nodirect");
  Result<File> f = co_await File::open(
      path, {.write = true, .create = true, .truncate = true, .simulate_no_direct = true});
  EXPECT_TRUE(f.is_ok()) << f.status().to_string();
  if (f.is_ok()) {
    EXPECT_FALSE(f->direct());
    std::byte b[10] = {};
    Result<size_t> n = co_await f->write_at(3, std::span<const std::byte>(b));
    EXPECT_EQ(n.value_or(0), 10u);
  }
  Result<File> strict = co_await File::open(
      path, {.write = true, .require_direct = true, .simulate_no_direct = true});
  EXPECT_EQ(strict.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(strict.status().message().find("O_DIRECT"), std::string::npos);
  Result<File> blocking = File::open_blocking(path, {.simulate_no_direct = true});
  EXPECT_TRUE(blocking.is_ok() && !blocking->direct());
  std::filesystem::remove(path);
}

// With para.idle=sleep, a reactor with a file read in flight keeps polling for its completion
// (para.io_spin_us) instead of sleeping and being woken per completion.
Task<void> read_back_to_back() {
  const std::string path = testing::test_file_path("spin");
  Result<File> f = co_await File::open(path, {.write = true, .create = true, .truncate = true});
  if (!f.is_ok()) {
    ADD_FAILURE() << f.status().to_string();
    co_return;
  }
  Reactor& r = local_reactor();
  Buffer buf = r.allocate(1 << 20);
  std::memset(buf.data(), 7, buf.size());
  EXPECT_EQ((co_await f->write_at(0, buf.span())).value_or(0), buf.size());
  const uint64_t sleeps_before = r.stats().sleeps;
  for (int i = 0; i < 200; ++i) {
    Result<size_t> n =
        co_await f->read_at(static_cast<uint64_t>(i % 256) * 4096, buf.span().subspan(0, 4096));
    EXPECT_EQ(n.value_or(0), 4096u);
  }
  EXPECT_EQ(r.stats().sleeps, sleeps_before) << "the reactor slept with a read in flight";
  f->close();
  std::filesystem::remove(path);
}

TEST(FileTest, AReactorPollsInsteadOfSleepingWhileAReadIsInFlight) {
  RuntimeOptions o = testing::testing_options();
  o.idle = IdleMode::kSleep;
  o.idle_spin = std::chrono::microseconds(0);  // with nothing in flight it would sleep at once
  o.io_spin = std::chrono::seconds(1);         // far above any read's latency
  testing::run_on_reactor(&read_back_to_back, o);
}

}  // namespace
}  // namespace sluice::para
