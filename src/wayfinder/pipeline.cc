// The evaluation pipeline: build cache, isolation, start/ready/bench/stop, classification.
#include "sluice/wayfinder/pipeline.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "sluice/common/clock.h"
#include "sluice/common/knobs.h"

extern char** environ;

namespace sluice::wf {
namespace {

const FloatKnob kReadyPoll({.name = "wayfinder.ready_poll_ms",
                            .default_value = 100,
                            .min = 1,
                            .max = 10000,
                            .stage = KnobStage::kRuntime,
                            .help = "how often the readiness command is retried while a "
                                    "server starts"});
const FloatKnob kKillGrace({.name = "wayfinder.kill_grace_s",
                            .default_value = 2,
                            .min = 0,
                            .max = 600,
                            .stage = KnobStage::kRuntime,
                            .help = "seconds between SIGTERM and SIGKILL when a command is "
                                    "stopped"});

std::atomic<bool> g_stop{false};

constexpr size_t kMaxOut = 1 << 20;
constexpr size_t kMaxErr = 64 << 10;

double seconds_since(int64_t start_ns) {
  return static_cast<double>(monotonic_ns() - start_ns) / 1e9;
}

void sleep_ms(double ms) {
  std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(ms * 1000)));
}

Status write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  if (!out)
    return io_error(fmt::format("cannot write {}", path));
  out << content;
  out.close();
  if (!out)
    return io_error(fmt::format("cannot write {}", path));
  return {};
}

Result<std::string> read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return not_found(fmt::format("cannot read {}", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])))
    ++i;
  return s.substr(i);
}

// Everything a child needs, prepared before fork() (no allocation after it).
struct Prepared {
  std::vector<std::string> env_store;
  std::vector<char*> envp;
  std::string command;
  std::string cwd;
  std::string netns_path;
  char* argv[4] = {};
};

void prepare(const RunSpec& spec, Prepared* p) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq)
      env[std::string(*e, static_cast<size_t>(eq - *e))] = eq + 1;
  }
  for (const auto& [k, v] : spec.env)
    env[k] = v;
  for (const auto& [k, v] : env)
    p->env_store.push_back(k + "=" + v);
  for (auto& s : p->env_store)
    p->envp.push_back(s.data());
  p->envp.push_back(nullptr);
  p->command = spec.command;
  p->cwd = spec.cwd;
  if (!spec.netns.empty())
    p->netns_path = "/run/netns/" + spec.netns;
  static char bash[] = "/bin/bash";
  static char dash_c[] = "-c";
  p->argv[0] = bash;
  p->argv[1] = dash_c;
  p->argv[2] = p->command.data();
  p->argv[3] = nullptr;
}

// In the child: own process group, namespace, directory, descriptors, then exec bash.
[[noreturn]] void exec_child(const Prepared& p, int out_fd, int err_fd) {
  setpgid(0, 0);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  if (!p.netns_path.empty()) {
    const int fd = open(p.netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      dprintf(err_fd, "sluice: cannot enter network namespace %s: %s\n", p.netns_path.c_str(),
              std::strerror(errno));
      _exit(126);
    }
    close(fd);
  }
  if (!p.cwd.empty() && chdir(p.cwd.c_str()) != 0) {
    dprintf(err_fd, "sluice: cannot enter %s: %s\n", p.cwd.c_str(), std::strerror(errno));
    _exit(126);
  }
  const int devnull = open("/dev/null", O_RDONLY);
  dup2(devnull, 0);
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  for (int fd = 3; fd < 1024; ++fd)
    close(fd);
  execve(p.argv[0], p.argv, p.envp.data());
  _exit(127);
}

// Stops a process group: SIGTERM, grace, SIGKILL; reaps the leader.
void kill_group(pid_t pid, double grace_s, int* status) {
  killpg(pid, SIGTERM);
  const int64_t t0 = monotonic_ns();
  while (true) {
    const pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid || r < 0)
      break;
    if (seconds_since(t0) > grace_s) {
      killpg(pid, SIGKILL);
      waitpid(pid, status, 0);
      break;
    }
    sleep_ms(10);
  }
  killpg(pid, SIGKILL);  // stragglers that left the leader behind
}

// A background process (a server): output to a log file.
class Background {
 public:
  Status start(const RunSpec& spec, const std::string& log_path) {
    Prepared p;
    prepare(spec, &p);
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      return errno_status(errno, "opening " + log_path);
    log_path_ = log_path;
    pid_ = fork();
    if (pid_ < 0) {
      close(fd);
      return errno_status(errno, "fork");
    }
    if (pid_ == 0)
      exec_child(p, fd, fd);
    setpgid(pid_, pid_);
    close(fd);
    return {};
  }
  // True while running; records the exit once it ended.
  bool alive() {
    if (pid_ <= 0)
      return false;
    if (exited_)
      return false;
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      status_ = status;
      return false;
    }
    return true;
  }
  std::string describe_exit() const {
    if (WIFSIGNALED(status_))
      return fmt::format("killed by signal {}", WTERMSIG(status_));
    return fmt::format("exited with status {}", WEXITSTATUS(status_));
  }
  std::string log_tail() const {
    auto text = read_text(log_path_);
    if (!text)
      return "";
    const std::string& s = *text;
    return trim(s.size() > 400 ? s.substr(s.size() - 400) : s);
  }
  void stop(double grace_s) {
    if (pid_ > 0 && !exited_) {
      kill_group(pid_, grace_s, &status_);
      exited_ = true;
    } else if (pid_ > 0) {
      killpg(pid_, SIGKILL);
    }
  }
  ~Background() { stop(0.5); }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
  std::string log_path_;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string sysctl_path(const std::string& name) {
  std::string p = "/proc/sys/" + name;
  std::replace(p.begin() + 10, p.end(), '.', '/');
  return p;
}

std::string knob_env_name(const std::string& knob) {
  std::string s = "SLUICE_";
  for (char ch : knob) {
    s += ch == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return s;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) {
    if (ch == '\'')
      out += "'\\''";
    else
      out += ch;
  }
  return out + "'";
}

}  // namespace

void request_stop() {
  g_stop.store(true, std::memory_order_relaxed);
}
void clear_stop() {
  g_stop.store(false, std::memory_order_relaxed);
}
bool stop_requested() {
  return g_stop.load(std::memory_order_relaxed);
}

CommandResult run_command(const RunSpec& spec) {
  CommandResult r;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0)
    return r;
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return r;
  }
  Prepared p;
  prepare(spec, &p);
  const int64_t t0 = monotonic_ns();
  const pid_t pid = fork();
  if (pid < 0) {
    r.err = fmt::format("fork: {}", std::strerror(errno));
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]})
      close(fd);
    return r;
  }
  if (pid == 0)
    exec_child(p, out_pipe[1], err_pipe[1]);
  setpgid(pid, pid);
  close(out_pipe[1]);
  close(err_pipe[1]);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[8192];
  int status = 0;
  bool reaped = false;
  int64_t reaped_ns = 0;
  while (open_fds > 0 || !reaped) {
    if (!reaped) {
      const pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid) {
        reaped = true;
        reaped_ns = monotonic_ns();
      }
    }
    if (stop_requested() && !spec.cleanup && !reaped) {
      r.cancelled = true;
      kill_group(pid, kKillGrace.get(), &status);
      reaped = true;
      reaped_ns = monotonic_ns();
    } else if (!reaped && seconds_since(t0) > spec.timeout_s) {
      r.timed_out = true;
      kill_group(pid, kKillGrace.get(), &status);
      reaped = true;
      reaped_ns = monotonic_ns();
    }
    if (open_fds == 0) {
      if (!reaped)
        sleep_ms(5);
      continue;
    }
    const int n = poll(fds, 2, 20);
    if (n <= 0) {
      // The leader is gone; descendants may still hold the pipes. Drain briefly, then stop.
      if (reaped && (r.timed_out || r.cancelled || seconds_since(reaped_ns) > 0.2))
        break;
      continue;
    }
    for (auto& f : fds) {
      if (f.fd < 0 || !(f.revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      const ssize_t got = read(f.fd, buf, sizeof buf);
      if (got <= 0) {
        close(f.fd);
        f.fd = -1;
        --open_fds;
        continue;
      }
      std::string& dst = (&f == &fds[0]) ? r.out : r.err;
      const size_t cap = (&f == &fds[0]) ? kMaxOut : kMaxErr;
      dst.append(buf, static_cast<size_t>(got));
      if (dst.size() > cap)
        dst.erase(0, dst.size() - cap);
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0)
      close(f.fd);
  }
  killpg(pid, SIGKILL);  // descendants of a finished command must not linger
  r.seconds = seconds_since(t0);
  if (WIFEXITED(status) && !r.timed_out && !r.cancelled) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  return r;
}

Result<std::string> render_template(std::string_view text,
                                    const std::map<std::string, std::string>& values) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t open = text.find("{{", i);
    if (open == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, open - i));
    const size_t close = text.find("}}", open + 2);
    if (close == std::string_view::npos) {
      return invalid_argument("a '{{' without its closing '}}'");
    }
    const std::string key = trim(std::string(text.substr(open + 2, close - open - 2)));
    auto it = values.find(key);
    if (it == values.end()) {
      return invalid_argument(
          fmt::format("unknown placeholder {{{{{}}}}}: not a parameter "
                      "name, nor workdir, job_dir, build_dir, flags, "
                      "knob_flags or iteration",
                      key));
    }
    out += it->second;
    i = close + 2;
  }
  return out;
}

std::optional<double> extract_metric(const MetricSpec& m, const std::string& out) {
  if (!m.regex.empty()) {
    std::smatch match;
    const std::regex re(m.regex);
    if (!std::regex_search(out, match, re) || match.size() < 2)
      return std::nullopt;
    const std::string s = match[1].str();
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end == s.c_str())
      return std::nullopt;
    return v;
  }
  auto doc = nlohmann::json::parse(out, nullptr, false);
  if (doc.is_discarded()) {
    // The last line that parses as JSON.
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.is_structured())
        doc = std::move(j);
    }
    if (doc.is_discarded())
      return std::nullopt;
  }
  const nlohmann::json* cur = &doc;
  std::string path = m.json_path;
  std::replace(path.begin(), path.end(), '[', '.');
  path.erase(std::remove(path.begin(), path.end(), ']'), path.end());
  std::istringstream parts(path);
  std::string part;
  while (std::getline(parts, part, '.')) {
    if (part.empty())
      continue;
    if (cur->is_object()) {
      auto it = cur->find(part);
      if (it == cur->end())
        return std::nullopt;
      cur = &*it;
    } else if (cur->is_array()) {
      char* end = nullptr;
      const unsigned long idx = std::strtoul(part.c_str(), &end, 10);
      if (*end != '\0' || idx >= cur->size())
        return std::nullopt;
      cur = &(*cur)[idx];
    } else {
      return std::nullopt;
    }
  }
  if (cur->is_number())
    return cur->get<double>();
  if (cur->is_string()) {
    const std::string s = cur->get<std::string>();
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str())
      return v;
  }
  return std::nullopt;
}

Status HostJournal::set_file(const std::string& path, const std::string& value) {
  SLUICE_ASSIGN_OR_RETURN(std::string old, read_text(path));
  old = trim(old);
  SLUICE_ASSIGN_OR_RETURN(
      int64_t id,
      store_.journal_add({.kind = "file", .target = path, .old_value = old, .new_value = value}));
  Status st = write_file(path, value + "\n");
  if (!st.is_ok()) {
    // Nothing changed: close the entry (restoring the old value is harmless).
    static_cast<void>(write_file(path, old + "\n"));
    static_cast<void>(store_.journal_done(id));
    return st;
  }
  return {};
}

Result<int64_t> HostJournal::add_netns(const std::string& name) {
  return store_.journal_add({.kind = "netns", .target = name});
}

Result<int> HostJournal::restore_all() {
  SLUICE_ASSIGN_OR_RETURN(auto entries, store_.journal_open_entries());
  int restored = 0;
  for (const JournalEntry& e : entries) {
    // Another live process's changes are its own to restore.
    if (e.owner_pid != getpid() && e.owner_pid > 0 &&
        kill(static_cast<pid_t>(e.owner_pid), 0) == 0) {
      continue;
    }
    if (e.kind == "file") {
      Status st = write_file(e.target, e.old_value + "\n");
      if (!st.is_ok()) {
        return st.with_context(fmt::format("restoring {} to '{}'", e.target, e.old_value));
      }
    } else if (e.kind == "netns") {
      static_cast<void>(
          run_command({.command = "ip netns del " + shell_quote(e.target) + " 2>/dev/null || true",
                       .timeout_s = 10,
                       .cleanup = true}));
    }
    SLUICE_RETURN_IF_ERROR(store_.journal_done(e.id));
    ++restored;
  }
  return restored;
}

Evaluator::Evaluator(const Job& job, StudyStore& store, EvaluatorOptions options)
    : job_(job), store_(store), options_(std::move(options)) {}

Result<EvalResult> Evaluator::evaluate(const Configuration& c, int64_t iteration) {
  HostJournal journal(store_);
  std::string netns;
  if (job_.isolate_netns) {
    netns = fmt::format("sluice-wf-{}-{}", getpid(), iteration);
    SLUICE_ASSIGN_OR_RETURN(int64_t id, journal.add_netns(netns));
    static_cast<void>(id);
    const CommandResult add = run_command(
        {.command = fmt::format("ip netns del {0} 2>/dev/null; ip netns add {0} && ip -n {0} "
                                "link set lo up",
                                netns),
         .timeout_s = 20});
    if (add.exit_code != 0) {
      static_cast<void>(journal.restore_all());
      return failed_precondition(
          fmt::format("cannot create network namespace {} ({}); run as root with iproute2, or set "
                      "'isolation: {{netns: false}}' in the job",
                      netns, trim(add.err)));
    }
  }
  auto result = evaluate_in(c, iteration, netns, journal);
  // Restore host settings and delete the namespace whatever happened.
  auto restored = journal.restore_all();
  if (!restored)
    return restored.status();
  return result;
}

Result<EvalResult> Evaluator::evaluate_in(const Configuration& c, int64_t iteration,
                                          const std::string& netns, HostJournal& journal) {
  namespace fs = std::filesystem;
  EvalResult res;
  const int64_t t0 = monotonic_ns();
  std::error_code ec;

  // Values for templates and commands.
  std::map<std::string, std::string> values = c;
  std::map<std::string, std::string> env = job_.env;
  std::string flags, knob_flags;
  for (const Parameter& p : job_.parameters) {
    auto it = c.find(p.name);
    const std::string v = it == c.end() ? p.default_value : it->second;
    values[p.name] = v;
    env["WF_PARAM_" + p.name] = v;
    switch (p.apply) {
      case ApplyKind::kEnv: env[p.target] = v; break;
      case ApplyKind::kFlag: {
        SLUICE_ASSIGN_OR_RETURN(std::string f, render_template(p.target, {{"value", v}}));
        flags += (flags.empty() ? "" : " ") + f;
        break;
      }
      case ApplyKind::kKnob:
        env[knob_env_name(p.target)] = v;
        knob_flags += (knob_flags.empty() ? "" : " ") + fmt::format("--set {}={}", p.target, v);
        break;
      default: break;
    }
  }
  values["flags"] = flags;
  values["knob_flags"] = knob_flags;
  values["iteration"] = std::to_string(iteration);
  values["job_dir"] = job_.dir;

  // Build, cached by the hash of the compile-stage values.
  std::string build_dir = job_.dir;
  if (!job_.commands.build.empty()) {
    const std::string hash = compile_hash(job_, c);
    build_dir = options_.work_dir + "/builds/" + hash;
    values["build_dir"] = build_dir;
    env["WF_BUILD_DIR"] = build_dir;
    if (fs::exists(build_dir + "/.wf-build-ok")) {
      res.build_cached = true;
    } else if (fs::exists(build_dir + "/.wf-build-failed")) {
      res.build_cached = true;
      res.outcome = Outcome::kBuildFailure;
      res.message = "build failed (cached result for this compile-stage configuration)";
      return res;
    } else {
      fs::create_directories(build_dir, ec);
      if (ec)
        return io_error(fmt::format("cannot create {}: {}", build_dir, ec.message()));
      SLUICE_ASSIGN_OR_RETURN(std::string cmd, render_template(job_.commands.build, values));
      ++builds_run_;
      const CommandResult b = run_command(
          {.command = cmd, .cwd = build_dir, .env = env, .timeout_s = job_.timeouts.build_s});
      res.build_s = b.seconds;
      if (b.cancelled)
        return cancelled("stopped during the build");
      if (b.exit_code != 0) {
        // Timeouts are not cached: the machine may have been busy.
        if (!b.timed_out)
          static_cast<void>(write_file(build_dir + "/.wf-build-failed", b.err));
        res.outcome = Outcome::kBuildFailure;
        res.message = b.timed_out ? "build timed out"
                                  : fmt::format("build failed: {}", trim(b.err).substr(0, 300));
        return res;
      }
      SLUICE_RETURN_IF_ERROR(write_file(build_dir + "/.wf-build-ok", ""));
    }
  }
  values["build_dir"] = build_dir;

  // A fresh run directory with the rendered files.
  const std::string run_dir = options_.work_dir + "/runs/" + std::to_string(iteration);
  fs::remove_all(run_dir, ec);
  fs::create_directories(run_dir, ec);
  if (ec)
    return io_error(fmt::format("cannot create {}: {}", run_dir, ec.message()));
  fs::permissions(run_dir, fs::perms::all & ~fs::perms::group_write & ~fs::perms::others_write, ec);
  values["workdir"] = run_dir;
  env["WF_WORKDIR"] = run_dir;
  env["WF_JOB_DIR"] = job_.dir;
  for (const TemplateFile& f : job_.files) {
    SLUICE_ASSIGN_OR_RETURN(std::string content, render_template(f.content, values));
    const fs::path dst = fs::path(run_dir) / f.path;
    fs::create_directories(dst.parent_path(), ec);
    SLUICE_RETURN_IF_ERROR(write_file(dst.string(), content));
  }

  // Sysctls private to the namespace, then journalled host-wide settings.
  const auto fail = [&](Outcome o, std::string msg) -> Result<EvalResult> {
    res.outcome = o;
    res.message = std::move(msg);
    res.eval_s = seconds_since(t0);
    return res;
  };
  for (const Parameter& p : job_.parameters) {
    std::string v = values[p.name];
    if (p.type == ParamType::kBool)
      v = v == "true" ? "1" : "0";  // kernel files take 0/1
    if (p.apply == ApplyKind::kSysctl && !job_.is_host_wide(p)) {
      const CommandResult w = run_command(
          {.command = fmt::format("printf '%s\\n' \"$WF_V\" > {}", sysctl_path(p.target)),
           .env = {{"WF_V", v}},
           .netns = netns,
           .timeout_s = 10});
      if (w.cancelled)
        return cancelled("stopped while applying sysctls");
      if (w.exit_code != 0) {
        return fail(Outcome::kStartFailure,
                    fmt::format("sysctl {} = {} refused: {}", p.target, v, trim(w.err)));
      }
    } else if (job_.is_host_wide(p)) {
      const std::string path = p.apply == ApplyKind::kFile ? p.target : sysctl_path(p.target);
      Status st = journal.set_file(path, v);
      if (!st.is_ok()) {
        return fail(Outcome::kStartFailure,
                    fmt::format("{} = {} refused: {}", path, v, st.message()));
      }
    }
  }
  if (stop_requested())
    return cancelled("stopped before the start");

  // Start and wait until ready.
  Background server;
  const auto spec = [&](const std::string& cmd, double timeout) {
    return RunSpec{
        .command = cmd, .cwd = run_dir, .env = env, .netns = netns, .timeout_s = timeout};
  };
  if (!job_.commands.start.empty()) {
    SLUICE_ASSIGN_OR_RETURN(std::string cmd, render_template(job_.commands.start, values));
    SLUICE_RETURN_IF_ERROR(server.start(spec(cmd, 0), run_dir + "/server.log"));
    const int64_t ts = monotonic_ns();
    std::string ready_cmd;
    if (!job_.commands.ready.empty()) {
      SLUICE_ASSIGN_OR_RETURN(ready_cmd, render_template(job_.commands.ready, values));
    }
    while (true) {
      if (stop_requested())
        return cancelled("stopped while the server started");
      if (!server.alive()) {
        return fail(Outcome::kStartFailure, fmt::format("server {} before it was ready: {}",
                                                        server.describe_exit(), server.log_tail()));
      }
      if (seconds_since(ts) > job_.timeouts.start_s) {
        return fail(Outcome::kStartFailure,
                    fmt::format("not ready within {} s", job_.timeouts.start_s));
      }
      if (ready_cmd.empty()) {
        sleep_ms(300);
        if (server.alive())
          break;
        continue;
      }
      const CommandResult r = run_command(spec(ready_cmd, std::max(1.0, job_.timeouts.start_s)));
      if (r.exit_code == 0)
        break;
      sleep_ms(kReadyPoll.get());
    }
  }

  // Benchmark: repetitions, median per metric.
  SLUICE_ASSIGN_OR_RETURN(std::string bench_cmd, render_template(job_.commands.bench, values));
  for (int rep = 0; rep < job_.repetitions; ++rep) {
    const CommandResult b = run_command(spec(bench_cmd, job_.timeouts.bench_s));
    static_cast<void>(write_file(run_dir + fmt::format("/bench.{}.out", rep), b.out + b.err));
    if (b.cancelled)
      return cancelled("stopped during the benchmark");
    if (b.timed_out) {
      return fail(Outcome::kTimeout, fmt::format("benchmark ran past {} s (repetition {})",
                                                 job_.timeouts.bench_s, rep + 1));
    }
    if (!job_.commands.start.empty() && !server.alive()) {
      return fail(Outcome::kCrash, fmt::format("server {} during the benchmark: {}",
                                               server.describe_exit(), server.log_tail()));
    }
    if (b.exit_code != 0) {
      const std::string why = b.signal ? fmt::format("killed by signal {}", b.signal)
                                       : fmt::format("exited with status {}", b.exit_code);
      return fail(Outcome::kCrash,
                  fmt::format("benchmark {}: {}", why, trim(b.err).substr(0, 300)));
    }
    for (const MetricSpec& m : job_.metrics) {
      const auto v = extract_metric(m, b.out);
      if (!v) {
        return fail(Outcome::kMetricMissing,
                    fmt::format("no value for metric '{}' in the benchmark's output", m.name));
      }
      res.samples[m.name].push_back(*v);
    }
  }
  for (const auto& [name, vs] : res.samples)
    res.metrics[name] = median(vs);

  // Stop.
  if (!job_.commands.stop.empty()) {
    SLUICE_ASSIGN_OR_RETURN(std::string cmd, render_template(job_.commands.stop, values));
    RunSpec stop = spec(cmd, job_.timeouts.stop_s);
    stop.cleanup = true;
    static_cast<void>(run_command(stop));
    const int64_t ts = monotonic_ns();
    while (server.alive() && seconds_since(ts) < job_.timeouts.stop_s)
      sleep_ms(20);
  }
  server.stop(kKillGrace.get());
  res.eval_s = seconds_since(t0);
  if (!options_.keep_runs)
    fs::remove_all(run_dir, ec);
  return res;
}

}  // namespace sluice::wf
