// CPU topology read from sysfs: which CPUs are online, which the process may run on, their
// cores, packages and NUMA nodes. para pins one reactor per allowed CPU from this.
//
// Thread safety: CpuTopology is an immutable value once detected.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "sluice/common/result.h"

namespace sluice {

struct CpuInfo {
  int cpu = 0;         // logical CPU number
  int core_id = 0;     // physical core within its package (SMT siblings share it)
  int package_id = 0;  // socket
  int numa_node = 0;   // 0 when the machine has no NUMA information
};

class CpuTopology {
 public:
  // Reads <sysfs_root>/devices/system/cpu and …/node, and the process's affinity mask.
  // `sysfs_root` exists so tests can point at a fabricated tree.
  static Result<CpuTopology> detect(const std::string& sysfs_root = "/sys");

  // Online CPUs, ascending.
  const std::vector<CpuInfo>& cpus() const { return cpus_; }
  // CPUs the process may run on (sched_getaffinity ∩ online), ascending.
  const std::vector<int>& allowed_cpus() const { return allowed_; }
  int numa_node_count() const { return numa_nodes_; }
  // The NUMA node of `cpu`, or 0 if unknown.
  int numa_node_of(int cpu) const;
  // Distinct physical cores among the online CPUs.
  int physical_core_count() const;

  // "2 CPUs (0-1), 2 cores, 1 NUMA node; allowed 0-1"
  std::string summary() const;

 private:
  std::vector<CpuInfo> cpus_;
  std::vector<int> allowed_;
  int numa_nodes_ = 1;
};

// Parses the kernel's CPU list format ("0-3,8,10-11"; empty or "\n" is an empty list).
Result<std::vector<int>> parse_cpu_list(std::string_view text);
// The inverse: ascending ids compressed into ranges.
std::string format_cpu_list(const std::vector<int>& cpus);

}  // namespace sluice
