// para::Task<T>: the coroutine type of the partitioned runtime, and when_all().
//
//   para::Task<Result<size_t>> copy_block(File& in, File& out, uint64_t off);
//   SLUICE_CO_ASSIGN_OR_RETURN(size_t n, co_await copy_block(in, out, 0));
//
// A Task is lazy: its body starts when it is first awaited, on the thread that awaits it, and its
// caller resumes by symmetric transfer when it finishes (no recursion, no allocation beyond the
// frame). A Task is owned by whoever holds it; destroying a Task that never ran or already
// finished frees its frame. Destroying a Task while its body is suspended is a programmer error
// (its awaiter would resume a freed frame); the runtime never does it.
//
// Lifetimes (docs/para.md, "Coroutine lifetimes"): a Task's frame holds copies of its by-value
// parameters, but references and pointers it was given must outlive the whole body, not just the
// call. Capturing lambdas that return Tasks are the usual trap: the lambda object dies at the end
// of the full expression while the frame still refers to its captures. Pass state as parameters.
//
// Errors are values (Status / Result<T> as T). An exception escaping a body is kept in the frame
// and rethrown to the awaiter; a detached task whose body throws aborts the process with the
// message (Reactor::spawn).
//
// Thread safety: a Task is used by one thread at a time; all children of when_all() run on the
// awaiting thread.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace sluice::para {

template <typename T = void>
class Task;

namespace detail {

struct PromiseBase {
  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <typename P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
      return h.promise().continuation_;
    }
    void await_resume() const noexcept {}
  };
  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { error_ = std::current_exception(); }
  void rethrow_if_error() const {
    if (error_)
      std::rethrow_exception(error_);
  }

  std::coroutine_handle<> continuation_ = std::noop_coroutine();
  std::exception_ptr error_;
};

template <typename T>
struct Promise : PromiseBase {
  Task<T> get_return_object() noexcept;
  template <typename U>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value_.emplace(std::forward<U>(v));
  }
  T take() {
    rethrow_if_error();
    return std::move(*value_);
  }
  std::optional<T> value_;
};

template <>
struct Promise<void> : PromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
  void take() const { rethrow_if_error(); }
};

}  // namespace detail

template <typename T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;
  using value_type = T;

  Task() = default;
  explicit Task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  bool valid() const { return static_cast<bool>(h_); }
  bool done() const { return !h_ || h_.done(); }

  // Awaiting starts the body; the awaiter resumes with the body's value when it finishes.
  auto operator co_await() && noexcept {
    struct Awaiter {
      std::coroutine_handle<promise_type> h;
      bool await_ready() const noexcept { return !h || h.done(); }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
        h.promise().continuation_ = caller;
        return h;
      }
      T await_resume() { return h.promise().take(); }
    };
    return Awaiter{h_};
  }

  // For the runtime: the raw handle (ownership stays with the Task).
  std::coroutine_handle<promise_type> handle() const { return h_; }
  // Gives up ownership of the frame.
  std::coroutine_handle<promise_type> release() { return std::exchange(h_, {}); }

 private:
  void reset() {
    if (h_) {
      h_.destroy();
      h_ = {};
    }
  }
  std::coroutine_handle<promise_type> h_;
};

namespace detail {

template <typename T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}

// when_all machinery: every child runs inside a LatchTask whose final suspend counts down the
// shared latch; the last one to finish resumes the parent.
struct Latch {
  size_t remaining = 0;
  std::coroutine_handle<> parent;
};

class LatchTask {
 public:
  struct promise_type {
    Latch* latch = nullptr;
    LatchTask get_return_object() noexcept {
      return LatchTask(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    struct Final {
      bool await_ready() const noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        Latch* l = h.promise().latch;
        if (--l->remaining == 0)
          return l->parent;
        return std::noop_coroutine();
      }
      void await_resume() const noexcept {}
    };
    Final final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() noexcept { error = std::current_exception(); }
    std::exception_ptr error;
  };
  explicit LatchTask(std::coroutine_handle<promise_type> h) : h_(h) {}
  LatchTask(LatchTask&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  LatchTask& operator=(LatchTask&&) = delete;
  ~LatchTask() {
    if (h_)
      h_.destroy();
  }
  void start(Latch* l) {
    h_.promise().latch = l;
    h_.resume();
  }
  void rethrow_if_error() const {
    if (h_.promise().error)
      std::rethrow_exception(h_.promise().error);
  }

 private:
  std::coroutine_handle<promise_type> h_;
};

template <typename T>
using Stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <typename T>
LatchTask run_into(Task<T> t, std::optional<Stored<T>>* out) {
  if constexpr (std::is_void_v<T>) {
    co_await std::move(t);
    out->emplace();
  } else {
    out->emplace(co_await std::move(t));
  }
}

// Starts every child, then suspends the parent until the latch reaches zero.
struct LatchAwaiter {
  std::vector<LatchTask>* children;
  Latch* latch;
  bool await_ready() const noexcept { return children->empty(); }
  bool await_suspend(std::coroutine_handle<> parent) {
    latch->parent = parent;
    latch->remaining = children->size() + 1;  // +1: the parent's own hold, released below
    for (LatchTask& c : *children)
      c.start(latch);
    return --latch->remaining != 0;  // every child finished inline: do not suspend
  }
  void await_resume() const noexcept {}
};

}  // namespace detail

// Runs every task concurrently on the awaiting thread and resumes when all finished, with their
// values in order. A void task contributes std::monostate. If a child threw, the first such
// exception (in argument order) is rethrown after all finished.
template <typename T>
Task<std::vector<detail::Stored<T>>> when_all(std::vector<Task<T>> tasks) {
  std::vector<std::optional<detail::Stored<T>>> slots(tasks.size());
  std::vector<detail::LatchTask> children;
  children.reserve(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    children.push_back(detail::run_into<T>(std::move(tasks[i]), &slots[i]));
  }
  detail::Latch latch;
  co_await detail::LatchAwaiter{&children, &latch};
  for (detail::LatchTask& c : children)
    c.rethrow_if_error();
  std::vector<detail::Stored<T>> out;
  out.reserve(slots.size());
  for (auto& s : slots)
    out.push_back(std::move(*s));
  co_return out;
}

template <typename... Ts>
Task<std::tuple<detail::Stored<Ts>...>> when_all(Task<Ts>... tasks) {
  std::tuple<std::optional<detail::Stored<Ts>>...> slots;
  std::vector<detail::LatchTask> children;
  children.reserve(sizeof...(Ts));
  [&]<size_t... I>(std::index_sequence<I...>) {
    (children.push_back(detail::run_into<Ts>(std::move(tasks), &std::get<I>(slots))), ...);
  }
  (std::index_sequence_for<Ts...>{});
  detail::Latch latch;
  co_await detail::LatchAwaiter{&children, &latch};
  for (detail::LatchTask& c : children)
    c.rethrow_if_error();
  co_return std::apply(
      [](auto&... s) { return std::tuple<detail::Stored<Ts>...>(std::move(*s)...); }, slots);
}

}  // namespace sluice::para
