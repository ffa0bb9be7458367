#include "sluice/para/testing.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

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

std::string test_file_path(const char* name) {
  const std::filesystem::path dir = std::filesystem::current_path() / "para_test_files";
  std::filesystem::create_directories(dir);
  return (dir / (std::string(name) + "." + std::to_string(getpid()))).string();
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
