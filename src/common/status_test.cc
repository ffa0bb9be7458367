#include "sluice/common/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <string>

#include "sluice/common/result.h"

namespace sluice {
namespace {

TEST(Status, DefaultIsOkAndCarriesNothing) {
  Status s;
  EXPECT_TRUE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.to_string(), "ok");
  EXPECT_EQ(sizeof(Status), sizeof(std::shared_ptr<int>));
}

TEST(Status, ErrorKeepsCodeAndMessage) {
  Status s = not_found("table t.seg");
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "table t.seg");
  EXPECT_EQ(s.to_string(), "not found: table t.seg");
}

TEST(Status, WithContextPrefixesMessageAndKeepsCode) {
  Status s = invalid_argument("bad value").with_context("config.yaml");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "config.yaml: bad value");
  EXPECT_TRUE(Status().with_context("ignored").is_ok());
}

TEST(Status, ErrnoMapsToTheMostSpecificCode) {
  EXPECT_EQ(errno_status(ENOENT, "open x").code(), StatusCode::kNotFound);
  EXPECT_EQ(errno_status(EACCES, "open x").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(errno_status(ENOSPC, "write x").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(errno_status(ECONNREFUSED, "connect").code(), StatusCode::kUnavailable);
  EXPECT_EQ(errno_status(EIO, "read").code(), StatusCode::kIoError);
  EXPECT_NE(errno_status(ENOENT, "open /nope").message().find("/nope"), std::string::npos);
}

TEST(Status, EqualityComparesCodeAndMessage) {
  EXPECT_EQ(io_error("a"), io_error("a"));
  EXPECT_FALSE(io_error("a") == io_error("b"));
  EXPECT_FALSE(io_error("a") == data_loss("a"));
  EXPECT_EQ(Status(), Status::ok());
}

Result<int> half(int v) {
  if (v % 2 != 0) {
    return invalid_argument("odd");
  }
  return v / 2;
}

Result<int> quarter(int v) {
  SLUICE_ASSIGN_OR_RETURN(int h, half(v));
  SLUICE_ASSIGN_OR_RETURN(h, half(h));
  return h;
}

Status check_even(int v) {
  SLUICE_RETURN_IF_ERROR(half(v).status());
  return {};
}

TEST(Result, HoldsValueOrStatus) {
  Result<int> ok = half(8);
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(*ok, 4);
  EXPECT_TRUE(ok.status().is_ok());

  Result<int> bad = half(3);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.value_or(-1), -1);
}

TEST(Result, MacrosPropagateErrorsAndMoveValues) {
  EXPECT_EQ(*quarter(8), 2);
  EXPECT_EQ(quarter(6).status().message(), "odd");
  EXPECT_TRUE(check_even(2).is_ok());
  EXPECT_EQ(check_even(3).code(), StatusCode::kInvalidArgument);
}

TEST(Result, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(ResultDeathTest, ValueOfErrorAborts) {
  Result<int> bad = half(1);
  EXPECT_DEATH((void)bad.value(), "value\\(\\) of an error Result");
}

}  // namespace
}  // namespace sluice
