// sluice::Status — the outcome of an operation that can fail: OK, or a code with a message a
// user can act on ("cannot open /data/t.seg: permission denied; run as root or …").
//
// Errors are values in sluice: no exception crosses a module boundary. Programmer errors are
// assertions (SLUICE_ASSERT), not statuses.
//
// Thread safety: a Status is a value; distinct objects may be used from distinct threads.
// An OK status holds no allocation, so returning OK costs a pointer.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace sluice {

// The most specific code wins: callers branch on it, users read the message.
enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,     // the caller passed something malformed or out of range
  kNotFound,            // a named thing (file, knob, queue, row) does not exist
  kAlreadyExists,       // creating something that exists
  kFailedPrecondition,  // the system is not in a state where the call can run
  kOutOfRange,          // a position past the end (end of stream, past a file's size)
  kResourceExhausted,   // out of memory, buffers, disk, locked-memory budget
  kUnavailable,         // a server or device is unreachable; retrying may help
  kDeadlineExceeded,    // a timed wait ran out
  kPermissionDenied,    // the OS refused for lack of privilege
  kCancelled,           // the operation was cancelled by its caller
  kUnimplemented,       // not supported here (kernel feature, platform)
  kDataLoss,            // data was corrupted or lost
  kIoError,             // a system call on a file or device failed
  kInternal,            // an invariant broke: a bug in sluice
};

// "invalid argument", "not found", …
std::string_view status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message);

  static Status ok() { return {}; }

  bool is_ok() const { return state_ == nullptr; }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  // Empty for OK.
  const std::string& message() const;
  // "invalid argument: knob 'x' …", or "ok".
  std::string to_string() const;

  // Returns a copy whose message is "<context>: <message>", keeping the code. For OK returns OK.
  Status with_context(std::string_view context) const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code() == b.code() && a.message() == b.message();
  }

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  // Shared because statuses are copied far more often than created, and never mutated.
  std::shared_ptr<const State> state_;
};

// Constructors that read like the code they produce.
Status invalid_argument(std::string message);
Status not_found(std::string message);
Status already_exists(std::string message);
Status failed_precondition(std::string message);
Status out_of_range(std::string message);
Status resource_exhausted(std::string message);
Status unavailable(std::string message);
Status deadline_exceeded(std::string message);
Status permission_denied(std::string message);
Status cancelled(std::string message);
Status unimplemented(std::string message);
Status data_loss(std::string message);
Status io_error(std::string message);
Status internal_error(std::string message);

// A Status from errno after a failed system call: the code follows the errno (EACCES →
// permission denied, ENOENT → not found, ENOMEM → resource exhausted, …) and the message is
// "<what>: <strerror(err)>".
Status errno_status(int err, std::string_view what);

}  // namespace sluice

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define SLUICE_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::sluice::Status sluice_status_tmp_ = (expr); \
    if (!sluice_status_tmp_.is_ok()) {            \
      return sluice_status_tmp_;                  \
    }                                             \
  } while (false)

// The same inside a coroutine: errors travel as values, never as exceptions.
#define SLUICE_CO_RETURN_IF_ERROR(expr)           \
  do {                                            \
    ::sluice::Status sluice_status_tmp_ = (expr); \
    if (!sluice_status_tmp_.is_ok()) {            \
      co_return sluice_status_tmp_;               \
    }                                             \
  } while (false)

// A programmer error: the condition must hold whatever the input. Aborts with the message in
// every build mode, because continuing past a broken invariant corrupts data.
#define SLUICE_ASSERT(cond, msg)                                       \
  do {                                                                 \
    if (!(cond)) [[unlikely]] {                                        \
      ::sluice::detail::assert_failed(#cond, msg, __FILE__, __LINE__); \
    }                                                                  \
  } while (false)

namespace sluice::detail {
[[noreturn]] void assert_failed(const char* cond, const char* msg, const char* file, int line);
}  // namespace sluice::detail
