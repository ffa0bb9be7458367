// dbos benchmarks (DBOS paper Figures 5–8 on this machine), peers in the same run, interleaved:
//
//   dbos_bench sched [--reps N] [--seconds S] [--latency-warmup N] [--out FILE.json]
//       tasks/s of each scheduler on SQLite and PostgreSQL (1 and 2 threads, one task per
//       transaction and 64 per transaction), and median/p99 latency at 25–100 % of the peak
//       offered open-loop from one thread, on a session that has scheduled --latency-warmup
//       tasks first (default 200; 0 times a cold session, whose first PostgreSQL call compiles
//       the PL/pgSQL functions and plans their statements, 3–7 ms). --open-loop-wait: the
//       client spins the last 200 µs before each task's due time (spin, the default) or sleeps
//       to it (sleep). Each latency point also records the steal time and how long the client
//       thread and the PostgreSQL backend waited on a run queue.
//   dbos_bench ipc [--reps N] [--seconds S] [--out FILE.json]
//       ping-pong, ping20-pong20 (64 B – 8 KiB), multicast to 1–40 receivers (64 B, 8 KiB) and 1–32
//       concurrent ping-pong pairs, each pair's sender on a thread of its own (64 B): dbos on
//       SQLite and PostgreSQL against TCP loopback sockets and gRPC; --pattern and --system
//       narrow it to one case (for profiling). Each point starts with 3 untimed rounds, so that
//       receivers that are still starting (connecting, preparing) are not timed.
//   --no-postgres, --no-sqlite leave one engine out.
//
// Each point runs for --seconds; the systems take turns within each repetition. The JSON holds
// every repetition; bench/dbos/plot_dbos.py turns it into tables and docs/bench/dbos_*.png.
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <latch>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "dbos/connection.h"
#include "dbos/peers.h"
#include "sluice/common/knobs.h"
#include "sluice/dbos/database.h"
#include "sluice/dbos/ipc.h"
#include "sluice/dbos/scheduler.h"
#include "sluice/dbos/testing/pg_server.h"

namespace sluice::bench {
namespace {

using Clock = std::chrono::steady_clock;
using dbos::Database;
using dbos::Session;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// CPU time of the whole machine and of this process, to tell how busy other work kept the CPUs.
struct CpuSample {
  uint64_t busy = 0, total = 0, steal = 0;  // in /proc/stat's ticks
  double self_s = 0;
  static CpuSample now() {
    CpuSample s;
    std::ifstream f("/proc/stat");
    std::string cpu;
    uint64_t v[10] = {};
    f >> cpu;
    for (auto& x : v)
      f >> x;
    for (int i = 0; i < 10; ++i)
      s.total += v[i];
    s.busy = s.total - v[3] - v[4];
    s.steal = v[7];
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    s.self_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    return s;
  }
};

// CPU seconds by process: this one (pid 0 here) and every PostgreSQL server process.
std::map<int, double> cpu_by_process(bool with_postgres) {
  std::map<int, double> out;
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  out[0] = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  if (!with_postgres)
    return out;
  const double tck = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = e.path().filename().string();
    if (pid.empty() || !std::isdigit(static_cast<unsigned char>(pid[0])))
      continue;
    std::ifstream f(e.path() / "stat");
    std::string line;
    if (!std::getline(f, line))
      continue;
    auto open = line.find('(');
    auto close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos)
      continue;
    if (line.substr(open + 1, close - open - 1) != "postgres")
      continue;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    uint64_t utime = 0, stime = 0;
    for (int i = 3; i <= 15; ++i) {
      rest >> field;
      if (i == 14)
        utime = std::stoull(field);
      if (i == 15)
        stime = std::stoull(field);
    }
    out[std::stoi(pid)] = static_cast<double>(utime + stime) / tck;
  }
  return out;
}

// CPU spent between two samples by the processes alive at the second (a server process that
// started in between counts whole; one that exited is not counted).
double cpu_delta(const std::map<int, double>& a, const std::map<int, double>& b) {
  double d = 0;
  for (const auto& [pid, t] : b) {
    auto it = a.find(pid);
    d += t - (it == a.end() ? 0.0 : it->second);
  }
  return d;
}

// --- backends ---

struct Backend {
  std::string name;  // "sqlite" or "postgres"
  std::string url;
  dbos::testing::PgServer* server = nullptr;
  std::string dir;

  Result<std::shared_ptr<Database>> fresh() {
    if (server != nullptr) {
      SLUICE_ASSIGN_OR_RETURN(auto conn, dbos::open_pg_connection(url, nullptr));
      SLUICE_RETURN_IF_ERROR(
          conn->execute_script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;"));
    } else {
      std::error_code ec;
      for (const char* suffix : {"", "-wal", "-shm", "-wake"}) {
        std::filesystem::remove(dir + "/os.db" + suffix, ec);
      }
    }
    return Database::open(url);
  }
};

// --- schedulers ---

constexpr int kPartitions = 8;
constexpr int kWorkersPerPartition = 4;

Status add_workers(Session& s) {
  dbos::Scheduler sched(s);
  for (int w = 0; w < kPartitions * kWorkersPerPartition; ++w) {
    SLUICE_RETURN_IF_ERROR(sched.add_worker(
        {.worker_id = w + 1, .p_key = w % kPartitions, .capacity = int64_t{1} << 40}));
  }
  return {};
}

// Closed loop: `threads` sessions schedule as fast as they can for `seconds`.
struct Throughput {
  double per_s = 0;
  double per_cpu_s = 0;  // tasks per CPU-second of sluice (and the server): per core
};

Result<Throughput> sched_throughput(Database& db, const std::string& scheduler, int threads,
                                    int batch, double seconds) {
  const bool pg = db.dialect() == dbos::Dialect::kPostgres;
  std::atomic<int64_t> done{0};
  std::atomic<bool> stop{false};
  std::atomic<int> finished{0};
  std::atomic<bool> release{false};
  std::vector<std::thread> ts;
  std::vector<Status> errors(static_cast<size_t>(threads));
  // The clock and the CPU count start once every thread has its connection: a PostgreSQL
  // backend's start is not scheduling.
  std::latch connected(threads);
  std::latch go(1);
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      auto s = db.connect();
      connected.count_down();
      go.wait();
      if (!s.is_ok()) {
        errors[static_cast<size_t>(t)] = s.status();
        ++finished;
        return;
      }
      dbos::Scheduler sched(**s);
      std::vector<dbos::TaskSpec> tasks(static_cast<size_t>(batch));
      int64_t i = t;
      while (!stop.load(std::memory_order_relaxed) && errors[static_cast<size_t>(t)].is_ok()) {
        if (batch == 1) {
          auto a = sched.schedule(scheduler, {.p_key = i++ % kPartitions});
          if (!a.is_ok()) {
            errors[static_cast<size_t>(t)] = a.status();
            break;
          }
        } else {
          for (auto& task : tasks)
            task.p_key = i++ % kPartitions;
          auto a = sched.schedule_batch(scheduler, tasks);
          if (!a.is_ok()) {
            errors[static_cast<size_t>(t)] = a.status();
            break;
          }
        }
        if (!errors[static_cast<size_t>(t)].is_ok())
          break;
        done.fetch_add(batch, std::memory_order_relaxed);
      }
      // Keep the connection (and its server process, whose CPU is counted) until sampled.
      ++finished;
      while (!release.load())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  }
  connected.wait();
  const auto cpu0 = cpu_by_process(pg);
  const auto t0 = Clock::now();
  go.count_down();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  while (finished.load() < threads)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const double el = seconds_since(t0);
  const double cpu = cpu_delta(cpu0, cpu_by_process(pg));
  release = true;
  for (auto& t : ts)
    t.join();
  for (auto& e : errors)
    SLUICE_RETURN_IF_ERROR(e);
  const double n = static_cast<double>(done.load());
  return Throughput{n / el, cpu > 0 ? n / cpu : 0};
}

// The whole machine's steal time so far, in ms.
double steal_ms_now() {
  return static_cast<double>(CpuSample::now().steal) * 1000.0 /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

// How long a thread or process has run (cpu) or waited on a run queue so far, in ms (-1:
// unknown).
double queued_or_cpu_ms(const std::filesystem::path& schedstat, bool cpu) {
  std::ifstream f(schedstat);
  uint64_t on_cpu_ns = 0, waited_ns = 0;
  if (!(f >> on_cpu_ns >> waited_ns))
    return -1;
  return static_cast<double>(cpu ? on_cpu_ns : waited_ns) / 1e6;
}

double queued_ms_now(const std::string& schedstat) {
  return queued_or_cpu_ms(schedstat, /*cpu=*/false);
}

// On-CPU time so far, in ms, of the other work that could hold the backend's CPU: PostgreSQL's
// WAL writer, its other auxiliary processes (checkpointer, background writer, autovacuum,
// launchers), its other backends, and the kernel's threads (kworkers, jbd2, ksoftirqd…), from
// each process's schedstat.
struct OtherWork {
  double walwriter_ms = 0, pg_aux_ms = 0, pg_backends_ms = 0, kernel_ms = 0;
  static OtherWork now(int serving_backend) {
    OtherWork w;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
      const std::string pid = e.path().filename().string();
      if (pid.empty() || !std::isdigit(static_cast<unsigned char>(pid[0])) ||
          std::stoi(pid) == serving_backend)
        continue;
      std::ifstream cmd(e.path() / "cmdline");
      std::string cmdline((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
      const double ms = queued_or_cpu_ms(e.path() / "schedstat", /*cpu=*/true);
      if (ms < 0)
        continue;
      if (cmdline.empty()) {
        w.kernel_ms += ms;
      } else if (cmdline.starts_with("postgres: walwriter")) {
        w.walwriter_ms += ms;
      } else if (cmdline.starts_with("postgres: ")) {
        const bool backend = cmdline.find('(') != std::string::npos;  // "user db host(port) …"
        (backend ? w.pg_backends_ms : w.pg_aux_ms) += ms;
      }
    }
    return w;
  }
};

struct Latency {
  double p50_us = 0;
  double p99_us = 0;
  std::vector<int64_t> slow;  // which tasks (from 0) took over 1 ms, the first 20
  // Where a stall could come from: time the host took the VM's CPUs (steal, whole machine, in
  // /proc/stat's ticks as ms), and time the client thread and the PostgreSQL backend serving it
  // sat runnable in the guest's run queues (schedstat run_delay), during the run.
  double steal_ms = 0;
  double client_queued_ms = 0;
  double backend_queued_ms = -1;  // -1: no server process (SQLite)
  OtherWork other;                // on-CPU time during the run
};

// How the open loop waits for a task's due time: spinning its last 200 µs (precise, but a
// client that keeps a CPU busy between calls), or sleeping the whole way (as a service that
// schedules on behalf of requests would).
enum class OpenLoopWait { kSpin, kSleep };

// Open loop from one thread at `rate` tasks/s: latency from the intended start, so a slow call
// delays the ones behind it and shows in their latency (no coordinated omission). `warmup` tasks
// go first, untimed, on the same session.
Result<Latency> sched_latency(Database& db, const std::string& scheduler, double rate,
                              double seconds, int warmup, OpenLoopWait wait) {
  SLUICE_ASSIGN_OR_RETURN(auto s, db.connect());
  dbos::Scheduler sched(*s);
  for (int i = 0; i < warmup; ++i)
    SLUICE_RETURN_IF_ERROR(sched.schedule(scheduler, {.p_key = i % kPartitions}).status());
  std::string backend_schedstat;
  int backend_pid = -1;
  if (db.dialect() == dbos::Dialect::kPostgres) {
    SLUICE_ASSIGN_OR_RETURN(auto r, s->query("SELECT pg_backend_pid()"));
    backend_pid = static_cast<int>(dbos::value_to_int(r.rows.at(0).at(0)).value_or(0));
    backend_schedstat = fmt::format("/proc/{}/schedstat", backend_pid);
  }
  const OtherWork other0 = OtherWork::now(backend_pid);
  const double steal0 = steal_ms_now();
  const double client0 = queued_ms_now("/proc/thread-self/schedstat");
  const double backend0 = backend_schedstat.empty() ? -1 : queued_ms_now(backend_schedstat);
  std::vector<double> lat;
  const auto t0 = Clock::now();
  const int64_t n = static_cast<int64_t>(rate * seconds);
  lat.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto due = t0 + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(static_cast<double>(i) / rate));
    if (wait == OpenLoopWait::kSleep) {
      std::this_thread::sleep_until(due);
    }
    while (Clock::now() < due) {
      const auto left = due - Clock::now();
      if (left > std::chrono::microseconds(200)) {
        std::this_thread::sleep_for(left - std::chrono::microseconds(100));
      }
    }
    SLUICE_RETURN_IF_ERROR(sched.schedule(scheduler, {.p_key = i % kPartitions}).status());
    lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - due).count());
  }
  Latency out;
  const OtherWork other1 = OtherWork::now(backend_pid);
  out.other = {other1.walwriter_ms - other0.walwriter_ms, other1.pg_aux_ms - other0.pg_aux_ms,
               other1.pg_backends_ms - other0.pg_backends_ms, other1.kernel_ms - other0.kernel_ms};
  out.steal_ms = steal_ms_now() - steal0;
  out.client_queued_ms = queued_ms_now("/proc/thread-self/schedstat") - client0;
  if (backend0 >= 0) {
    const double backend1 = queued_ms_now(backend_schedstat);
    out.backend_queued_ms = backend1 >= 0 ? backend1 - backend0 : -1;
  }
  for (size_t i = 0; i < lat.size() && out.slow.size() < 20; ++i) {
    if (lat[i] > 1000)
      out.slow.push_back(static_cast<int64_t>(i));
  }
  out.p50_us = percentile(lat, 0.5);
  out.p99_us = percentile(lat, 0.99);
  return out;
}

Status run_sched(std::vector<Backend>& backends, int reps, double seconds, int latency_warmup,
                 OpenLoopWait wait, nlohmann::json& out) {
  const std::vector<std::string> schedulers = {"fifo", "locality", "least_loaded",
                                               "least_loaded_global"};
  for (int rep = 0; rep < reps; ++rep) {
    for (auto& b : backends) {
      for (const auto& name : schedulers) {
        SLUICE_ASSIGN_OR_RETURN(auto db, b.fresh());
        SLUICE_ASSIGN_OR_RETURN(auto s, db->connect());
        SLUICE_RETURN_IF_ERROR(add_workers(*s));
        double peak1 = 0;
        for (auto [threads, batch] : {std::pair{1, 1}, std::pair{2, 1}, std::pair{1, 64}}) {
          SLUICE_ASSIGN_OR_RETURN(Throughput tp,
                                  sched_throughput(*db, name, threads, batch, seconds));
          if (threads == 1 && batch == 1)
            peak1 = tp.per_s;
          out["sched_throughput"].push_back({{"backend", b.name},
                                             {"scheduler", name},
                                             {"threads", threads},
                                             {"batch", batch},
                                             {"rep", rep},
                                             {"tasks_per_s", tp.per_s},
                                             {"tasks_per_cpu_s", tp.per_cpu_s}});
          std::printf(
              "sched %-8s %-20s threads=%d batch=%-2d rep=%d %10.0f tasks/s %10.0f "
              "tasks/cpu-s\n",
              b.name.c_str(), name.c_str(), threads, batch, rep, tp.per_s, tp.per_cpu_s);
          std::fflush(stdout);
        }
        for (double frac : {0.25, 0.5, 0.75, 1.0}) {
          SLUICE_ASSIGN_OR_RETURN(
              Latency l, sched_latency(*db, name, peak1 * frac, seconds, latency_warmup, wait));
          out["sched_latency"].push_back({{"backend", b.name},
                                          {"scheduler", name},
                                          {"load", frac},
                                          {"rate", peak1 * frac},
                                          {"rep", rep},
                                          {"warmup", latency_warmup},
                                          {"p50_us", l.p50_us},
                                          {"p99_us", l.p99_us},
                                          {"slow_tasks", l.slow},
                                          {"wait", wait == OpenLoopWait::kSleep ? "sleep" : "spin"},
                                          {"steal_ms", l.steal_ms},
                                          {"client_queued_ms", l.client_queued_ms},
                                          {"backend_queued_ms", l.backend_queued_ms},
                                          {"walwriter_cpu_ms", l.other.walwriter_ms},
                                          {"pg_aux_cpu_ms", l.other.pg_aux_ms},
                                          {"pg_other_backends_cpu_ms", l.other.pg_backends_ms},
                                          {"kernel_threads_cpu_ms", l.other.kernel_ms}});
          std::printf(
              "sched %-8s %-20s load=%.2f (%.0f/s) rep=%d p50 %.0f us p99 %.0f us slow %s "
              "steal %.0f ms queued client %.1f ms backend %.1f ms; cpu walwriter %.1f ms aux "
              "%.1f ms backends %.1f ms kernel %.1f ms\n",
              b.name.c_str(), name.c_str(), frac, peak1 * frac, rep, l.p50_us, l.p99_us,
              fmt::format("{}", fmt::join(l.slow, ",")).c_str(), l.steal_ms, l.client_queued_ms,
              l.backend_queued_ms, l.other.walwriter_ms, l.other.pg_aux_ms, l.other.pg_backends_ms,
              l.other.kernel_ms);
          std::fflush(stdout);
        }
      }
    }
  }
  return {};
}

// --- IPC over dbos, as a Transport: endpoint 0 is the sender, 1..n the echo receivers ---
//
// With `pairs`, each receiver i has a sender of its own (endpoint n + i, its own session), so
// that the pairs can run on concurrent threads: send(i - 1) and recv(i - 1) then use that
// sender. A receiver replies to each message's sender.

class DbosTransport final : public Transport {
 public:
  DbosTransport(std::string name, std::shared_ptr<Database> db)
      : name_(std::move(name)), db_(std::move(db)) {}
  ~DbosTransport() override {
    stop_ = true;
    // Wake every receiver with a message it drops.
    for (size_t i = 0; i < threads_.size(); ++i) {
      (void)main_.ipc->send(0, static_cast<int64_t>(i + 1), "");
    }
    for (auto& t : threads_)
      t.join();
  }
  const char* name() const override { return name_.c_str(); }

  Status init(int receivers, bool pairs) {
    SLUICE_RETURN_IF_ERROR(open_sender(main_, 0));
    for (int i = 1; i <= receivers; ++i) {
      SLUICE_RETURN_IF_ERROR(main_.ipc->create_endpoint(i));
    }
    if (pairs) {
      pair_senders_.resize(static_cast<size_t>(receivers));
      for (int i = 1; i <= receivers; ++i) {
        SLUICE_RETURN_IF_ERROR(
            open_sender(pair_senders_[static_cast<size_t>(i - 1)], receivers + i));
      }
    }
    // Every receiver's connection is open before init returns: a PostgreSQL backend starting
    // up while another system's point is timed would take its CPU.
    connected_.emplace(receivers);
    for (int i = 1; i <= receivers; ++i) {
      threads_.emplace_back([this, i] {
        auto s = db_->connect();
        connected_->count_down();
        if (!s.is_ok()) {
          std::fprintf(stderr, "receiver: %s\n", s.status().to_string().c_str());
          return;
        }
        dbos::Ipc rx(**s);
        // The replies go out in the transaction that takes the messages (recv_with): one
        // transaction per echo, exactly-once processing.
        std::vector<std::string> replies;
        while (!stop_) {
          auto got = rx.recv_with(
              i, 64,
              [&](Session&, std::span<const dbos::Message> msgs) -> Status {
                // One batch per run of messages from the same sender.
                for (size_t b = 0; b < msgs.size();) {
                  size_t e = b;
                  replies.clear();
                  while (e < msgs.size() && msgs[e].sender_id == msgs[b].sender_id)
                    replies.push_back(msgs[e++].data);
                  SLUICE_RETURN_IF_ERROR(rx.send_batch(i, msgs[b].sender_id, replies));
                  b = e;
                }
                return {};
              },
              std::chrono::seconds(60));
          if (!got.is_ok() || stop_)
            break;
        }
      });
    }
    connected_->wait();
    return {};
  }
  Status send(int i, const std::string& data) override {
    Sender& s = sender(i);
    return s.ipc->send(s.id, i + 1, data).status();
  }
  Status send_many(int i, const std::string& data, int count) override {
    std::vector<std::string> v(static_cast<size_t>(count), data);
    Sender& s = sender(i);
    return s.ipc->send_batch(s.id, i + 1, v);
  }
  Status multicast(int n, const std::string& data) override {
    std::vector<int64_t> to;
    for (int k = 1; k <= n; ++k)
      to.push_back(k);
    return main_.ipc->multicast(0, to, data);
  }
  Status recv(int i, std::string* data) override {
    Sender& s = sender(i);
    if (s.inbox.empty()) {
      SLUICE_ASSIGN_OR_RETURN(auto got, s.ipc->recv(s.id, 64, std::chrono::seconds(60)));
      for (auto& m : got)
        s.inbox.push_back(std::move(m.data));
    }
    *data = std::move(s.inbox.front());
    s.inbox.pop_front();
    return {};
  }

 private:
  struct Sender {
    int64_t id = 0;
    std::unique_ptr<Session> session;
    std::unique_ptr<dbos::Ipc> ipc;
    std::deque<std::string> inbox;
  };

  Status open_sender(Sender& s, int64_t id) {
    SLUICE_ASSIGN_OR_RETURN(s.session, db_->connect());
    s.ipc = std::make_unique<dbos::Ipc>(*s.session);
    s.id = id;
    return s.ipc->create_endpoint(id);
  }
  Sender& sender(int i) {
    return pair_senders_.empty() ? main_ : pair_senders_[static_cast<size_t>(i)];
  }

  std::string name_;
  std::shared_ptr<Database> db_;
  Sender main_;
  std::vector<Sender> pair_senders_;  // with `pairs`: receiver i + 1's own sender
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::optional<std::latch> connected_;  // a member: the destructor joins its users first
};

struct IpcPoint {
  double rounds_per_s = 0;
  double msgs_per_s = 0;
  double p50_us = 0;
};

// Rounds run before the clock starts: a dbos receiver's first take prepares its statements (on
// PostgreSQL it also LISTENs through the process's notification thread), and a gRPC stream's
// first message starts its call on the server. Their connections are open already
// (DbosTransport::init); before both, 40 PostgreSQL receivers made the first multicast round
// 0.4–0.9 s of a 0.4 s point.
constexpr int kIpcWarmupRounds = 3;

// `pairs` sender threads, each in ping-pong with receiver i of its own, all at once (the paper's
// Figure 6 varies the number of concurrent senders and receivers, each in its own thread).
// Rounds are counted over all pairs; a pair's round under way when the time is up is finished
// and counted, and the elapsed time runs until the last pair stops.
Result<IpcPoint> ipc_run_pairs(Transport& t, int pairs, size_t size, double seconds) {
  const std::string data(size, 'x');
  std::vector<Status> errors(static_cast<size_t>(pairs));
  std::vector<std::vector<double>> lat(static_cast<size_t>(pairs));
  std::vector<int64_t> rounds(static_cast<size_t>(pairs), 0);
  std::latch warm(pairs), go(1);
  std::atomic<bool> stop{false};
  auto round = [&](int i, std::string* reply) -> Status {
    SLUICE_RETURN_IF_ERROR(t.send(i, data));
    SLUICE_RETURN_IF_ERROR(t.recv(i, reply));
    if (reply->size() != size)
      return data_loss("the echo came back with a different size");
    return {};
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < pairs; ++i) {
    threads.emplace_back([&, i] {
      const auto u = static_cast<size_t>(i);
      std::string reply;
      Status s;
      for (int w = 0; w < kIpcWarmupRounds && s.is_ok(); ++w)
        s = round(i, &reply);
      warm.count_down();
      go.wait();
      while (s.is_ok() && !stop.load(std::memory_order_relaxed)) {
        const auto r0 = Clock::now();
        s = round(i, &reply);
        lat[u].push_back(std::chrono::duration<double, std::micro>(Clock::now() - r0).count());
        ++rounds[u];
      }
      errors[u] = s;
    });
  }
  warm.wait();
  const auto t0 = Clock::now();
  go.count_down();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : threads)
    th.join();
  const double el = seconds_since(t0);
  for (const Status& s : errors)
    SLUICE_RETURN_IF_ERROR(s);
  std::vector<double> all;
  int64_t total = 0;
  for (size_t u = 0; u < lat.size(); ++u) {
    all.insert(all.end(), lat[u].begin(), lat[u].end());
    total += rounds[u];
  }
  IpcPoint p;
  p.rounds_per_s = static_cast<double>(total) / el;
  p.msgs_per_s = p.rounds_per_s * 2;
  p.p50_us = percentile(all, 0.5);
  return p;
}

// pattern: "pingpong" (1 message each way), "ping20" (20 each way), "multicast" (1 to each of
// `receivers`, one reply from each), "pairs" (`receivers` concurrent ping-pong pairs).
Result<IpcPoint> ipc_run(Transport& t, const std::string& pattern, int receivers, size_t size,
                         double seconds) {
  if (pattern == "pairs")
    return ipc_run_pairs(t, receivers, size, seconds);
  const std::string data(size, 'x');
  std::string reply;
  std::vector<double> lat;
  int64_t rounds = 0;
  const int per_round = pattern == "pingpong" ? 1 : pattern == "ping20" ? 20 : receivers;
  auto round = [&]() -> Status {
    if (pattern == "multicast") {
      SLUICE_RETURN_IF_ERROR(t.multicast(receivers, data));
      for (int k = 0; k < receivers; ++k)
        SLUICE_RETURN_IF_ERROR(t.recv(k, &reply));
    } else {
      SLUICE_RETURN_IF_ERROR(per_round == 1 ? t.send(0, data) : t.send_many(0, data, per_round));
      for (int k = 0; k < per_round; ++k)
        SLUICE_RETURN_IF_ERROR(t.recv(0, &reply));
    }
    if (reply.size() != size)
      return data_loss("the echo came back with a different size");
    return {};
  };
  for (int w = 0; w < kIpcWarmupRounds; ++w) {
    SLUICE_RETURN_IF_ERROR(round());
  }
  const auto t0 = Clock::now();
  while (seconds_since(t0) < seconds) {
    const auto r0 = Clock::now();
    SLUICE_RETURN_IF_ERROR(round());
    lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - r0).count());
    ++rounds;
  }
  const double el = seconds_since(t0);
  IpcPoint p;
  p.rounds_per_s = static_cast<double>(rounds) / el;
  p.msgs_per_s = p.rounds_per_s * 2 * per_round;
  p.p50_us = percentile(lat, 0.5);
  return p;
}

// `pattern` and `system` ("" for all) narrow the run, for profiling one case.
Status run_ipc(std::vector<Backend>& backends, int reps, double seconds, bool quick,
               const std::string& pattern, const std::string& system, nlohmann::json& out) {
  struct Case {
    std::string pattern;
    int receivers;
    size_t size;
  };
  std::vector<Case> cases;
  for (size_t size : {size_t{64}, size_t{512}, size_t{8192}}) {
    cases.push_back({"pingpong", 1, size});
    cases.push_back({"ping20", 1, size});
  }
  for (size_t size : {size_t{64}, size_t{8192}}) {
    for (int n : quick ? std::vector<int>{1, 10} : std::vector<int>{1, 5, 10, 20, 40}) {
      cases.push_back({"multicast", n, size});
    }
  }
  for (int n : quick ? std::vector<int>{4} : std::vector<int>{1, 2, 4, 8, 16, 32}) {
    cases.push_back({"pairs", n, 64});
  }
  std::erase_if(cases, [&](const Case& c) { return !pattern.empty() && c.pattern != pattern; });
  for (int rep = 0; rep < reps; ++rep) {
    for (const Case& c : cases) {
      std::vector<std::unique_ptr<Transport>> systems;
      for (auto& b : backends) {
        SLUICE_ASSIGN_OR_RETURN(auto db, b.fresh());
        auto t = std::make_unique<DbosTransport>("dbos-" + b.name, db);
        SLUICE_RETURN_IF_ERROR(t->init(c.receivers, c.pattern == "pairs"));
        systems.push_back(std::move(t));
      }
      SLUICE_ASSIGN_OR_RETURN(auto tcp, make_tcp_transport(c.receivers));
      SLUICE_ASSIGN_OR_RETURN(auto grpc, make_grpc_transport(c.receivers));
      systems.push_back(std::move(tcp));
      systems.push_back(std::move(grpc));
      std::erase_if(systems, [&](const auto& t) {
        return !system.empty() && std::string_view(t->name()) != system;
      });
      // Take turns; rotate the order each repetition.
      std::rotate(systems.begin(), systems.begin() + (rep % static_cast<int>(systems.size())),
                  systems.end());
      for (auto& sys : systems) {
        SLUICE_ASSIGN_OR_RETURN(IpcPoint p, ipc_run(*sys, c.pattern, c.receivers, c.size, seconds));
        out["ipc"].push_back({{"system", sys->name()},
                              {"pattern", c.pattern},
                              {"receivers", c.receivers},
                              {"size", c.size},
                              {"rep", rep},
                              {"rounds_per_s", p.rounds_per_s},
                              {"msgs_per_s", p.msgs_per_s},
                              {"p50_us", p.p50_us}});
        std::printf("ipc %-9s n=%-2d %5zu B %-15s rep=%d %9.0f msgs/s p50 %8.1f us\n",
                    c.pattern.c_str(), c.receivers, c.size, sys->name(), rep, p.msgs_per_s,
                    p.p50_us);
        std::fflush(stdout);
      }
    }
  }
  return {};
}

constexpr const char* kUsage =
    "usage: dbos_bench sched|ipc|all [--reps N] [--seconds S] [--quick] [--latency-warmup N] "
    "[--open-loop-wait spin|sleep] [--out FILE] [--no-postgres] [--no-sqlite] [--pattern "
    "pingpong|ping20|multicast|pairs] "
    "[--system dbos-sqlite|dbos-postgres|tcp|grpc]\n";

int main_impl(int argc, char** argv) {
  if (argc >= 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  // Anything else runs nothing: refuse it before a server starts and an empty result is written.
  if (argc < 2 || (std::string_view(argv[1]) != "sched" && std::string_view(argv[1]) != "ipc" &&
                   std::string_view(argv[1]) != "all")) {
    if (argc >= 2)
      std::fprintf(stderr, "dbos_bench: unknown benchmark '%s'\n", argv[1]);
    std::fputs(kUsage, stderr);
    return 2;
  }
  // Knobs from the environment (SLUICE_DBOS_SQLITE_WAL_AUTOCHECKPOINT=…), as `sluice` reads them.
  if (Status st = KnobRegistry::global().load_environment(KnobRegistry::current_environment());
      !st.is_ok()) {
    std::fprintf(stderr, "dbos_bench: %s\n", st.to_string().c_str());
    return 2;
  }
  const std::string what = argv[1];
  int reps = 5;
  double seconds = 0.5;
  bool quick = false;
  int latency_warmup = 200;
  OpenLoopWait wait = OpenLoopWait::kSpin;
  bool postgres = true;
  bool sqlite = true;
  std::string pattern;
  std::string system;
  std::string out_path = "dbos_bench.json";
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc)
      reps = std::atoi(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc)
      seconds = std::atof(argv[++i]);
    else if (a == "--out" && i + 1 < argc)
      out_path = argv[++i];
    else if (a == "--quick")
      quick = true;
    else if (a == "--latency-warmup" && i + 1 < argc)
      latency_warmup = std::atoi(argv[++i]);
    else if (a == "--open-loop-wait" && i + 1 < argc &&
             (std::string_view(argv[i + 1]) == "spin" || std::string_view(argv[i + 1]) == "sleep"))
      wait = std::string_view(argv[++i]) == "sleep" ? OpenLoopWait::kSleep : OpenLoopWait::kSpin;
    else if (a == "--no-postgres")
      postgres = false;
    else if (a == "--no-sqlite")
      sqlite = false;
    else if (a == "--pattern" && i + 1 < argc)
      pattern = argv[++i];
    else if (a == "--system" && i + 1 < argc)
      system = argv[++i];
    else {
      std::fprintf(stderr, "dbos_bench: unknown argument '%s'\n", a.c_str());
      return 2;
    }
  }
  if (reps < 1 || !(seconds > 0) || latency_warmup < 0) {
    std::fprintf(stderr,
                 "dbos_bench: --reps must be at least 1, --seconds above 0 and --latency-warmup "
                 "at least 0\n");
    return 2;
  }
  char tmpl[] = "/var/tmp/sluice-dbos-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr)
    return 1;
  std::vector<Backend> backends;
  if (sqlite) {
    backends.push_back({.name = "sqlite",
                        .url = fmt::format("sqlite:{}/os.db", tmpl),
                        .server = nullptr,
                        .dir = tmpl});
  }
  dbos::testing::PgServer server;
  if (postgres) {
    // Durability comparable to SQLite with synchronous=normal is documented in docs/dbos.md.
    // SLUICE_BENCH_PG_CONF adds postgresql.conf lines ("autovacuum = off", say) for experiments.
    std::string conf = "synchronous_commit = off\nshared_buffers = 256MB\n";
    if (const char* extra = std::getenv("SLUICE_BENCH_PG_CONF"))
      conf += extra;
    Status s = server.start(conf);
    if (!s.is_ok()) {
      std::fprintf(stderr, "postgres: %s\n", s.to_string().c_str());
      return 1;
    }
    backends.push_back({.name = "postgres", .url = server.url(), .server = &server, .dir = ""});
  }
  nlohmann::json out;
  out["machine"] = {{"nproc", std::thread::hardware_concurrency()}};
  const CpuSample c0 = CpuSample::now();
  const auto t0 = Clock::now();
  Status st;
  if (what == "sched" || what == "all")
    st = run_sched(backends, reps, seconds, latency_warmup, wait, out);
  if (st.is_ok() && (what == "ipc" || what == "all"))
    st = run_ipc(backends, reps, seconds, quick, pattern, system, out);
  const CpuSample c1 = CpuSample::now();
  const double wall = seconds_since(t0);
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double ncpu = static_cast<double>(std::thread::hardware_concurrency());
  const double busy_s = static_cast<double>(c1.busy - c0.busy) / ticks;
  // Everything busy that is not this process (the PostgreSQL server's CPU counts as "other"
  // here: it is part of the benchmark, so this is an upper bound on other engineers' load).
  const double other = std::max(0.0, busy_s - (c1.self_s - c0.self_s)) / (wall * ncpu);
  out["cpu"] = {{"wall_s", wall},
                {"machine_busy_share", busy_s / (wall * ncpu)},
                {"not_this_process_share", other}};
  std::printf("cpu: machine busy %.0f %%, of which not this process %.0f %% (%.0f s)\n",
              100 * busy_s / (wall * ncpu), 100 * other, wall);
  std::ofstream(out_path) << out.dump(1) << "\n";
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  if (!st.is_ok()) {
    std::fprintf(stderr, "dbos_bench: %s\n", st.to_string().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) {
  return sluice::bench::main_impl(argc, argv);
}
