// dbos_fs_bench: the paper's filesystem measurements (§4.4) against ext4 (a directory on this
// machine's disk), short runs.
//
//   meta       files created then deleted by --threads threads (Table 1); beside them the
//              engine's floor, one row inserted and deleted, one transaction each
//   rw         --threads clients, each doing rounds of 20 random 2 KiB block reads or writes (even
//              odds) of one random file (Figure 10a), or one block of each of 20 random files
//              (Figure 10b); a DBOS round is one transaction (FileSystem::batch), an ext4 round
//              is open/pread|pwrite/close
//   analytics  total size of the files of at least 20 KB in a 4000-file tree: one SQL query
//              against a C++ program walking the same tree on ext4 (Table 2)
//
//   dbos_fs_bench [--what all|meta|rw|analytics] [--backend URL|postgres] [--ext4-dir DIR]
//                 [--seconds S] [--threads N] [--files N] [--reps N] [--json FILE]
//
// With --reps N every measurement is repeated N times, its systems taking turns in a rotating
// order; bench/dbos/plot_fs.py turns the JSON of runs into tables and docs/bench/dbos_fs.png.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/common/knobs.h"
#include "sluice/dbos/database.h"
#include "sluice/dbos/fs.h"
#include "sluice/dbos/testing/pg_server.h"

namespace {

using sluice::Status;
using sluice::dbos::Database;
using sluice::dbos::FileLayout;
using sluice::dbos::FileSystem;
namespace stdfs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Config {
  std::string what = "all";
  std::string backend;
  std::string ext4_dir = "/var/tmp/sluice-fs-bench";
  double seconds = 1.0;
  int threads = 2;
  int files = 4000;
  int reps = 1;
  std::string json;
};

constexpr int64_t kBlock = 2048;
constexpr int kBlocksPerFile = 128;  // 256 KiB files, as in the paper
constexpr int kRwFiles = 20;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] void die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "dbos_fs_bench: %s: %s\n", what.c_str(), s.to_string().c_str());
  std::exit(1);
}

void check(const Status& s, const std::string& what) {
  if (!s.is_ok()) {
    die(what, s);
  }
}

std::unique_ptr<FileSystem> open_fs(const std::shared_ptr<Database>& db, FileLayout layout) {
  auto fs = FileSystem::open(db, {.user = "bench", .layout = layout, .block_size = kBlock});
  if (!fs.is_ok()) {
    die("open the filesystem", fs.status());
  }
  return std::move(*fs);
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

struct Point {
  std::string bench;
  std::string system;
  double ops_per_s = 0;
  double mean_us = 0;
  double extra = 0;  // bench-specific (analytics: the sum found)
  int rep = 0;
};

// --- meta: create + delete ---

// Runs `create_delete(t, name)` in a loop on each of --threads threads for --seconds: one
// create and one delete of a name of the thread's own, two operations a turn.
Point churn(const Config& c, std::string system,
            const std::function<void(int, const std::string&)>& create_delete) {
  std::atomic<int64_t> ops{0};
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int t = 0; t < c.threads; ++t) {
    threads.emplace_back([&, t] {
      int64_t n = 0;
      while (since(t0) < c.seconds) {
        create_delete(t, fmt::format("meta{}/f{}", t, n));
        n += 2;
      }
      ops += n;
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  const double rate = static_cast<double>(ops.load()) / since(t0);
  return {"meta", std::move(system), rate, 1e6 * c.threads / rate, 0};
}

Point meta_dbos(const Config& c, const std::shared_ptr<Database>& db, FileLayout layout) {
  // Handles opened (and the tables installed) before the clock starts.
  std::vector<std::unique_ptr<FileSystem>> handles;
  for (int t = 0; t < c.threads; ++t) {
    handles.push_back(open_fs(db, layout));
    (void)handles.back()->mkdir(fmt::format("/meta{}", t));
  }
  return churn(c, fmt::format("dbos-{}", file_layout_name(layout)),
               [&](int t, const std::string& name) {
                 FileSystem& fs = *handles[static_cast<size_t>(t)];
                 check(fs.create("/" + name), "create");
                 check(fs.unlink("/" + name), "unlink");
               });
}

// The engine's floor for the same churn: one row inserted, then deleted, one transaction each,
// in a bare table keyed by the path, through the same Session layer. What a dbos create or
// delete costs above it is the filesystem's own statements.
Point meta_floor(const Config& c, const std::shared_ptr<Database>& db) {
  std::vector<std::unique_ptr<sluice::dbos::Session>> sessions;
  for (int t = 0; t < c.threads; ++t) {
    auto s = db->connect();
    if (!s.is_ok()) {
      die("connect", s.status());
    }
    sessions.push_back(std::move(*s));
  }
  check(sessions[0]->execute_script(
            "CREATE TABLE IF NOT EXISTS bench_floor (path TEXT PRIMARY KEY, mode INTEGER)"),
        "create the floor table");
  // A statement is a transaction: on PostgreSQL in autocommit, one round trip (as a dbos
  // operation is there: one function call); on SQLite through transact, which groups commits.
  const bool autocommit = db->dialect() == sluice::dbos::Dialect::kPostgres;
  return churn(c, "engine-floor", [&](int t, const std::string& name) {
    sluice::dbos::Session& s = *sessions[static_cast<size_t>(t)];
    const std::vector<sluice::dbos::Value> path = {"/" + name};
    const auto statement = [&](const char* sql, const char* what) {
      if (autocommit) {
        check(s.query(sql, path).status(), what);
      } else {
        check(s.transact([&] { return s.query(sql, path).status(); }), what);
      }
    };
    statement("INSERT INTO bench_floor (path, mode) VALUES ($1, 420)", "floor insert");
    statement("DELETE FROM bench_floor WHERE path = $1", "floor delete");
  });
}

Point meta_ext4(const Config& c) {
  for (int t = 0; t < c.threads; ++t) {
    stdfs::create_directories(fmt::format("{}/meta{}", c.ext4_dir, t));
  }
  return churn(c, "ext4", [&](int, const std::string& name) {
    const std::string p = c.ext4_dir + "/" + name;
    const int fd = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0 || ::close(fd) != 0 || ::unlink(p.c_str()) != 0) {
      std::perror("ext4 create/unlink");
      std::exit(1);
    }
  });
}

// --- rw: 20 random 2 KiB blocks of one file, or of 20 files ---

// Each of --threads clients runs rounds on its own handle; a round is one transaction.
Point rw_dbos(const Config& c, const std::shared_ptr<Database>& db, FileLayout layout,
              bool many_files) {
  const std::string dir = fmt::format("/rw-{}", file_layout_name(layout));
  std::vector<std::unique_ptr<FileSystem>> handles;
  for (int t = 0; t < c.threads; ++t) {
    handles.push_back(open_fs(db, layout));
  }
  if (!handles[0]->stat(dir).is_ok()) {  // the files are made once, then reused by every rep
    check(handles[0]->mkdir(dir), "mkdir");
    const std::string data(kBlock * kBlocksPerFile, 'd');
    for (int f = 0; f < kRwFiles; ++f) {
      check(handles[0]->put(fmt::format("{}/f{}", dir, f), data), "put");
    }
  }
  std::atomic<int64_t> total{0};
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int t = 0; t < c.threads; ++t) {
    threads.emplace_back([&, t] {
      FileSystem& fs = *handles[static_cast<size_t>(t)];
      std::mt19937 rng(static_cast<unsigned>(t + 1));
      const std::string block(kBlock, 'w');
      int64_t rounds = 0;
      std::vector<std::pair<std::string, int64_t>> blocks(20);
      std::vector<std::string> files;
      while (since(t0) < c.seconds) {
        const bool write = rng() % 2 == 0;
        const auto one = static_cast<int>(rng() % kRwFiles);
        files.clear();
        for (auto& [path, off] : blocks) {
          path = fmt::format("{}/f{}", dir, many_files ? static_cast<int>(rng() % kRwFiles) : one);
          off = static_cast<int64_t>(rng() % kBlocksPerFile) * kBlock;
          files.push_back(path);
        }
        // The round names its files, as a client that knows them does: on PostgreSQL they are
        // locked in path order first, so two clients' rounds wait for each other instead of
        // deadlocking over their random orders.
        check(fs.batch(files, write,
                       [&]() -> Status {
                         for (const auto& [path, off] : blocks) {
                           if (write) {
                             SLUICE_RETURN_IF_ERROR(fs.write(path, off, block).status());
                           } else {
                             SLUICE_RETURN_IF_ERROR(fs.read(path, off, kBlock).status());
                           }
                         }
                         return {};
                       }),
              "rw round");
        ++rounds;
      }
      total += rounds;
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  const double secs = since(t0);
  const auto rounds = static_cast<double>(total.load());
  return {many_files ? "rw-20-files" : "rw-1-file",
          fmt::format("dbos-{}", file_layout_name(layout)), rounds / secs,
          1e6 * secs * c.threads / rounds, 0};
}

Point rw_ext4(const Config& c, bool many_files) {
  const std::string dir = c.ext4_dir + "/rw";
  if (!stdfs::exists(dir)) {
    stdfs::create_directories(dir);
    const std::string data(kBlock * kBlocksPerFile, 'd');
    for (int f = 0; f < kRwFiles; ++f) {
      std::ofstream(fmt::format("{}/f{}", dir, f), std::ios::binary) << data;
    }
  }
  std::atomic<int64_t> total{0};
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int t = 0; t < c.threads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t + 1));
      std::string block(kBlock, 'w');
      auto io = [&](int fd, bool write) {
        const auto off = static_cast<off_t>(rng() % kBlocksPerFile) * kBlock;
        const ssize_t n = write ? ::pwrite(fd, block.data(), block.size(), off)
                                : ::pread(fd, block.data(), block.size(), off);
        if (n != static_cast<ssize_t>(kBlock)) {
          std::perror("ext4 pread/pwrite");
          std::exit(1);
        }
      };
      int64_t rounds = 0;
      while (since(t0) < c.seconds) {
        const bool write = rng() % 2 == 0;
        if (many_files) {
          for (int i = 0; i < 20; ++i) {
            const std::string p = fmt::format("{}/f{}", dir, rng() % kRwFiles);
            const int fd = ::open(p.c_str(), O_RDWR);
            io(fd, write);
            ::close(fd);
          }
        } else {
          const std::string p = fmt::format("{}/f{}", dir, rng() % kRwFiles);
          const int fd = ::open(p.c_str(), O_RDWR);
          for (int i = 0; i < 20; ++i) {
            io(fd, write);
          }
          ::close(fd);
        }
        ++rounds;
      }
      total += rounds;
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  const double secs = since(t0);
  const auto rounds = static_cast<double>(total.load());
  return {many_files ? "rw-20-files" : "rw-1-file", "ext4", rounds / secs,
          1e6 * secs * c.threads / rounds, 0};
}

// --- analytics: total size of files >= 20 KB in a tree ---

constexpr int64_t kMinSize = 20'000;

int64_t file_size(int i) {
  return (i * 7919) % 65536;
}  // 0..64 KiB, deterministic

// What a user writes on ext4 (the paper's Table 2 "C++" row): walk the tree, stat every file.
int64_t walk_sum(const std::string& root) {
  int64_t sum = 0;
  for (const auto& e : stdfs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) {
      const auto size = static_cast<int64_t>(e.file_size());
      if (size >= kMinSize) {
        sum += size;
      }
    }
  }
  return sum;
}

// Builds the same 4000-file tree in dbos (its own user: the query sums this user's files only,
// as the walk sums this tree only) and on ext4; sizes are set by truncate, the query reads
// metadata only.
std::unique_ptr<FileSystem> analytics_tree(const Config& c, const std::shared_ptr<Database>& db) {
  auto opened = FileSystem::open(db, {.user = "analyst", .layout = FileLayout::kLocalized});
  if (!opened.is_ok()) {
    die("open the filesystem", opened.status());
  }
  auto fs = std::move(*opened);
  const std::string root = c.ext4_dir + "/tree";
  stdfs::remove_all(root);
  check(fs->mkdir("/tree"), "mkdir");
  check(fs->batch([&]() -> Status {
    for (int d = 0; d < 40; ++d) {
      SLUICE_RETURN_IF_ERROR(fs->mkdir(fmt::format("/tree/d{}", d)));
      stdfs::create_directories(fmt::format("{}/d{}", root, d));
    }
    for (int i = 0; i < c.files; ++i) {
      const std::string rel = fmt::format("/d{}/f{}", i % 40, i);
      SLUICE_RETURN_IF_ERROR(fs->create("/tree" + rel));
      SLUICE_RETURN_IF_ERROR(fs->truncate("/tree" + rel, file_size(i)));
      const int fd = ::open((root + rel).c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
      if (fd < 0 || ::ftruncate(fd, file_size(i)) != 0) {
        std::perror("ext4 tree");
        std::exit(1);
      }
      ::close(fd);
    }
    return {};
  }),
        "build the tree");
  return fs;
}

Point analytics(const Config& c, FileSystem& fs, bool sql) {
  int reps = 0;
  int64_t found = 0;
  const auto t0 = Clock::now();
  while (reps < 3 || since(t0) < c.seconds) {
    if (sql) {
      auto r = fs.usage_by_user(kMinSize);
      if (!r.is_ok()) {
        die("usage_by_user", r.status());
      }
      found = sluice::dbos::value_to_int(r->rows.at(0).at(2)).value_or(0);
    } else {
      found = walk_sum(c.ext4_dir + "/tree");
    }
    ++reps;
  }
  const double secs = since(t0);
  return {"analytics", sql ? "dbos-sql" : "ext4-walk", reps / secs, 1e6 * secs / reps,
          static_cast<double>(found)};
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "dbos_fs_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--what") {
      c.what = next();
    } else if (a == "--backend") {
      c.backend = next();
    } else if (a == "--ext4-dir") {
      c.ext4_dir = next();
    } else if (a == "--seconds") {
      c.seconds = std::stod(next());
    } else if (a == "--threads") {
      c.threads = std::stoi(next());
    } else if (a == "--files") {
      c.files = std::stoi(next());
    } else if (a == "--reps") {
      c.reps = std::max(1, std::stoi(next()));
    } else if (a == "--json") {
      c.json = next();
    } else {
      std::fprintf(stderr,
                   "usage: dbos_fs_bench [--what all|meta|rw|analytics] [--backend URL|postgres] "
                   "[--ext4-dir DIR] [--seconds S] [--threads N] [--files N] [--reps N] "
                   "[--json FILE]\n");
      return 2;
    }
  }
  // Knobs from the environment (SLUICE_DBOS_SQLITE_GROUP_COMMIT=0 …), as `sluice` reads them.
  if (Status st = sluice::KnobRegistry::global().load_environment(
          sluice::KnobRegistry::current_environment());
      !st.is_ok()) {
    die("knobs from the environment", st);
  }
  std::string tmp_db;
  sluice::dbos::testing::PgServer server;
  if (c.backend == "postgres") {
    check(server.start("synchronous_commit = off\nshared_buffers = 256MB"), "start PostgreSQL");
    c.backend = server.url();
  } else if (c.backend.empty()) {
    tmp_db = c.ext4_dir + "-db";
    stdfs::remove_all(tmp_db);
    stdfs::create_directories(tmp_db);
    c.backend = "sqlite:" + tmp_db + "/os.db";
  }
  stdfs::remove_all(c.ext4_dir);
  stdfs::create_directories(c.ext4_dir);
  auto db = Database::open(c.backend);
  if (!db.is_ok()) {
    die("open " + c.backend, db.status());
  }
  const std::string load_before = loadavg();
  std::vector<Point> points;
  const bool all = c.what == "all";
  std::unique_ptr<FileSystem> tree;
  if (all || c.what == "analytics") {
    tree = analytics_tree(c, *db);
  }
  using Run = std::function<Point()>;
  const auto local = FileLayout::kLocalized;
  const auto par = FileLayout::kParallel;
  // Per repetition, the systems of each measurement take turns, in an order that rotates.
  std::vector<std::vector<Run>> groups;
  if (all || c.what == "meta") {
    groups.push_back({[&] { return meta_dbos(c, *db, local); },
                      [&] { return meta_dbos(c, *db, par); }, [&] { return meta_ext4(c); },
                      [&] { return meta_floor(c, *db); }});
  }
  if (all || c.what == "rw") {
    for (bool many : {false, true}) {
      groups.push_back({[&, many] { return rw_dbos(c, *db, local, many); },
                        [&, many] { return rw_dbos(c, *db, par, many); },
                        [&, many] { return rw_ext4(c, many); }});
    }
  }
  if (tree) {
    groups.push_back(
        {[&] { return analytics(c, *tree, true); }, [&] { return analytics(c, *tree, false); }});
  }
  for (int rep = 0; rep < c.reps; ++rep) {
    for (auto& g : groups) {
      for (size_t k = 0; k < g.size(); ++k) {
        Point p = g[(k + static_cast<size_t>(rep)) % g.size()]();
        p.rep = rep;
        std::fprintf(stderr, "rep %d %-12s %-16s %12.0f ops/s\n", rep, p.bench.c_str(),
                     p.system.c_str(), p.ops_per_s);
        points.push_back(std::move(p));
      }
    }
  }
  tree.reset();
  const std::string load_after = loadavg();
  std::printf("%-12s %-16s %4s %14s %12s %12s\n", "bench", "system", "rep", "ops/s", "mean us",
              "result");
  nlohmann::json j = nlohmann::json::array();
  for (const auto& p : points) {
    std::printf("%-12s %-16s %4d %14.0f %12.1f %12.0f\n", p.bench.c_str(), p.system.c_str(), p.rep,
                p.ops_per_s, p.mean_us, p.extra);
    j.push_back({{"bench", p.bench},
                 {"system", p.system},
                 {"ops_per_s", p.ops_per_s},
                 {"mean_us", p.mean_us},
                 {"result", p.extra},
                 {"rep", p.rep}});
  }
  std::printf("backend %s, threads %d, /proc/loadavg before %s, after %s\n", (*db)->url().c_str(),
              c.threads, load_before.c_str(), load_after.c_str());
  if (!c.json.empty()) {
    std::ofstream(c.json) << nlohmann::json{{"points", j},
                                            {"backend", (*db)->url()},
                                            {"threads", c.threads},
                                            {"seconds", c.seconds},
                                            {"loadavg_before", load_before},
                                            {"loadavg_after", load_after}}
                                 .dump(2);
  }
  db->reset();
  stdfs::remove_all(c.ext4_dir);
  if (!tmp_db.empty()) {
    stdfs::remove_all(tmp_db);
  }
  return 0;
}
