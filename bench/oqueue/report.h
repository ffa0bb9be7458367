// Statistics, machine notes and Google-Benchmark-schema JSON for the oqueue scenario benchmarks.
//
// A scenario run repeats each case several times, interleaved (A B C … A B C …), so one burst of
// noise from other work on the machine hits every case alike. Results are reported as median,
// min, max and median absolute deviation, and A/B comparisons as the median of the per-repetition
// ratios A_r / B_r.
#pragma once

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace sluice::oq::bench {

// ---------------------------------------------------------------------------------------------
// Statistics over repetitions.

struct Summary {
  double median = 0;
  double min = 0;
  double max = 0;
  double mad = 0;  // median absolute deviation
  std::size_t n = 0;
};

inline double median_of(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  const std::size_t mid = v.size() / 2;
  return v.size() % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

inline Summary summarize(const std::vector<double>& v) {
  Summary s;
  s.n = v.size();
  if (v.empty())
    return s;
  s.median = median_of(v);
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  std::vector<double> dev;
  dev.reserve(v.size());
  for (double x : v)
    dev.push_back(std::fabs(x - s.median));
  s.mad = median_of(std::move(dev));
  return s;
}

// Median of a_r / b_r over the repetitions both have (the paired, interleaved ratio).
inline double paired_ratio(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (b[i] > 0)
      r.push_back(a[i] / b[i]);
  }
  return median_of(std::move(r));
}

// ---------------------------------------------------------------------------------------------
// How busy the machine was with work other than ours.

struct CpuSnapshot {
  std::uint64_t total_jiffies = 0;  // all CPUs, all states, from /proc/stat
  std::uint64_t idle_jiffies = 0;   // idle + iowait
  std::uint64_t self_jiffies = 0;   // utime + stime of this process, from /proc/self/stat
  std::string loadavg;              // first three fields of /proc/loadavg
  std::chrono::steady_clock::time_point when = std::chrono::steady_clock::now();
};

inline CpuSnapshot take_cpu_snapshot() {
  CpuSnapshot s;
  {
    std::ifstream stat("/proc/stat");
    std::string cpu;
    stat >> cpu;
    std::uint64_t field = 0;
    for (int i = 0; i < 10 && stat >> field; ++i) {
      // user nice system idle iowait irq softirq steal guest guest_nice; guests are already
      // counted in user and nice.
      if (i < 8)
        s.total_jiffies += field;
      if (i == 3 || i == 4)
        s.idle_jiffies += field;
    }
  }
  {
    std::ifstream self("/proc/self/stat");
    std::string content;
    std::getline(self, content);
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const std::size_t close = content.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(content.substr(close + 2));
      std::string skip;
      for (int i = 3; i <= 13; ++i)
        rest >> skip;  // fields 3..13
      std::uint64_t utime = 0;
      std::uint64_t stime = 0;
      rest >> utime >> stime;
      s.self_jiffies = utime + stime;
    }
  }
  {
    std::ifstream load("/proc/loadavg");
    std::string a, b, c;
    load >> a >> b >> c;
    s.loadavg = a + " " + b + " " + c;
  }
  s.when = std::chrono::steady_clock::now();
  return s;
}

struct CpuBusy {
  double total_share = 0;  // busy jiffies / all jiffies between the snapshots, all CPUs
  double other_share = 0;  // the same, less what this process used: other work on the machine
  std::string loadavg_before;
  std::string loadavg_after;
};

inline CpuBusy cpu_busy_between(const CpuSnapshot& before, const CpuSnapshot& after) {
  CpuBusy b;
  b.loadavg_before = before.loadavg;
  b.loadavg_after = after.loadavg;
  const double total = static_cast<double>(after.total_jiffies - before.total_jiffies);
  if (total <= 0)
    return b;
  const double idle = static_cast<double>(after.idle_jiffies - before.idle_jiffies);
  const double self = static_cast<double>(after.self_jiffies - before.self_jiffies);
  b.total_share = std::clamp((total - idle) / total, 0.0, 1.0);
  b.other_share = std::clamp((total - idle - self) / total, 0.0, 1.0);
  return b;
}

// Measures other work on the machine for `ms` while this process sleeps.
inline double idle_probe_other_share(int ms) {
  const CpuSnapshot a = take_cpu_snapshot();
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return cpu_busy_between(a, take_cpu_snapshot()).other_share;
}

// ---------------------------------------------------------------------------------------------
// The machine, for the report header and the JSON context.

struct MachineInfo {
  std::string cpu_model;
  unsigned num_cpus = 0;
  double mhz = 0;
  std::string kernel;
  std::string host;
};

inline MachineInfo machine_info() {
  MachineInfo m;
  m.num_cpus = std::thread::hardware_concurrency();
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos)
      continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t'))
      key.pop_back();
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && m.cpu_model.empty())
      m.cpu_model = value;
    if (key == "cpu MHz" && m.mhz == 0)
      m.mhz = std::atof(value.c_str());
  }
  utsname u{};
  if (uname(&u) == 0) {
    m.kernel = std::string(u.sysname) + " " + u.release;
    m.host = u.nodename;
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// JSON in Google Benchmark's schema (context + one "iteration" row per repetition), so that
// tools/bench_report.py reads scenario results and micro-benchmark results alike.

struct JsonRow {
  std::string run_name;  // e.g. "pingpong/oq-spin"
  std::string label;     // free text shown beside the name
  int repetition_index = 0;
  int repetitions = 1;
  std::uint64_t iterations = 0;
  double real_time_ns = 0;
  double cpu_time_ns = 0;
  std::vector<std::pair<std::string, double>> counters;  // e.g. items_per_second
};

inline std::string json_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

inline std::string json_number(double v) {
  if (!std::isfinite(v))
    return "0";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// Writes `rows` to `path`. `extra_context` adds string fields to "context". Returns false with a
// message on stderr when the file cannot be written.
inline bool write_benchmark_json(
    const std::string& path, const std::string& executable, const std::vector<JsonRow>& rows,
    const std::vector<std::pair<std::string, std::string>>& extra_context) {
  const MachineInfo m = machine_info();
  std::ofstream out(path);
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    return false;
  }
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", &tm);
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);

  out << "{\n  \"context\": {\n";
  out << "    \"date\": \"" << date << "\",\n";
  out << "    \"host_name\": \"" << json_escape(m.host) << "\",\n";
  out << "    \"executable\": \"" << json_escape(executable) << "\",\n";
  out << "    \"num_cpus\": " << m.num_cpus << ",\n";
  out << "    \"mhz_per_cpu\": " << static_cast<long>(m.mhz) << ",\n";
  out << "    \"cpu_scaling_enabled\": false,\n";
  out << "    \"caches\": [],\n";
  out << "    \"load_avg\": [" << json_number(load[0]) << "," << json_number(load[1]) << ","
      << json_number(load[2]) << "],\n";
  out << "    \"cpu_model\": \"" << json_escape(m.cpu_model) << "\",\n";
  out << "    \"kernel\": \"" << json_escape(m.kernel) << "\",\n";
  for (const auto& [k, v] : extra_context) {
    out << "    \"" << json_escape(k) << "\": \"" << json_escape(v) << "\",\n";
  }
#ifdef NDEBUG
  out << "    \"library_build_type\": \"release\"\n";
#else
  out << "    \"library_build_type\": \"debug\"\n";
#endif
  out << "  },\n  \"benchmarks\": [\n";
  std::map<std::string, int> family;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const JsonRow& r = rows[i];
    const int family_index =
        family.emplace(r.run_name, static_cast<int>(family.size())).first->second;
    out << "    {\n";
    out << "      \"name\": \"" << json_escape(r.run_name) << "\",\n";
    out << "      \"family_index\": " << family_index << ",\n";
    out << "      \"per_family_instance_index\": 0,\n";
    out << "      \"run_name\": \"" << json_escape(r.run_name) << "\",\n";
    out << "      \"run_type\": \"iteration\",\n";
    out << "      \"repetitions\": " << r.repetitions << ",\n";
    out << "      \"repetition_index\": " << r.repetition_index << ",\n";
    out << "      \"threads\": 1,\n";
    out << "      \"iterations\": " << r.iterations << ",\n";
    out << "      \"real_time\": " << json_number(r.real_time_ns) << ",\n";
    out << "      \"cpu_time\": " << json_number(r.cpu_time_ns) << ",\n";
    out << "      \"time_unit\": \"ns\"";
    for (const auto& [k, v] : r.counters) {
      out << ",\n      \"" << json_escape(k) << "\": " << json_number(v);
    }
    if (!r.label.empty())
      out << ",\n      \"label\": \"" << json_escape(r.label) << "\"";
    out << "\n    }" << (i + 1 < rows.size() ? "," : "") << "\n";
  }
  out << "  ]\n}\n";
  return static_cast<bool>(out);
}

}  // namespace sluice::oq::bench
