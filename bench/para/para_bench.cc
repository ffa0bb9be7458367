// para against its peers, interleaved, several repetitions, one JSON file out (docs/para.md).
//
//   para_bench --what io,msg,http --reps 5 --seconds 5 --file /var/tmp/para.dat --out r.json
//
//   io    4 KiB random O_DIRECT reads, QD 32, one core: para vs fio (ioengine=io_uring), with
//         fio's defaults and with its buffers and file registered
//   msg   cross-core round trip: para submit_to (idle=sleep and idle=poll) vs mutex + condvar
//   http  the HTTP keep-alive example under wrk on loopback vs nginx (one worker per core) and
//         vs an epoll thread-pool server (below); servers on --server-cores, wrk on
//         --client-core; once per --pipeline depth (1: no pipelining), with the busy share of
//         the server cores and the requests per busy server-core second
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <atomic>
#include <cinttypes>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <CLI/CLI.hpp>

#include "para/harness.h"
#include "sluice/common/topology.h"
#include "sluice/para/net.h"

namespace sluice::para::bench {
namespace {

const std::string kBody = "Hello from sluice para\n";

struct CpuSample {
  uint64_t busy = 0, total = 0;
};
// The whole machine (`cores` empty) or the sum over `cores`, from /proc/stat.
CpuSample read_cpu(const std::vector<int>& cores = {}) {
  std::ifstream in("/proc/stat");
  CpuSample s;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("cpu", 0) != 0)
      break;
    std::istringstream words(line);
    std::string name;
    words >> name;
    const bool all = name == "cpu";
    if (cores.empty() != all)
      continue;
    if (!all && std::find(cores.begin(), cores.end(), std::atoi(name.c_str() + 3)) == cores.end())
      continue;
    uint64_t v[10] = {};
    for (auto& x : v)
      words >> x;
    uint64_t total = 0;
    for (auto x : v)
      total += x;
    s.total += total;
    s.busy += total - v[3] - v[4];
  }
  return s;
}
double busy_share(const CpuSample& a, const CpuSample& b) {
  return b.total > a.total
             ? static_cast<double>(b.busy - a.busy) / static_cast<double>(b.total - a.total)
             : 0.0;
}

// --- wrk ---

struct WrkResult {
  double rps = 0;
  double p99_ms = 0;
  // Busy share of the server cores while wrk ran (softirq work for the server's sockets
  // included), and the requests per busy server-core second: what a server would serve per
  // core if it, and not wrk, were the bottleneck.
  double server_busy = 0;
  double rps_per_core = 0;
};

// One wrk connection sends `depth` requests per write (HTTP/1.1 pipelining, as in the
// TechEmpower plaintext test) when depth > 1, so wrk's own cost per request shrinks and the
// server, not the load generator, becomes the bottleneck.
std::string pipeline_script(int depth) {
  const std::string path = std::filesystem::temp_directory_path() /
                           ("para_bench_pipeline_" + std::to_string(depth) + ".lua");
  std::ofstream(path) << "init = function(args)\n"
                      << "  local r = {}\n"
                      << "  for i = 1, " << depth << " do r[i] = wrk.format() end\n"
                      << "  req = table.concat(r)\n"
                      << "end\n"
                      << "request = function() return req end\n";
  return path;
}

double to_ms(const std::string& s) {
  const double v = std::atof(s.c_str());
  if (s.find("us") != std::string::npos)
    return v / 1000;
  if (s.find("ms") != std::string::npos)
    return v;
  if (s.find('s') != std::string::npos)
    return v * 1000;
  return v;
}

struct WrkRun {
  uint16_t port = 0;
  int client_core = 0;
  std::vector<int> server_cores;
  int connections = 64;
  int seconds = 5;
  int depth = 1;
};

Result<WrkResult> run_wrk(const WrkRun& run) {
  std::string cmd = "taskset -c " + std::to_string(run.client_core) + " wrk -t1 -c" +
                    std::to_string(run.connections) + " -d" + std::to_string(run.seconds) +
                    "s --latency ";
  if (run.depth > 1)
    cmd += "-s " + pipeline_script(run.depth) + " ";
  cmd += "http://127.0.0.1:" + std::to_string(run.port) + "/ 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr)
    return unavailable("cannot run wrk");
  // wrk connects within milliseconds; the sample window is its whole run.
  const CpuSample cpu0 = read_cpu(run.server_cores);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  const CpuSample cpu1 = read_cpu(run.server_cores);
  pclose(p);
  WrkResult r;
  r.server_busy = busy_share(cpu0, cpu1);
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string a, b;
    words >> a >> b;
    if (a == "Requests/sec:")
      r.rps = std::atof(b.c_str());
    if (a == "99%")
      r.p99_ms = to_ms(b);
  }
  if (r.rps == 0)
    return unavailable("wrk reported nothing: " + out);
  if (r.server_busy > 0)
    r.rps_per_core = r.rps / (r.server_busy * static_cast<double>(run.server_cores.size()));
  if (out.find("Non-2xx") != std::string::npos || out.find("Socket errors") != std::string::npos) {
    std::fprintf(stderr, "wrk warnings on port %u:\n%s\n", run.port, out.c_str());
  }
  return r;
}

bool wait_port(uint16_t port) {
  for (int i = 0; i < 200; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    close(fd);
    if (ok)
      return true;
    usleep(20000);
  }
  return false;
}

// --- servers ---

Result<WrkResult> bench_para_http(const WrkRun& run) {
  const std::vector<int>& cores = run.server_cores;
  const uint16_t port = run.port;
  RuntimeOptions o;
  o.cores = cores;
  o.arena_size = size_t{4} << 20;
  o.offload_threads = 1;
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Runtime> rt, Runtime::start(o));
  static HttpStats stats;
  static const HttpOptions options{.body = kBody};
  for (int core : cores) {
    Status s = rt->run_on(core, [port]() -> Status {
      Result<TcpListener> l = TcpListener::bind({.port = port});
      if (!l.is_ok())
        return l.status();
      local_reactor().spawn([](TcpListener listener) -> Task<void> {
        co_await serve_http(listener, options, &stats, nullptr);
      }(std::move(l).value()));
      return {};
    });
    SLUICE_RETURN_IF_ERROR(s);
  }
  Result<WrkResult> r = run_wrk(run);
  rt->stop();
  return r;
}

// The epoll thread-pool peer: `threads` workers share one epoll set; the listener is
// EPOLLEXCLUSIVE, connections EPOLLONESHOT (a connection is served by one worker at a time).
Result<WrkResult> bench_epoll_http(const WrkRun& run) {
  const std::vector<int>& cores = run.server_cores;
  const uint16_t port = run.port;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(lfd, 1024) != 0) {
    close(lfd);
    return errno_status(errno, "epoll server bind");
  }
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  const int wake = eventfd(0, EFD_NONBLOCK);
  ev.events = EPOLLIN;
  ev.data.fd = wake;
  epoll_ctl(ep, EPOLL_CTL_ADD, wake, &ev);
  std::atomic<bool> quit{false};
  const std::string response =
      "HTTP/1.1 200 OK\r\nServer: epoll-pool\r\nContent-Type: "
      "text/plain\r\nContent-Length: " +
      std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
  struct Conn {
    std::string in;
  };
  std::mutex conns_mu;
  std::map<int, std::unique_ptr<Conn>> conn_state;
  auto worker = [&](int core) {
    pin_to(core);
    epoll_event events[64];
    char buf[16384];
    while (!quit.load()) {
      const int n = epoll_wait(ep, events, 64, 100);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake)
          return;
        if (fd == lfd) {
          for (;;) {
            int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c < 0)
              break;
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            {
              std::lock_guard<std::mutex> lock(conns_mu);
              conn_state[c] = std::make_unique<Conn>();
            }
            epoll_event cev{};
            cev.events = EPOLLIN | EPOLLONESHOT | EPOLLRDHUP;
            cev.data.fd = c;
            epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          }
          continue;
        }
        Conn* conn;
        {
          std::lock_guard<std::mutex> lock(conns_mu);
          conn = conn_state[fd].get();
        }
        bool close_it = false;
        for (;;) {
          const ssize_t r = recv(fd, buf, sizeof(buf), 0);
          if (r > 0) {
            conn->in.append(buf, static_cast<size_t>(r));
            continue;
          }
          if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            close_it = true;
          break;
        }
        std::string out;
        size_t consumed = 0;
        for (;;) {
          Result<HttpRequestHead> h =
              parse_http_request(std::string_view(conn->in).substr(consumed));
          if (!h.is_ok()) {
            close_it = true;
            break;
          }
          if (h->length == 0)
            break;
          consumed += h->length;
          out += response;
          if (!h->keep_alive) {
            close_it = true;
            break;
          }
        }
        conn->in.erase(0, consumed);
        size_t sent = 0;
        while (sent < out.size()) {
          const ssize_t w = send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
          if (w <= 0) {
            if (w < 0 && errno == EAGAIN) {
              usleep(50);
              continue;
            }
            close_it = true;
            break;
          }
          sent += static_cast<size_t>(w);
        }
        if (close_it) {
          epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
          {
            std::lock_guard<std::mutex> lock(conns_mu);
            conn_state.erase(fd);
          }
          close(fd);
        } else {
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLONESHOT | EPOLLRDHUP;
          cev.data.fd = fd;
          epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
        }
      }
    }
  };
  std::vector<std::thread> threads;
  for (int c : cores)
    threads.emplace_back(worker, c);
  Result<WrkResult> r = run_wrk(run);
  quit = true;
  const uint64_t v = 1;
  [[maybe_unused]] ssize_t w = write(wake, &v, sizeof(v));
  for (auto& t : threads)
    t.join();
  for (auto& [fd, c] : conn_state)
    close(fd);
  close(wake);
  close(ep);
  close(lfd);
  return r;
}

Result<WrkResult> bench_nginx_http(const WrkRun& run, const std::string& dir) {
  const std::vector<int>& cores = run.server_cores;
  const uint16_t port = run.port;
  std::filesystem::create_directories(dir + "/logs");
  const std::string conf = dir + "/nginx.conf";
  {
    std::ofstream c(conf);
    c << "worker_processes " << cores.size() << ";\n"
      << "daemon off;\npid " << dir << "/nginx.pid;\nerror_log " << dir << "/error.log warn;\n"
      << "events { worker_connections 4096; }\n"
      << "http {\n  access_log off;\n  keepalive_requests 100000000;\n  default_type "
         "text/plain;\n"
      << "  server {\n    listen 127.0.0.1:" << port << " reuseport;\n"
      << "    location / { return 200 \""
      << "Hello from sluice para\\n"
      << "\"; }\n  }\n}\n";
  }
  std::string list;
  for (int c : cores)
    list += (list.empty() ? "" : ",") + std::to_string(c);
  const pid_t pid = fork();
  if (pid == 0) {
    execlp("taskset", "taskset", "-c", list.c_str(), "nginx", "-p", dir.c_str(), "-c", conf.c_str(),
           static_cast<char*>(nullptr));
    _exit(127);
  }
  if (!wait_port(port)) {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    return unavailable("nginx did not start (see " + dir + "/error.log)");
  }
  Result<WrkResult> r = run_wrk(run);
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  return r;
}

}  // namespace
}  // namespace sluice::para::bench

int main(int argc, char** argv) {
  using namespace sluice::para::bench;  // NOLINT
  CLI::App app{"para against fio, nginx, an epoll thread pool and a mutex/condvar hand-off"};
  std::string what = "io,msg,http";
  int reps = 5;
  int seconds = 5;
  std::string file = "/var/tmp/para_bench.dat";
  uint64_t file_mb = 1024;
  int depth = 32;
  int io_core = 1;
  std::vector<int> server_cores = {1};
  int client_core = 0;
  int connections = 64;
  std::vector<int> pipeline = {1, 16};
  int msg_iters = 10000;
  std::string out = "para_bench.json";
  app.add_option("--what", what, "comma list of io, msg, http");
  app.add_option("--reps", reps, "repetitions (interleaved)");
  app.add_option("--seconds", seconds, "seconds per io / http measurement");
  app.add_option("--file", file, "data file for the io benchmark (ext4/xfs, not tmpfs)");
  app.add_option("--file-mb", file_mb, "size of the data file");
  app.add_option("--depth", depth, "queue depth for the io benchmark");
  app.add_option("--io-core", io_core, "core for the io benchmark");
  app.add_option("--server-cores", server_cores, "cores the HTTP servers run on");
  app.add_option("--client-core", client_core, "core wrk runs on");
  app.add_option("--connections", connections, "wrk connections");
  app.add_option("--pipeline", pipeline,
                 "HTTP requests per wrk write, one measurement each (1: no pipelining)");
  app.add_option("--msg-iters", msg_iters, "round trips per message measurement");
  app.add_option("--out", out, "JSON results");
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);

  nlohmann::json results = nlohmann::json::array();
  auto record = [&](const std::string& bench, const std::string& system, int rep,
                    const std::string& metric, double value) {
    results.push_back(
        {{"bench", bench}, {"system", system}, {"rep", rep}, {"metric", metric}, {"value", value}});
    std::printf("%-5s %-16s rep %d  %-8s %.1f\n", bench.c_str(), system.c_str(), rep,
                metric.c_str(), value);
    std::fflush(stdout);
  };
  // Other work on the machine: the CPU busy share over 2 s before anything of ours runs.
  const CpuSample idle0 = read_cpu();
  sleep(2);
  const CpuSample idle1 = read_cpu();
  const double others = idle1.total > idle0.total
                            ? static_cast<double>(idle1.busy - idle0.busy) /
                                  static_cast<double>(idle1.total - idle0.total)
                            : 0.0;
  std::printf("CPU busy share from other work before the run: %.0f%%\n", 100 * others);
  const CpuSample cpu0 = read_cpu();
  std::ifstream la("/proc/loadavg");
  std::string load_before;
  std::getline(la, load_before);

  if (what.find("io") != std::string::npos) {
    sluice::Status s = make_data_file(file, file_mb << 20);
    if (!s.is_ok()) {
      std::fprintf(stderr, "%s\n", s.to_string().c_str());
      return 1;
    }
    for (int rep = 0; rep < reps; ++rep) {
      auto p = para_random_reads(file, io_core, depth, seconds);
      if (p.is_ok())
        record("io", "para", rep, "iops", p->iops);
      else
        std::fprintf(stderr, "para io: %s\n", p.status().to_string().c_str());
      auto pp = para_random_reads(file, io_core, depth, seconds, sluice::para::IdleMode::kPoll);
      if (pp.is_ok())
        record("io", "para-poll", rep, "iops", pp->iops);
      else
        std::fprintf(stderr, "para io (poll): %s\n", pp.status().to_string().c_str());
      auto f = fio_random_reads(file, io_core, depth, seconds);
      if (f.is_ok())
        record("io", "fio", rep, "iops", f->iops);
      else
        std::fprintf(stderr, "fio: %s\n", f.status().to_string().c_str());
      auto fr = fio_random_reads(file, io_core, depth, seconds, /*registered=*/true);
      if (fr.is_ok())
        record("io", "fio-registered", rep, "iops", fr->iops);
      else
        std::fprintf(stderr, "fio registered: %s\n", fr.status().to_string().c_str());
    }
  }
  if (what.find("msg") != std::string::npos) {
    for (int rep = 0; rep < reps; ++rep) {
      auto ps = para_round_trip_ns(0, 1, msg_iters, sluice::para::IdleMode::kSleep);
      if (ps.is_ok())
        record("msg", "para-sleep", rep, "ns", *ps);
      auto pp = para_round_trip_ns(0, 1, msg_iters, sluice::para::IdleMode::kPoll);
      if (pp.is_ok())
        record("msg", "para-poll", rep, "ns", *pp);
      record("msg", "mutex-condvar", rep, "ns", mutex_cv_round_trip_ns(0, 1, msg_iters));
    }
  }
  if (what.find("http") != std::string::npos) {
    const std::string dir = std::filesystem::temp_directory_path() / "para_bench_nginx";
    uint16_t port = 18080;
    for (int rep = 0; rep < reps; ++rep) {
      for (int pipeline_depth : pipeline) {
        // "http" is one request per round trip; "httpN" pipelines N.
        const std::string bench =
            pipeline_depth > 1 ? "http" + std::to_string(pipeline_depth) : "http";
        WrkRun run{.client_core = client_core,
                   .server_cores = server_cores,
                   .connections = connections,
                   .seconds = seconds,
                   .depth = pipeline_depth};
        auto report = [&](const std::string& system, const sluice::Result<WrkResult>& r) {
          if (!r.is_ok()) {
            std::fprintf(stderr, "%s %s: %s\n", bench.c_str(), system.c_str(),
                         r.status().to_string().c_str());
            return;
          }
          record(bench, system, rep, "rps", r->rps);
          record(bench, system, rep, "p99_ms", r->p99_ms);
          record(bench, system, rep, "server_busy", r->server_busy);
          record(bench, system, rep, "rps_per_core", r->rps_per_core);
        };
        run.port = port++;
        report("para", bench_para_http(run));
        run.port = port++;
        report("nginx", bench_nginx_http(run, dir));
        run.port = port++;
        report("epoll-pool", bench_epoll_http(run));
      }
    }
  }
  const CpuSample cpu1 = read_cpu();
  nlohmann::json doc;
  doc["results"] = results;
  doc["load_before"] = load_before;
  doc["others_busy_share_before"] = others;
  doc["cpu_busy_share"] = cpu1.total > cpu0.total ? static_cast<double>(cpu1.busy - cpu0.busy) /
                                                        static_cast<double>(cpu1.total - cpu0.total)
                                                  : 0.0;
  std::ifstream la2("/proc/loadavg");
  std::string load_after;
  std::getline(la2, load_after);
  doc["load_after"] = load_after;
  std::ofstream(out) << doc.dump(2) << "\n";
  std::printf("wrote %s (CPU busy share during the run, all work on the machine: %.0f%%)\n",
              out.c_str(), 100.0 * doc["cpu_busy_share"].get<double>());
  return 0;
}
