// Test helpers for code that runs on para: a GoogleTest case whose body is a coroutine running
// on a reactor of a fresh runtime (like Seastar's SEASTAR_TEST_CASE).
//
//   PARA_TEST(FileTest, ReadsBack) {
//     auto f = co_await para::File::open(path, {});
//     EXPECT_TRUE(f.is_ok());
//     co_return;
//   }
//
// The body runs on the first core of a runtime started with testing_options() (every allowed
// core, at most 2, 16 MiB arenas) and the runtime is stopped after it. Use EXPECT_* in the body;
// ASSERT_* cannot `return` from a coroutine, so write `if (!x) { ADD_FAILURE(); co_return; }`.
//
// Thread safety: call from the test's main thread.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "sluice/para/runtime.h"
#include "sluice/para/task.h"

namespace sluice::para::testing {

RuntimeOptions testing_options();

// A path for a test file named `name` (made unique per process) under the build tree, ctest's
// working directory: /tmp may be tmpfs, which has no O_DIRECT.
std::string test_file_path(const char* name);

// Starts a runtime with `options`, runs body() on its first core, stops the runtime. Reports a
// failure (and returns) when the runtime cannot start.
void run_on_reactor(Task<void> (*body)(), const RuntimeOptions& options = testing_options());

}  // namespace sluice::para::testing

#define PARA_TEST(suite, name)                                                 \
  static ::sluice::para::Task<void> para_test_body_##suite##_##name();         \
  TEST(suite, name) {                                                          \
    ::sluice::para::testing::run_on_reactor(&para_test_body_##suite##_##name); \
  }                                                                            \
  static ::sluice::para::Task<void> para_test_body_##suite##_##name()
