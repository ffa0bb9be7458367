// Optuna's TPE sampler as a wayfinder searcher: a python3 child process running
// tools/optuna_bridge.py, spoken to in JSON lines over a socket pair on its stdin and stdout.
//
// Why a child process and not an embedded interpreter: Optuna is Python, and a crash, a hang or
// an import failure in it must cost the study a clear error, not the sluice process. The child
// lives exactly as long as the searcher (SIGKILL and waitpid in the destructor) and ends by
// itself when its stdin closes, so it cannot outlive a sluice killed with SIGKILL either.
//
// Protocol (one JSON object per line; the bridge's docstring has the full form):
//   init {seed, failures, params} -> {ok, optuna}   the space, pinned values included
//   observe {config, value|null}               no reply: observations stream
//   reset                                      no reply: forget every observation
//   ask {n}              -> {ok, configs, notes}
// Observations the study replays on resume reach Optuna as trials of their own; proposals are
// told to the trial that asked for them. A failed trial is told as worse than any measured one:
// with Optuna's own FAIL state TPE never sees a value that always crashes, and its prior then
// makes exactly that value the most attractive (on the synthetic suite's small space 43 of 60
// trials crashed that way, against 8 of 60). The searcher keeps the history it sent: when the
// study's history differs from it (the Equation 4 scores of earlier trials change as min-max ranges
// grow), it resets the bridge and sends the history again, so Optuna ranks what sluice ranks.
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "sluice/common/clock.h"
#include "sluice/common/knobs.h"
#include "sluice/common/log.h"
#include "wayfinder/searchers.h"

extern char** environ;

namespace sluice::wf {
namespace {

#ifndef SLUICE_WF_OPTUNA_BRIDGE
#define SLUICE_WF_OPTUNA_BRIDGE "tools/optuna_bridge.py"
#endif

const StringKnob kBridgeScript({.name = "wayfinder.optuna_bridge",
                                .default_value = SLUICE_WF_OPTUNA_BRIDGE,
                                .stage = KnobStage::kRuntime,
                                .help = "the script --search optuna runs (tools/optuna_bridge.py "
                                        "of the source tree by default)"});
const StringKnob kPython({.name = "wayfinder.optuna_python",
                          .default_value = "python3",
                          .stage = KnobStage::kRuntime,
                          .help = "the Python interpreter that runs the Optuna bridge (searched "
                                  "on PATH unless it contains a slash)"});
const EnumKnob kFailures({.name = "wayfinder.optuna_failures",
                          .default_value = "worst",
                          .values = {"worst", "fail"},
                          .stage = KnobStage::kRuntime,
                          .help = "what a failed trial tells TPE: worst (below every objective, "
                                  "so it learns crash regions) or fail (Optuna's FAIL state, "
                                  "left out of TPE's model)"});
const FloatKnob kTimeout({.name = "wayfinder.optuna_timeout_s",
                          .default_value = 120,
                          .min = 1,
                          .max = 86400,
                          .stage = KnobStage::kRuntime,
                          .help = "seconds the Optuna bridge may take to answer one request "
                                  "(start-up with Optuna's import included)"});

using nlohmann::json;

constexpr size_t kStderrTail = 4096;

// The child process and its channel. Not thread-safe (neither are searchers).
class Bridge {
 public:
  static Result<std::unique_ptr<Bridge>> start(const std::string& python, const std::string& script,
                                               double timeout_s) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      return errno_status(errno, "optuna bridge: socketpair");
    int errp[2];
    if (pipe2(errp, O_CLOEXEC) != 0) {
      const int e = errno;
      close(sv[0]);
      close(sv[1]);
      return errno_status(e, "optuna bridge: pipe2");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    // dup2 clears close-on-exec on the copies only: the child gets fds 0-2 and nothing else of
    // ours, and no other child sluice starts inherits the channel.
    posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD})
      sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    // Its own process group: a Ctrl-C at the terminal is for sluice, which stops the study and
    // then the bridge; the bridge must not die mid-answer first.
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(
        &attr,
        static_cast<short>(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP));
    std::vector<std::string> args = {python, script};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = python.find('/') == std::string::npos
                       ? posix_spawnp(&pid, python.c_str(), &fa, &attr, argv.data(), environ)
                       : posix_spawn(&pid, python.c_str(), &fa, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(sv[1]);
    close(errp[1]);
    if (rc != 0) {
      close(sv[0]);
      close(errp[0]);
      return unavailable(
          fmt::format("--search optuna cannot run '{}': {}; install python3 with python3-optuna, "
                      "or point the knob wayfinder.optuna_python at an interpreter that has it",
                      python, std::strerror(rc)));
    }
    return std::unique_ptr<Bridge>(new Bridge(pid, sv[0], errp[0], timeout_s));
  }

  ~Bridge() {
    close(sock_);
    close(err_);
    if (exited_)
      return;  // reaped already; the pid may belong to another process by now
    // The whole group: whatever the bridge started goes with it.
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }

  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  Status send(const json& request) {
    if (!dead_.is_ok())
      return dead_;
    const std::string line = request.dump() + "\n";
    size_t off = 0;
    const int64_t deadline = deadline_ns();
    while (off < line.size()) {
      const ssize_t w =
          ::send(sock_, line.data() + off, line.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        off += static_cast<size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        SLUICE_RETURN_IF_ERROR(wait_for(POLLOUT, deadline));
        continue;
      }
      return fail(fmt::format("the optuna bridge stopped reading ({})", std::strerror(errno)));
    }
    return {};
  }

  // Sends `request` and reads its one-line reply.
  Result<json> call(const json& request) {
    SLUICE_RETURN_IF_ERROR(send(request));
    const int64_t deadline = deadline_ns();
    for (;;) {
      if (auto nl = in_.find('\n'); nl != std::string::npos) {
        const std::string line = in_.substr(0, nl);
        in_.erase(0, nl + 1);
        json reply = json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (!reply.is_object() || !reply.contains("ok")) {
          return fail(fmt::format("the optuna bridge answered '{}', not a JSON reply",
                                  line.substr(0, 200)));
        }
        if (reply.value("ok", false) != true) {
          const std::string error = reply.value("error", std::string("no reason given"));
          if (reply.value("code", std::string()) == "unavailable")
            return unavailable("--search optuna: " + error);
          return internal_error(fmt::format("the optuna bridge failed: {}{}", error, tail_text()));
        }
        return reply;
      }
      SLUICE_RETURN_IF_ERROR(wait_for(POLLIN, deadline));
      char buf[8192];
      const ssize_t r = read(sock_, buf, sizeof buf);
      if (r > 0) {
        in_.append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno == ECONNRESET) {
        return fail("the optuna bridge exited");
      } else if (errno != EINTR && errno != EAGAIN) {
        return fail(fmt::format("reading from the optuna bridge: {}", std::strerror(errno)));
      }
    }
  }

  const Status& dead() const { return dead_; }

 private:
  Bridge(pid_t pid, int sock, int err, double timeout_s)
      : pid_(pid), sock_(sock), err_(err), timeout_s_(timeout_s) {}

  int64_t deadline_ns() const { return monotonic_ns() + static_cast<int64_t>(timeout_s_ * 1e9); }

  // Waits until the channel is ready for `events`, draining the child's stderr meanwhile (a
  // full stderr pipe would block the child, and its tail explains a failure).
  Status wait_for(short events, int64_t deadline) {
    for (;;) {
      const int64_t left_ms = (deadline - monotonic_ns()) / 1'000'000;
      if (left_ms <= 0) {
        return fail(fmt::format(
            "the optuna bridge did not answer within {} s (knob wayfinder.optuna_timeout_s)",
            timeout_s_));
      }
      pollfd fds[2] = {{.fd = sock_, .events = events, .revents = 0},
                       {.fd = err_, .events = POLLIN, .revents = 0}};
      const nfds_t nfds = err_open_ ? 2 : 1;
      const int n = poll(fds, nfds, static_cast<int>(std::min<int64_t>(left_ms, 1000)));
      if (n < 0 && errno != EINTR)
        return fail(fmt::format("poll on the optuna bridge: {}", std::strerror(errno)));
      if (n <= 0)
        continue;
      if (err_open_ && (fds[1].revents & (POLLIN | POLLHUP)))
        drain_stderr();
      if (fds[0].revents & (events | POLLHUP | POLLERR))
        return {};
    }
  }

  void drain_stderr() {
    char buf[4096];
    const ssize_t r = read(err_, buf, sizeof buf);
    if (r <= 0) {
      if (r == 0 || (errno != EINTR && errno != EAGAIN))
        err_open_ = false;
      return;
    }
    const std::string_view chunk(buf, static_cast<size_t>(r));
    SLUICE_LOG(debug, "optuna bridge: {}", chunk);
    tail_.append(chunk);
    if (tail_.size() > kStderrTail)
      tail_.erase(0, tail_.size() - kStderrTail);
  }

  std::string tail_text() const {
    std::string t = tail_;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' '))
      t.pop_back();
    return t.empty() ? std::string() : "; its stderr ends: " + t;
  }

  // Marks the bridge unusable and says why, with how it ended and what it wrote on stderr.
  Status fail(const std::string& what) {
    // The child may still be writing its last words (a traceback) as it exits.
    const int64_t until = monotonic_ns() + 500'000'000;
    int status = 0;
    pid_t w = 0;
    while ((w = waitpid(pid_, &status, WNOHANG)) == 0 && monotonic_ns() < until) {
      pollfd p = {.fd = err_open_ ? err_ : -1, .events = POLLIN, .revents = 0};
      if (poll(&p, 1, 10) > 0)
        drain_stderr();
    }
    while (err_open_) {
      pollfd p = {.fd = err_, .events = POLLIN, .revents = 0};
      if (poll(&p, 1, 0) <= 0)
        break;
      drain_stderr();
    }
    std::string how;
    if (w == pid_) {
      exited_ = true;
      kill(-pid_, SIGKILL);  // anything it started, while its group id still names it
      how = WIFEXITED(status) ? fmt::format(" (exit status {})", WEXITSTATUS(status))
                              : fmt::format(" (signal {})", WTERMSIG(status));
    }
    dead_ = internal_error(what + how + tail_text());
    return dead_;
  }

  pid_t pid_;
  int sock_;
  int err_;
  bool err_open_ = true;
  bool exited_ = false;
  double timeout_s_;
  std::string in_;
  std::string tail_;
  Status dead_;
};

// A configuration the bridge proposed, checked against the space: every parameter exactly once,
// in canonical text (floats only need to parse and lie in range: Space writes them "%.6g").
Status check_proposal(const Space& space, const Configuration& c) {
  if (c.size() != space.parameters().size()) {
    return internal_error(fmt::format("the optuna bridge proposed {} parameters for a space of {}",
                                      c.size(), space.parameters().size()));
  }
  for (const Parameter& p : space.parameters()) {
    auto it = c.find(p.name);
    if (it == c.end())
      return internal_error(fmt::format("the optuna bridge proposed no value for '{}'", p.name));
    if (p.fixed && it->second != *p.fixed) {
      return internal_error(
          fmt::format("the optuna bridge changed pinned '{}' to '{}'", p.name, it->second));
    }
    auto canon = canonical_value(p, it->second);
    if (!canon) {
      return internal_error(
          fmt::format("the optuna bridge proposed an invalid value: {}", canon.status().message()));
    }
    if (p.type != ParamType::kFloat && *canon != it->second) {
      return internal_error(
          fmt::format("the optuna bridge proposed '{}' for '{}', not its "
                      "canonical form '{}'",
                      it->second, p.name, *canon));
    }
  }
  return {};
}

class OptunaSearch final : public Searcher {
 public:
  OptunaSearch(const Space& space, std::unique_ptr<Bridge> bridge)
      : space_(space), bridge_(std::move(bridge)) {}
  std::string_view name() const override { return "optuna"; }

  void observe(const Observation& obs) override {
    if (!broken_.is_ok())
      return;
    const auto id = std::make_pair(obs.iteration, configuration_key(obs.config));
    const std::optional<double> v = value_of(obs);
    if (!sent_.try_emplace(id, v).second) {
      // The same trial again (a replay): a changed value is caught by the next propose().
      return;
    }
    broken_ = send_observation(obs.config, v);
  }

  Result<std::vector<Configuration>> propose(std::span<const Observation> history,
                                             size_t n) override {
    SLUICE_RETURN_IF_ERROR(broken_);
    SLUICE_RETURN_IF_ERROR(sync(history));
    SLUICE_ASSIGN_OR_RETURN(json reply, bridge_->call({{"op", "ask"}, {"n", n}}));
    for (const auto& note : reply.value("notes", json::array()))
      SLUICE_LOG(debug, "optuna bridge: {}", note.dump());
    const json& configs = reply["configs"];
    if (!configs.is_array() || configs.size() > n) {
      return internal_error(fmt::format("the optuna bridge answered ask {} with '{}'", n,
                                        configs.dump().substr(0, 200)));
    }
    std::vector<Configuration> out;
    for (const json& jc : configs) {
      if (!jc.is_object())
        return internal_error("the optuna bridge proposed a configuration that is not an object");
      Configuration c;
      for (const auto& [k, v] : jc.items()) {
        if (!v.is_string()) {
          return internal_error(
              fmt::format("the optuna bridge proposed {} for '{}', not a text value", v.dump(), k));
        }
        c[k] = v.get<std::string>();
      }
      SLUICE_RETURN_IF_ERROR(check_proposal(space_, c));
      out.push_back(std::move(c));
    }
    return out;
  }

 private:
  using TrialId = std::pair<int64_t, std::string>;  // iteration, configuration key

  // Optuna's value: the objective of an ok trial; nullopt marks a failed one, which the bridge
  // tells TPE as the worst value there is (knob wayfinder.optuna_failures).
  static std::optional<double> value_of(const Observation& o) {
    if (o.outcome == Outcome::kOk && o.objective && std::isfinite(*o.objective))
      return *o.objective;
    return std::nullopt;
  }

  Status send_observation(const Configuration& c, std::optional<double> v) {
    json config = json::object();
    for (const auto& [k, val] : c)
      config[k] = val;
    return bridge_->send(
        {{"op", "observe"}, {"config", std::move(config)}, {"value", v ? json(*v) : json()}});
  }

  // Brings the bridge's history in line with the study's: new trials are sent; a trial whose
  // value changed (Equation 4 rescaling) restarts Optuna's study from the whole history.
  Status sync(std::span<const Observation> history) {
    bool changed = false;
    for (const Observation& o : history) {
      auto it = sent_.find({o.iteration, configuration_key(o.config)});
      if (it != sent_.end() && it->second != value_of(o)) {
        changed = true;
        break;
      }
    }
    if (changed) {
      SLUICE_RETURN_IF_ERROR(bridge_->send({{"op", "reset"}}));
      sent_.clear();
    }
    for (const Observation& o : history) {
      auto [it, inserted] =
          sent_.try_emplace({o.iteration, configuration_key(o.config)}, value_of(o));
      if (inserted)
        SLUICE_RETURN_IF_ERROR(send_observation(o.config, it->second));
    }
    return {};
  }

  const Space& space_;
  std::unique_ptr<Bridge> bridge_;
  std::map<TrialId, std::optional<double>> sent_;
  Status broken_;
};

json space_json(const Space& space) {
  json params = json::array();
  for (const Parameter& p : space.parameters()) {
    json jp = {{"name", p.name}, {"type", param_type_name(p.type)}, {"log", p.log_scale}};
    if (p.type == ParamType::kInt) {
      jp["min"] = static_cast<int64_t>(std::ceil(p.min));
      jp["max"] = static_cast<int64_t>(std::floor(p.max));
    } else if (p.type == ParamType::kFloat) {
      jp["min"] = p.min;
      jp["max"] = p.max;
    }
    jp["values"] = p.values;
    jp["fixed"] = p.fixed ? json(*p.fixed) : json();
    params.push_back(std::move(jp));
  }
  return params;
}

}  // namespace

Result<std::unique_ptr<Searcher>> make_optuna_search(const Space& space,
                                                     const SearchOptions& options) {
  const std::string script = kBridgeScript.get();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(script, ec)) {
    return not_found(fmt::format(
        "--search optuna needs its bridge script {}, which does not exist; set the knob "
        "wayfinder.optuna_bridge to tools/optuna_bridge.py of a sluice source tree",
        script));
  }
  if (!options.model_in.empty()) {
    return invalid_argument(
        "--search optuna keeps no model to start warm from; replay a related study's history "
        "instead, or use --search deeptune for --warm-start");
  }
  SLUICE_ASSIGN_OR_RETURN(auto bridge, Bridge::start(kPython.get(), script, kTimeout.get()));
  SLUICE_ASSIGN_OR_RETURN(json hello, bridge->call({{"op", "init"},
                                                    {"seed", options.seed},
                                                    {"failures", kFailures.get()},
                                                    {"params", space_json(space)}}));
  SLUICE_LOG(debug, "optuna bridge: Optuna {} on Python {}", hello.value("optuna", "?"),
             hello.value("python", "?"));
  return std::unique_ptr<Searcher>(std::make_unique<OptunaSearch>(space, std::move(bridge)));
}

}  // namespace sluice::wf
