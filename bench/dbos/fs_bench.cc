// dbos_fs_bench: the paper's filesystem measurements (§4.4) against ext4 (a directory on this
// machine's disk), short runs.
//
//   meta       files created then deleted by --threads threads (Table 1)
//   rw         20 random 2 KiB block reads or writes (even odds) of one random file per round
//              (Figure 10a), or one block of each of 20 random files (Figure 10b); a DBOS round is
//              one transaction (FileSystem::batch), an ext4 round is open/pread|pwrite/close
//   analytics  total size of the files of at least 20 KB in a 4000-file tree: one SQL query
//              against a C++ program walking the same tree on ext4 (Table 2)
//
//   dbos_fs_bench [--what all|meta|rw|analytics] [--backend URL|postgres] [--ext4-dir DIR]
//                 [--seconds S] [--threads N] [--files N] [--json FILE]
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
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

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
};

// --- meta: create + delete ---

Point meta_dbos(const Config& c, const std::shared_ptr<Database>& db, FileLayout layout) {
  // Handles opened (and the tables installed) before the clock starts.
  std::vector<std::unique_ptr<FileSystem>> handles;
  for (int t = 0; t < c.threads; ++t) {
    handles.push_back(open_fs(db, layout));
    (void)handles.back()->mkdir(fmt::format("/meta{}", t));
  }
  std::atomic<int64_t> ops{0};
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int t = 0; t < c.threads; ++t) {
    threads.emplace_back([&, t] {
      FileSystem& fs = *handles[static_cast<size_t>(t)];
      int64_t n = 0;
      while (since(t0) < c.seconds) {
        const std::string p = fmt::format("/meta{}/f{}", t, n);
        check(fs.create(p), "create");
        check(fs.unlink(p), "unlink");
        n += 2;
      }
      ops += n;
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  const double secs = since(t0);
  const double rate = static_cast<double>(ops.load()) / secs;
  return {"meta", fmt::format("dbos-{}", file_layout_name(layout)), rate, 1e6 * c.threads / rate,
          0};
}

Point meta_ext4(const Config& c) {
  for (int t = 0; t < c.threads; ++t) {
    stdfs::create_directories(fmt::format("{}/meta{}", c.ext4_dir, t));
  }
  std::atomic<int64_t> ops{0};
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int t = 0; t < c.threads; ++t) {
    threads.emplace_back([&, t] {
      int64_t n = 0;
      while (since(t0) < c.seconds) {
        const std::string p = fmt::format("{}/meta{}/f{}", c.ext4_dir, t, n);
        const int fd = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0 || ::close(fd) != 0 || ::unlink(p.c_str()) != 0) {
          std::perror("ext4 create/unlink");
          std::exit(1);
        }
        n += 2;
      }
      ops += n;
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  const double secs = since(t0);
  const double rate = static_cast<double>(ops.load()) / secs;
  return {"meta", "ext4", rate, 1e6 * c.threads / rate, 0};
}

// --- rw: 20 random 2 KiB blocks of one file, or of 20 files ---

Point rw_dbos(const Config& c, const std::shared_ptr<Database>& db, FileLayout layout,
              bool many_files) {
  auto fs = open_fs(db, layout);
  (void)fs->mkdir("/rw");
  const std::string data(kBlock * kBlocksPerFile, 'd');
  for (int f = 0; f < kRwFiles; ++f) {
    check(fs->put(fmt::format("/rw/f{}", f), data), "put");
  }
  std::mt19937 rng(1);
  const std::string block(kBlock, 'w');
  int64_t rounds = 0;
  const auto t0 = Clock::now();
  while (since(t0) < c.seconds) {
    const bool write = rng() % 2 == 0;
    const auto one = static_cast<int>(rng() % kRwFiles);
    check(fs->batch([&]() -> Status {
      for (int i = 0; i < 20; ++i) {
        const std::string p =
            fmt::format("/rw/f{}", many_files ? static_cast<int>(rng() % kRwFiles) : one);
        const auto off = static_cast<int64_t>(rng() % kBlocksPerFile) * kBlock;
        if (write) {
          SLUICE_RETURN_IF_ERROR(fs->write(p, off, block).status());
        } else {
          SLUICE_RETURN_IF_ERROR(fs->read(p, off, kBlock).status());
        }
      }
      return {};
    }),
          "rw round");
    ++rounds;
  }
  const double secs = since(t0);
  return {many_files ? "rw-20-files" : "rw-1-file",
          fmt::format("dbos-{}", file_layout_name(layout)), static_cast<double>(rounds) / secs,
          1e6 * secs / static_cast<double>(rounds), 0};
}

Point rw_ext4(const Config& c, bool many_files) {
  const std::string dir = c.ext4_dir + "/rw";
  stdfs::create_directories(dir);
  const std::string data(kBlock * kBlocksPerFile, 'd');
  for (int f = 0; f < kRwFiles; ++f) {
    std::ofstream(fmt::format("{}/f{}", dir, f), std::ios::binary) << data;
  }
  std::mt19937 rng(1);
  std::string block(kBlock, 'w');
  int64_t rounds = 0;
  const auto t0 = Clock::now();
  auto io = [&](int fd, bool write) {
    const auto off = static_cast<off_t>(rng() % kBlocksPerFile) * kBlock;
    const ssize_t n = write ? ::pwrite(fd, block.data(), block.size(), off)
                            : ::pread(fd, block.data(), block.size(), off);
    if (n != static_cast<ssize_t>(kBlock)) {
      std::perror("ext4 pread/pwrite");
      std::exit(1);
    }
  };
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
  const double secs = since(t0);
  return {many_files ? "rw-20-files" : "rw-1-file", "ext4", static_cast<double>(rounds) / secs,
          1e6 * secs / static_cast<double>(rounds), 0};
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

std::vector<Point> analytics(const Config& c, const std::shared_ptr<Database>& db) {
  // Its own user: the query sums this user's files only, as the walk sums this tree only.
  auto opened = FileSystem::open(db, {.user = "analyst", .layout = FileLayout::kLocalized});
  if (!opened.is_ok()) {
    die("open the filesystem", opened.status());
  }
  auto fs = std::move(*opened);
  const std::string root = c.ext4_dir + "/tree";
  stdfs::remove_all(root);
  // 40 directories of files; sizes set by truncate: the query reads metadata only.
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
  std::vector<Point> out;
  for (int pass = 0; pass < 2; ++pass) {
    const bool sql = pass == 0;
    int reps = 0;
    int64_t found = 0;
    const auto t0 = Clock::now();
    while (reps < 3 || since(t0) < c.seconds) {
      if (sql) {
        auto r = fs->usage_by_user(kMinSize);
        if (!r.is_ok()) {
          die("usage_by_user", r.status());
        }
        found = sluice::dbos::value_to_int(r->rows.at(0).at(2)).value_or(0);
      } else {
        found = walk_sum(root);
      }
      ++reps;
    }
    const double secs = since(t0);
    out.push_back({"analytics", sql ? "dbos-sql" : "ext4-walk", reps / secs, 1e6 * secs / reps,
                   static_cast<double>(found)});
  }
  return out;
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
    } else if (a == "--json") {
      c.json = next();
    } else {
      std::fprintf(stderr,
                   "usage: dbos_fs_bench [--what all|meta|rw|analytics] [--backend URL|postgres] "
                   "[--ext4-dir DIR] [--seconds S] [--threads N] [--files N] [--json FILE]\n");
      return 2;
    }
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
  for (FileLayout layout : {FileLayout::kLocalized, FileLayout::kParallel}) {
    if (all || c.what == "meta") {
      points.push_back(meta_dbos(c, *db, layout));
    }
    if (all || c.what == "rw") {
      points.push_back(rw_dbos(c, *db, layout, false));
      points.push_back(rw_dbos(c, *db, layout, true));
    }
  }
  if (all || c.what == "meta") {
    points.push_back(meta_ext4(c));
  }
  if (all || c.what == "rw") {
    points.push_back(rw_ext4(c, false));
    points.push_back(rw_ext4(c, true));
  }
  if (all || c.what == "analytics") {
    for (auto& p : analytics(c, *db)) {
      points.push_back(p);
    }
  }
  const std::string load_after = loadavg();
  std::printf("%-12s %-16s %14s %12s %12s\n", "bench", "system", "ops/s", "mean us", "result");
  nlohmann::json j = nlohmann::json::array();
  for (const auto& p : points) {
    std::printf("%-12s %-16s %14.0f %12.1f %12.0f\n", p.bench.c_str(), p.system.c_str(),
                p.ops_per_s, p.mean_us, p.extra);
    j.push_back({{"bench", p.bench},
                 {"system", p.system},
                 {"ops_per_s", p.ops_per_s},
                 {"mean_us", p.mean_us},
                 {"result", p.extra}});
  }
  std::printf("backend %s, threads %d, /proc/loadavg before %s, after %s\n", (*db)->url().c_str(),
              c.threads, load_before.c_str(), load_after.c_str());
  if (!c.json.empty()) {
    std::ofstream(c.json) << nlohmann::json{
        {"points", j},
        {"backend", (*db)->url()},
        {"loadavg_before", load_before},
        {"loadavg_after",
         load_after}}.dump(2);
  }
  db->reset();
  stdfs::remove_all(c.ext4_dir);
  if (!tmp_db.empty()) {
    stdfs::remove_all(tmp_db);
  }
  return 0;
}
