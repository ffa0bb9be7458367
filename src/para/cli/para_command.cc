// `sluice para serve`: the HTTP/1.1 keep-alive example, one SO_REUSEPORT listener per partition.
// `sluice para bench`: cross-core round trip (para vs a mutex + condition-variable hand-off) and
// 4 KiB random O_DIRECT reads (para vs fio when installed), interleaved repetitions.
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "para/harness.h"
#include "sluice/cli/checks.h"
#include "sluice/cli/command.h"
#include "sluice/common/knobs.h"
#include "sluice/common/topology.h"
#include "sluice/para/net.h"
#include "sluice/para/runtime.h"

namespace sluice::para::cli {
namespace {

struct ServeOptions {
  uint16_t port = 8080;
  std::string address = "127.0.0.1";
  std::string cores;  // overrides para.cores
  std::string body = "Hello from sluice para\n";
  double seconds = 0;  // 0: until SIGINT / SIGTERM
};

Status run_serve(const ServeOptions& so) {
  SLUICE_ASSIGN_OR_RETURN(RuntimeOptions o, RuntimeOptions::from_knobs());
  if (!so.cores.empty()) {
    SLUICE_ASSIGN_OR_RETURN(o.cores, parse_cpu_list(so.cores));
  }
  o.arena_size = std::min<size_t>(o.arena_size, size_t{16} << 20);
  // Block the stop signals before the reactors start so only this thread receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Runtime> rt, Runtime::start(o));
  static HttpStats stats;
  static HttpOptions http;
  http.body = so.body;
  bool steered = true;
  for (int core : rt->cores()) {
    Result<bool> r = rt->run_on(core, [&so]() -> Result<bool> {
      Result<TcpListener> l = TcpListener::bind({.address = so.address, .port = so.port});
      if (!l.is_ok())
        return l.status();
      const bool cpu = l->incoming_cpu_set();
      local_reactor().spawn([](TcpListener listener) -> Task<void> {
        co_await serve_http(listener, http, &stats, nullptr);
      }(std::move(l).value()));
      return cpu;
    });
    if (!r.is_ok()) {
      rt->stop();
      return r.status().with_context("listen on core " + std::to_string(core));
    }
    steered = steered && *r;
  }
  std::printf("sluice para serve: http://%s:%u/ on %zu partition(s), cores %s (SO_REUSEPORT%s)\n",
              so.address.c_str(), so.port, rt->size(), format_cpu_list(rt->cores()).c_str(),
              steered ? " + SO_INCOMING_CPU" : "");
  std::fflush(stdout);
  if (so.seconds > 0) {
    timespec ts{static_cast<time_t>(so.seconds),
                static_cast<long>(
                    (so.seconds - static_cast<double>(static_cast<time_t>(so.seconds))) * 1e9)};
    sigtimedwait(&stop_signals, nullptr, &ts);
  } else {
    int sig = 0;
    sigwait(&stop_signals, &sig);
  }
  rt->stop();
  std::printf("served %llu requests on %llu connections (%llu bad)\n",
              static_cast<unsigned long long>(stats.requests.load()),
              static_cast<unsigned long long>(stats.connections.load()),
              static_cast<unsigned long long>(stats.bad_requests.load()));
  return {};
}

struct BenchOptions {
  int reps = 5;
  int msg_iters = 100000;
  double io_seconds = 3;
  std::string file;
  int depth = 32;
  bool io = true;
  bool msg = true;
};

Status run_bench(const BenchOptions& bo) {
  SLUICE_ASSIGN_OR_RETURN(CpuTopology topo, CpuTopology::detect());
  const std::vector<int>& cpus = topo.allowed_cpus();
  const int a = cpus.front();
  const int b = cpus.back();
  if (bo.msg) {
    if (a == b)
      return failed_precondition("the message benchmark needs two allowed cores");
    std::printf(
        "cross-core round trip, core %d -> %d, %d round trips per rep, %d reps "
        "(interleaved)\n",
        a, b, bo.msg_iters, bo.reps);
    std::vector<double> ps, pp, mc;
    for (int rep = 0; rep < bo.reps; ++rep) {
      SLUICE_ASSIGN_OR_RETURN(double s,
                              bench::para_round_trip_ns(a, b, bo.msg_iters, IdleMode::kSleep));
      SLUICE_ASSIGN_OR_RETURN(double p,
                              bench::para_round_trip_ns(a, b, bo.msg_iters, IdleMode::kPoll));
      const double m = bench::mutex_cv_round_trip_ns(a, b, bo.msg_iters);
      ps.push_back(s);
      pp.push_back(p);
      mc.push_back(m);
    }
    const double mm = bench::median(mc);
    std::printf("  %-26s median %8.0f ns  (min %.0f, max %.0f)  %.3fx of mutex+condvar time\n",
                "para submit_to, idle=sleep", bench::median(ps),
                *std::min_element(ps.begin(), ps.end()), *std::max_element(ps.begin(), ps.end()),
                bench::median(ps) / mm);
    std::printf("  %-26s median %8.0f ns  (min %.0f, max %.0f)  %.3fx of mutex+condvar time\n",
                "para submit_to, idle=poll", bench::median(pp),
                *std::min_element(pp.begin(), pp.end()), *std::max_element(pp.begin(), pp.end()),
                bench::median(pp) / mm);
    std::printf("  %-26s median %8.0f ns  (min %.0f, max %.0f)\n", "mutex + condvar", mm,
                *std::min_element(mc.begin(), mc.end()), *std::max_element(mc.begin(), mc.end()));
  }
  if (bo.io) {
    std::string path = bo.file;
    if (path.empty())
      path = "/var/tmp/sluice_para_bench.dat";
    SLUICE_RETURN_IF_ERROR(bench::make_data_file(path, uint64_t{256} << 20));
    std::printf("4 KiB random O_DIRECT reads, QD %d, core %d, %s, %.0f s per rep\n", bo.depth, b,
                path.c_str(), bo.io_seconds);
    std::vector<double> para, fio;
    for (int rep = 0; rep < bo.reps; ++rep) {
      SLUICE_ASSIGN_OR_RETURN(bench::IoResult p,
                              bench::para_random_reads(path, b, bo.depth, bo.io_seconds));
      para.push_back(p.iops);
      Result<bench::IoResult> f = bench::fio_random_reads(path, b, bo.depth, bo.io_seconds);
      if (f.is_ok())
        fio.push_back(f->iops);
    }
    std::printf("  para  median %10.0f IOPS (min %.0f, max %.0f)\n", bench::median(para),
                *std::min_element(para.begin(), para.end()),
                *std::max_element(para.begin(), para.end()));
    if (!fio.empty()) {
      std::printf("  fio   median %10.0f IOPS (min %.0f, max %.0f); para/fio = %.2f\n",
                  bench::median(fio), *std::min_element(fio.begin(), fio.end()),
                  *std::max_element(fio.begin(), fio.end()),
                  bench::median(para) / bench::median(fio));
    } else {
      std::printf("  fio   not available (install fio for the peer)\n");
    }
  }
  return {};
}

SLUICE_REGISTER_COMMAND(
    para, {.name = "para",
           .help = "The partitioned thread-per-core runtime: HTTP example and benchmarks",
           .order = 30,
           .setup = [](CLI::App& para) {
             para.require_subcommand(1);
             auto so = std::make_shared<ServeOptions>();
             auto* serve = para.add_subcommand(
                 "serve", "HTTP/1.1 keep-alive server, one SO_REUSEPORT listener per core");
             serve->add_option("--port", so->port, "TCP port")->capture_default_str();
             serve->add_option("--address", so->address, "IPv4 address to listen on")
                 ->capture_default_str();
             serve->add_option("--cores", so->cores,
                               "cores as a CPU list (0-3,6); default: knob para.cores");
             serve->add_option("--body", so->body, "response body");
             serve->add_option("--seconds", so->seconds, "stop after this long (0: on SIGINT)")
                 ->check(sluice::cli::at_least(0));
             sluice::cli::bind_action(*serve, [so] { return run_serve(*so); });

             auto bo = std::make_shared<BenchOptions>();
             auto* bench = para.add_subcommand(
                 "bench", "cross-core round trip vs mutex+condvar; O_DIRECT reads vs fio");
             bench->add_option("--reps", bo->reps, "repetitions")
                 ->capture_default_str()
                 ->check(sluice::cli::at_least(1));
             bench->add_option("--msg-iters", bo->msg_iters, "round trips per repetition")
                 ->check(sluice::cli::at_least(1));
             bench->add_option("--io-seconds", bo->io_seconds, "seconds per read measurement")
                 ->check(sluice::cli::at_least(0.01));
             bench->add_option("--file", bo->file, "data file (ext4/xfs; created, 256 MiB)");
             bench->add_option("--depth", bo->depth, "queue depth")
                 ->check(sluice::cli::in_range(1, 4096));
             bench->add_flag("!--no-io", bo->io, "skip the storage benchmark");
             bench->add_flag("!--no-msg", bo->msg, "skip the message benchmark");
             sluice::cli::bind_action(*bench, [bo] { return run_bench(*bo); });
           }});

}  // namespace
}  // namespace sluice::para::cli
