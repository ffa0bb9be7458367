// sluice::Result<T> — a value of type T, or the Status that says why there is none.
//
//   Result<File> open_segment(const std::string& path);
//   SLUICE_ASSIGN_OR_RETURN(File f, open_segment(path));
//
// Accessing the value of an error result is a programmer error and aborts.
#pragma once

#include <type_traits>
#include <utility>
#include <variant>

#include "sluice/common/status.h"

namespace sluice {

template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cvref_t<T>, Status>, "use Status, not Result<Status>");

 public:
  // Implicit on purpose, so `return value;` and `return not_found(…);` both read naturally.
  Result(T value) : data_(std::in_place_index<0>, std::move(value)) {}        // NOLINT
  Result(Status status) : data_(std::in_place_index<1>, std::move(status)) {  // NOLINT
    SLUICE_ASSERT(!std::get<1>(data_).is_ok(), "a Result needs a value or a non-OK status");
  }

  bool is_ok() const { return data_.index() == 0; }
  explicit operator bool() const { return is_ok(); }

  // OK when there is a value.
  Status status() const { return is_ok() ? Status() : std::get<1>(data_); }

  T& value() & {
    check();
    return std::get<0>(data_);
  }
  const T& value() const& {
    check();
    return std::get<0>(data_);
  }
  T&& value() && {
    check();
    return std::get<0>(std::move(data_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return is_ok() ? std::get<0>(data_) : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void check() const { SLUICE_ASSERT(is_ok(), "value() of an error Result; test is_ok() first"); }
  std::variant<T, Status> data_;
};

}  // namespace sluice

#define SLUICE_CONCAT_INNER_(a, b) a##b
#define SLUICE_CONCAT_(a, b) SLUICE_CONCAT_INNER_(a, b)

// SLUICE_ASSIGN_OR_RETURN(decl, expr): evaluates `expr` (a Result); on error returns its status
// from the enclosing function, else moves the value into `decl` (e.g. `auto x` or `y`).
#define SLUICE_ASSIGN_OR_RETURN(decl, expr) \
  SLUICE_ASSIGN_OR_RETURN_IMPL_(SLUICE_CONCAT_(sluice_result_, __LINE__), decl, expr, return )

// The same inside a coroutine.
#define SLUICE_CO_ASSIGN_OR_RETURN(decl, expr) \
  SLUICE_ASSIGN_OR_RETURN_IMPL_(SLUICE_CONCAT_(sluice_result_, __LINE__), decl, expr, co_return )

#define SLUICE_ASSIGN_OR_RETURN_IMPL_(tmp, decl, expr, ret) \
  auto tmp = (expr);                                        \
  if (!tmp.is_ok()) {                                       \
    ret tmp.status();                                       \
  }                                                         \
  decl = std::move(tmp).value()
