#include "sluice/para/testing.h"

#include <algorithm>

#include "sluice/common/topology.h"

namespace sluice::para::testing {

RuntimeOptions testing_options() {
  RuntimeOptions o;
  Result<CpuTopology> topo = CpuTopology::detect();
  if (topo.is_ok()) {
    const std::vector<int>& allowed = topo->allowed_cpus();
    o.cores.assign(allowed.begin(), allowed.begin() + std::min<ptrdiff_t>(2, std::ssize(allowed)));
  }
  o.arena_size = size_t{16} << 20;
  o.offload_threads = 1;
  o.shutdown_timeout = std::chrono::milliseconds(5000);
  return o;
}

void run_on_reactor(Task<void> (*body)(), const RuntimeOptions& options) {
  Result<std::unique_ptr<Runtime>> rt = Runtime::start(options);
  if (!rt.is_ok()) {
    ADD_FAILURE() << "para runtime did not start: " << rt.status().to_string();
    return;
  }
  Status s = (*rt)->run_on((*rt)->cores().front(), [body] { return body(); });
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  (*rt)->stop();
}

}  // namespace sluice::para::testing
