#include "sluice/common/topology.h"

#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <set>
#include <utility>

#include "common/strings.h"

namespace sluice {

Result<std::vector<int>> parse_cpu_list(std::string_view text) {
  std::vector<int> out;
  text = trim(text);
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (item.empty()) {
      continue;
    }
    const size_t dash = item.find('-');
    auto number = [](std::string_view s, int* v) {
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
      return ec == std::errc() && end == s.data() + s.size() && *v >= 0;
    };
    int lo = 0;
    int hi = 0;
    if (dash == std::string_view::npos) {
      if (!number(item, &lo)) {
        return invalid_argument(fmt::format("bad CPU list entry '{}'", item));
      }
      hi = lo;
    } else if (!number(item.substr(0, dash), &lo) || !number(item.substr(dash + 1), &hi) ||
               hi < lo) {
      return invalid_argument(fmt::format("bad CPU range '{}'", item));
    }
    for (int c = lo; c <= hi; ++c) {
      out.push_back(c);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string format_cpu_list(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) {
      ++j;
    }
    if (!out.empty()) {
      out += ',';
    }
    out += j == i ? std::to_string(cpus[i]) : fmt::format("{}-{}", cpus[i], cpus[j]);
    i = j + 1;
  }
  return out;
}

namespace {

int read_int_or(const std::string& path, int fallback) {
  std::string text;
  if (!read_file(path, &text).is_ok()) {
    return fallback;
  }
  int v = 0;
  const std::string_view t = trim(text);
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  return ec == std::errc() ? v : fallback;
}

}  // namespace

Result<CpuTopology> CpuTopology::detect(const std::string& sysfs_root) {
  CpuTopology topo;
  const std::string cpu_dir = sysfs_root + "/devices/system/cpu";
  std::string online_text;
  SLUICE_RETURN_IF_ERROR(
      read_file(cpu_dir + "/online", &online_text).with_context("cannot read the online CPUs"));
  SLUICE_ASSIGN_OR_RETURN(std::vector<int> online, parse_cpu_list(online_text));
  if (online.empty()) {
    return failed_precondition(cpu_dir + "/online lists no CPU");
  }

  for (int cpu : online) {
    const std::string base = fmt::format("{}/cpu{}/topology/", cpu_dir, cpu);
    CpuInfo info;
    info.cpu = cpu;
    info.core_id = read_int_or(base + "core_id", cpu);
    info.package_id = read_int_or(base + "physical_package_id", 0);
    topo.cpus_.push_back(info);
  }

  // NUMA: node<N>/cpulist; absent on kernels without NUMA, where everything is node 0.
  std::set<int> nodes;
  std::error_code ec;
  for (const auto& dirent :
       std::filesystem::directory_iterator(sysfs_root + "/devices/system/node", ec)) {
    const std::string name = dirent.path().filename().string();
    int node = 0;
    if (name.rfind("node", 0) != 0 ||
        std::from_chars(name.data() + 4, name.data() + name.size(), node).ec != std::errc()) {
      continue;
    }
    std::string list_text;
    if (!read_file(dirent.path().string() + "/cpulist", &list_text).is_ok()) {
      continue;
    }
    auto list = parse_cpu_list(list_text);
    if (!list) {
      continue;
    }
    nodes.insert(node);
    for (int cpu : *list) {
      for (CpuInfo& info : topo.cpus_) {
        if (info.cpu == cpu) {
          info.numa_node = node;
        }
      }
    }
  }
  topo.numa_nodes_ = std::max<int>(1, static_cast<int>(nodes.size()));

  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof(mask), &mask) != 0) {
    return errno_status(errno, "sched_getaffinity");
  }
  for (int cpu : online) {
    if (cpu < CPU_SETSIZE && CPU_ISSET(static_cast<size_t>(cpu), &mask)) {
      topo.allowed_.push_back(cpu);
    }
  }
  return topo;
}

int CpuTopology::numa_node_of(int cpu) const {
  for (const CpuInfo& info : cpus_) {
    if (info.cpu == cpu) {
      return info.numa_node;
    }
  }
  return 0;
}

int CpuTopology::physical_core_count() const {
  std::set<std::pair<int, int>> cores;
  for (const CpuInfo& info : cpus_) {
    cores.emplace(info.package_id, info.core_id);
  }
  return static_cast<int>(cores.size());
}

std::string CpuTopology::summary() const {
  std::vector<int> ids;
  for (const CpuInfo& info : cpus_) {
    ids.push_back(info.cpu);
  }
  return fmt::format("{} CPUs ({}), {} physical cores, {} NUMA node{}; allowed {}", cpus_.size(),
                     format_cpu_list(ids), physical_core_count(), numa_nodes_,
                     numa_nodes_ == 1 ? "" : "s", format_cpu_list(allowed_));
}

}  // namespace sluice
