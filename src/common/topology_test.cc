#include "sluice/common/topology.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace sluice {
namespace {

namespace fs = std::filesystem;

TEST(CpuList, ParsesRangesAndSingles) {
  auto cpus = parse_cpu_list("0-3,8,10-11\n");
  ASSERT_TRUE(cpus.is_ok());
  EXPECT_EQ(*cpus, (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_TRUE(parse_cpu_list("\n")->empty());
  EXPECT_EQ(*parse_cpu_list("5,1,1"), (std::vector<int>{1, 5}));
}

TEST(CpuList, RefusesGarbage) {
  EXPECT_FALSE(parse_cpu_list("a-b").is_ok());
  EXPECT_FALSE(parse_cpu_list("3-1").is_ok());
  EXPECT_FALSE(parse_cpu_list("1,,x").is_ok());
  EXPECT_EQ(parse_cpu_list("-2").status().code(), StatusCode::kInvalidArgument);
}

TEST(CpuList, FormatsAsCompactRanges) {
  EXPECT_EQ(format_cpu_list({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(format_cpu_list({}), "");
  EXPECT_EQ(format_cpu_list({7}), "7");
}

class FakeSysfs : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("sluice-sysfs-" + std::to_string(::getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void write(const std::string& rel, const std::string& text) {
    const fs::path p = root_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }

  fs::path root_;
};

TEST_F(FakeSysfs, ReadsCoresPackagesAndNumaNodes) {
  write("devices/system/cpu/online", "0-3\n");
  for (int cpu = 0; cpu < 4; ++cpu) {
    const std::string base = "devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    write(base + "core_id", std::to_string(cpu % 2) + "\n");  // SMT: 0,2 and 1,3 share a core
    write(base + "physical_package_id", std::to_string(cpu / 2) + "\n");
  }
  write("devices/system/node/node0/cpulist", "0-1\n");
  write("devices/system/node/node1/cpulist", "2-3\n");

  auto topo = CpuTopology::detect(root_.string());
  ASSERT_TRUE(topo.is_ok()) << topo.status().to_string();
  EXPECT_EQ(topo->cpus().size(), 4U);
  EXPECT_EQ(topo->numa_node_count(), 2);
  EXPECT_EQ(topo->numa_node_of(1), 0);
  EXPECT_EQ(topo->numa_node_of(3), 1);
  EXPECT_EQ(topo->physical_core_count(), 4);  // (package, core) pairs
}

TEST_F(FakeSysfs, MissingOnlineFileIsAClearError) {
  auto topo = CpuTopology::detect(root_.string());
  ASSERT_FALSE(topo.is_ok());
  EXPECT_NE(topo.status().message().find("online"), std::string::npos);
}

TEST(CpuTopology, DetectsThisMachine) {
  auto topo = CpuTopology::detect();
  ASSERT_TRUE(topo.is_ok()) << topo.status().to_string();
  EXPECT_GE(topo->cpus().size(), 1U);
  EXPECT_GE(topo->allowed_cpus().size(), 1U);
  EXPECT_LE(topo->allowed_cpus().size(), topo->cpus().size());
  EXPECT_FALSE(topo->summary().empty());
}

}  // namespace
}  // namespace sluice
