// The reactor's sparse buffer and file tables, and operations completed by a callback instead
// of a coroutine (what a zicio channel hosted on a reactor reads with).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "sluice/para/reactor.h"
#include "sluice/para/runtime.h"
#include "sluice/para/testing.h"

namespace sluice::para {
namespace {

bool write_file(const std::string& path, const void* data, size_t n) {
  const int w = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w < 0)
    return false;
  const bool ok = ::pwrite(w, data, n, 0) == static_cast<ssize_t>(n);
  ::close(w);
  return ok;
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// A read whose completion counts down and, at zero, resumes the awaiting test body.
struct CountedRead : IoOp {
  int* left = nullptr;
  std::coroutine_handle<>* waiter_slot = nullptr;
  static void done(IoOp* op) {
    auto* r = static_cast<CountedRead*>(op);
    if (--*r->left == 0 && *r->waiter_slot)
      local_reactor().schedule(std::exchange(*r->waiter_slot, {}));
  }
};

struct AllDone {
  const int* left;
  std::coroutine_handle<>* slot;
  bool await_ready() const noexcept { return *left == 0; }
  void await_suspend(std::coroutine_handle<> h) const noexcept { *slot = h; }
  void await_resume() const noexcept {}
};

PARA_TEST(RingTablesTest, CallbackReadsIntoRegisteredBuffersAndFilesReturnTheFilesBytes) {
  Reactor& r = local_reactor();
  if (!r.ring_info().buffer_table || !r.ring_info().file_table) {
    SUCCEED() << "this kernel has no sparse io_uring tables";
    co_return;
  }
  constexpr size_t kPiece = 32 << 10;
  const std::string path = testing::test_file_path("tables");
  std::vector<unsigned char> bytes(2 * kPiece);
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<unsigned char>(i * 131 + 7);
  if (!write_file(path, bytes.data(), bytes.size())) {
    ADD_FAILURE() << "cannot write " << path;
    co_return;
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ADD_FAILURE() << "cannot reopen " << path;
    co_return;
  }
  std::unique_ptr<void, FreeDeleter> mem(std::aligned_alloc(4096, 2 * kPiece));
  auto* base = static_cast<std::byte*>(mem.get());
  std::memset(base, 0, 2 * kPiece);
  const iovec iov[2] = {{base, kPiece}, {base + kPiece, kPiece}};
  Result<uint32_t> buf = r.register_buffers(iov, 2);
  Result<uint32_t> file = r.register_files(&fd, 1);
  if (!buf.is_ok() || !file.is_ok()) {
    ADD_FAILURE() << buf.status().to_string() << " / " << file.status().to_string();
    co_return;
  }
  EXPECT_GE(*buf, 1u) << "entry 0 is the arena's";

  int left = 2;
  std::coroutine_handle<> waiter;
  CountedRead reads[2];
  for (uint32_t i = 0; i < 2; ++i) {
    CountedRead& op = reads[i];
    op.reactor = &r;
    op.left = &left;
    op.waiter_slot = &waiter;
    op.on_complete = &CountedRead::done;
    io_uring_sqe* sqe = r.get_sqe();
    // Piece i of the file into buffer 1 − i: the entries, not the addresses, must match.
    io_uring_prep_read_fixed(sqe, static_cast<int>(*file), base + (1 - i) * kPiece, kPiece,
                             i * kPiece, static_cast<int>(*buf + (1 - i)));
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data(sqe, &op);
    r.track(&op);
  }
  co_await AllDone{&left, &waiter};
  EXPECT_EQ(reads[0].res, static_cast<int32_t>(kPiece));
  EXPECT_EQ(reads[1].res, static_cast<int32_t>(kPiece));
  EXPECT_EQ(std::memcmp(base + kPiece, bytes.data(), kPiece), 0);
  EXPECT_EQ(std::memcmp(base, bytes.data() + kPiece, kPiece), 0);

  // Entries given back are handed out again; a run longer than the table is refused.
  r.unregister_buffers(*buf, 2);
  r.unregister_files(*file, 1);
  Result<uint32_t> again = r.register_buffers(iov, 2);
  EXPECT_EQ(again.value_or(~0u), *buf);
  if (again.is_ok())
    r.unregister_buffers(*again, 2);
  std::vector<iovec> many(4096, iov[0]);
  Result<uint32_t> too_many = r.register_buffers(many.data(), static_cast<uint32_t>(many.size()));
  EXPECT_EQ(too_many.status().code(), StatusCode::kResourceExhausted);
  std::vector<int> fds(4096, fd);
  Result<uint32_t> too_many_files = r.register_files(fds.data(), static_cast<uint32_t>(fds.size()));
  EXPECT_EQ(too_many_files.status().code(), StatusCode::kResourceExhausted);
  ::close(fd);
  std::filesystem::remove(path);
}

// A registered entry that is emptied refuses reads through it: nothing reads into memory its
// owner gave back.
PARA_TEST(RingTablesTest, AnEmptiedBufferEntryRefusesFixedReads) {
  Reactor& r = local_reactor();
  if (!r.ring_info().buffer_table) {
    SUCCEED() << "this kernel has no sparse io_uring tables";
    co_return;
  }
  const std::string path = testing::test_file_path("emptied");
  const std::vector<char> page(4096, 'z');
  if (!write_file(path, page.data(), page.size())) {
    ADD_FAILURE() << "cannot write " << path;
    co_return;
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  std::unique_ptr<void, FreeDeleter> mem(std::aligned_alloc(4096, 4096));
  const iovec iov{mem.get(), 4096};
  Result<uint32_t> buf = r.register_buffers(&iov, 1);
  if (!buf.is_ok() || fd < 0) {
    ADD_FAILURE() << buf.status().to_string();
    co_return;
  }
  r.unregister_buffers(*buf, 1);
  int left = 1;
  std::coroutine_handle<> waiter;
  CountedRead op;
  op.reactor = &r;
  op.left = &left;
  op.waiter_slot = &waiter;
  op.on_complete = &CountedRead::done;
  io_uring_sqe* sqe = r.get_sqe();
  io_uring_prep_read_fixed(sqe, fd, mem.get(), 4096, 0, static_cast<int>(*buf));
  io_uring_sqe_set_data(sqe, &op);
  r.track(&op);
  co_await AllDone{&left, &waiter};
  EXPECT_LT(op.res, 0) << "a read through an emptied entry returned " << op.res;
  ::close(fd);
  std::filesystem::remove(path);
}

// The kernel refuses a file table longer than RLIMIT_NOFILE: a runtime started under a lower
// limit has no file table, and says so (hosted zicio channels then read on plain descriptors).
TEST(RingTablesTest, AFileLimitBelowTheTableIsANoteNotAFailure) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the child starts threads after a fork, which ThreadSanitizer does not follow";
#endif
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    rlimit lim{256, 256};
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
      _exit(10);
    RuntimeOptions o = testing::testing_options();
    o.cores.resize(1);
    Result<std::unique_ptr<Runtime>> rt = Runtime::start(o);
    if (!rt.is_ok())
      _exit(11);
    if ((*rt)->reactor(0).ring_info().file_table)
      _exit(12);
    bool noted = false;
    for (const std::string& n : (*rt)->notes())
      noted = noted || n.find("no sparse buffer or file table") != std::string::npos;
    (*rt)->stop();
    _exit(noted ? 0 : 13);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child step that failed: " << WEXITSTATUS(status);
}

}  // namespace
}  // namespace sluice::para
