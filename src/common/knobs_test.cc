#include "sluice/common/knobs.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace sluice {
namespace {

const IntKnob kBuffers({.name = "testmod.ring_buffers",
                        .default_value = 16,
                        .min = 1,
                        .max = 4096,
                        .stage = KnobStage::kStart,
                        .help = "buffers in the ring"});
const FloatKnob kAlpha({.name = "testmod.alpha",
                        .default_value = 0.0625,
                        .min = 0,
                        .max = 1,
                        .stage = KnobStage::kRuntime,
                        .help = "EMA weight"});
const BoolKnob kBypass({.name = "testmod.bypass", .default_value = false, .help = "bypass"});
const EnumKnob kMode({.name = "testmod.mode",
                      .default_value = "o_direct",
                      .values = {"buffered", "o_direct", "bypass"},
                      .help = "read path"});
const StringKnob kLabel({.name = "testmod.label", .default_value = "x", .help = "a label"});
const IntKnob kLine({.name = "testmod.cache_line",
                     .default_value = 64,
                     .min = 32,
                     .max = 256,
                     .stage = KnobStage::kCompile,
                     .help = "cache line size",
                     .build_flag = "SLUICE_CACHE_LINE"});

const IntKnob kDepth({.name = "othermod.depth",
                      .default_value = 1,
                      .min = 1,
                      .max = 64,
                      .help = "a knob of a second module"});

class Knobs : public ::testing::Test {
 protected:
  void SetUp() override { registry().reset_for_testing(); }
  void TearDown() override { registry().reset_for_testing(); }
  static KnobRegistry& registry() { return KnobRegistry::global(); }
};

TEST_F(Knobs, DefaultsAreReadThroughTypedHandles) {
  EXPECT_EQ(kBuffers.get(), 16);
  EXPECT_DOUBLE_EQ(kAlpha.get(), 0.0625);
  EXPECT_FALSE(kBypass.get());
  EXPECT_EQ(kMode.get(), "o_direct");
  EXPECT_EQ(kMode.index(), 1U);
  EXPECT_EQ(kLabel.get(), "x");
  auto info = registry().info("testmod.ring_buffers");
  ASSERT_TRUE(info.is_ok());
  EXPECT_EQ(info->source, KnobSource::kDefault);
  EXPECT_EQ(info->env_var, "SLUICE_TESTMOD_RING_BUFFERS");
}

// Every knob of a file gets its own value, whether the file names them flat, nested in
// several sections, or both (a file of several top-level keys once swapped values between them).
TEST_F(Knobs, AFileOfManyKnobsSetsEachToItsOwnValue) {
  ASSERT_TRUE(registry()
                  .load_yaml_text("testmod.ring_buffers: 11\ntestmod.alpha: 0.25\n"
                                  "testmod.mode: buffered\ntestmod.label: fourth\n")
                  .is_ok());
  EXPECT_EQ(kBuffers.get(), 11);
  EXPECT_DOUBLE_EQ(kAlpha.get(), 0.25);
  EXPECT_EQ(kMode.get(), "buffered");
  EXPECT_EQ(kLabel.get(), "fourth");

  registry().reset_for_testing();
  ASSERT_TRUE(registry()
                  .load_yaml_text("testmod:\n  ring_buffers: 22\n  mode: bypass\n"
                                  "othermod:\n  depth: 5\n"
                                  "testmod.alpha: 0.75\n"
                                  "testmod.label: last\n")
                  .is_ok());
  EXPECT_EQ(kBuffers.get(), 22);
  EXPECT_EQ(kMode.get(), "bypass");
  EXPECT_DOUBLE_EQ(kAlpha.get(), 0.75);
  EXPECT_EQ(kLabel.get(), "last");
  EXPECT_EQ(kDepth.get(), 5);

  EXPECT_EQ(registry().load_yaml_text("[testmod.label]: x", "site.yaml").code(),
            StatusCode::kInvalidArgument);
}

TEST_F(Knobs, PrecedenceIsDefaultThenFileThenEnvironmentThenFlags) {
  ASSERT_TRUE(registry().load_yaml_text("testmod:\n  ring_buffers: 32\n  alpha: 0.5\n").is_ok());
  EXPECT_EQ(kBuffers.get(), 32);
  ASSERT_TRUE(registry()
                  .load_environment(
                      {{"SLUICE_TESTMOD_RING_BUFFERS", "64"}, {"SLUICE_TESTMOD_BYPASS", "on"}})
                  .is_ok());
  EXPECT_EQ(kBuffers.get(), 64);
  EXPECT_TRUE(kBypass.get());
  EXPECT_DOUBLE_EQ(kAlpha.get(), 0.5);  // only the file set it
  ASSERT_TRUE(registry().apply_assignments({"testmod.ring_buffers=128"}).is_ok());
  EXPECT_EQ(kBuffers.get(), 128);
  EXPECT_EQ(registry().info("testmod.ring_buffers")->source, KnobSource::kFlag);

  // A lower-precedence source loaded later does not override a higher one.
  ASSERT_TRUE(registry().load_yaml_text("testmod.ring_buffers: 8").is_ok());
  EXPECT_EQ(kBuffers.get(), 128);
  ASSERT_TRUE(registry().load_environment({{"SLUICE_TESTMOD_RING_BUFFERS", "4"}}).is_ok());
  EXPECT_EQ(kBuffers.get(), 128);
}

TEST_F(Knobs, OutOfRangeValuesAreRefusedWithTheRange) {
  Status s = registry().set("testmod.ring_buffers", "5000");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("[1, 4096]"), std::string::npos) << s.message();
  EXPECT_EQ(kBuffers.get(), 16) << "a refused value changes nothing";

  s = registry().set("testmod.alpha", "1.5");
  EXPECT_NE(s.message().find("[0, 1]"), std::string::npos) << s.message();
  s = registry().set("testmod.mode", "mmap");
  EXPECT_NE(s.message().find("buffered, o_direct, bypass"), std::string::npos) << s.message();
  s = registry().set("testmod.bypass", "maybe");
  EXPECT_NE(s.message().find("true or false"), std::string::npos) << s.message();
  EXPECT_FALSE(registry().set("testmod.ring_buffers", "12abc").is_ok());
  EXPECT_FALSE(registry().set("testmod.ring_buffers", "").is_ok());
  EXPECT_FALSE(registry().set("testmod.alpha", "nan").is_ok());
}

TEST_F(Knobs, ParsesSizesBooleansAndEnumsLeniently) {
  ASSERT_TRUE(registry().set("testmod.ring_buffers", "2k").is_ok());
  EXPECT_EQ(kBuffers.get(), 2048);
  ASSERT_TRUE(registry().set("testmod.bypass", "YES").is_ok());
  EXPECT_TRUE(kBypass.get());
  ASSERT_TRUE(registry().set("testmod.mode", "Bypass").is_ok());
  EXPECT_EQ(kMode.get(), "bypass");
  ASSERT_TRUE(registry().set("testmod.label", "hello world").is_ok());
  EXPECT_EQ(kLabel.get(), "hello world");
}

TEST_F(Knobs, UnknownNamesSuggestTheClosestKnob) {
  Status s = registry().set("testmod.ringbuffers", "8");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("did you mean 'testmod.ring_buffers'"), std::string::npos)
      << s.message();
  EXPECT_EQ(registry().load_yaml_text("nosuch: {thing: 1}").code(), StatusCode::kNotFound);
}

TEST_F(Knobs, CompileKnobsAreFixedAndNameTheBuildFlag) {
  EXPECT_TRUE(registry().set("testmod.cache_line", "64").is_ok()) << "same value is fine";
  Status s = registry().set("testmod.cache_line", "128");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("-DSLUICE_CACHE_LINE=128"), std::string::npos) << s.message();
}

TEST_F(Knobs, StartKnobsFreezeOnceComponentsStart) {
  ASSERT_TRUE(registry().set("testmod.ring_buffers", "32").is_ok());
  registry().freeze_start_knobs();
  Status s = registry().set("testmod.ring_buffers", "64");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(kBuffers.get(), 32);
  EXPECT_TRUE(registry().set("testmod.alpha", "0.25").is_ok()) << "runtime knobs still change";
  EXPECT_DOUBLE_EQ(kAlpha.get(), 0.25);
}

TEST_F(Knobs, YamlErrorsNameTheOriginAndKnob) {
  Status s = registry().load_yaml_text("testmod: [1, 2", "site.yaml");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("site.yaml"), std::string::npos);
  s = registry().load_yaml_text("testmod.ring_buffers: [1, 2]", "site.yaml");
  EXPECT_NE(s.message().find("testmod.ring_buffers"), std::string::npos) << s.message();
  s = registry().load_yaml_text("testmod.ring_buffers: 0", "site.yaml");
  EXPECT_NE(s.message().find("site.yaml"), std::string::npos) << s.message();
  EXPECT_EQ(registry().load_yaml_file("/nonexistent/sluice.yaml").code(), StatusCode::kNotFound);
  EXPECT_TRUE(registry().load_yaml_text("").is_ok());
}

TEST_F(Knobs, AssignmentsNeedNameEqualsValue) {
  EXPECT_EQ(registry().apply_assignments({"testmod.ring_buffers"}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(registry().apply_assignments({"=3"}).code(), StatusCode::kInvalidArgument);
}

TEST_F(Knobs, JsonListsEveryKnobWithTypedFields) {
  ASSERT_TRUE(registry().set("testmod.alpha", "0.5").is_ok());
  const auto json = nlohmann::json::parse(registry().to_json());
  ASSERT_TRUE(json.is_array());
  bool saw_buffers = false;
  bool saw_mode = false;
  for (const auto& k : json) {
    if (k["name"] == "testmod.ring_buffers") {
      saw_buffers = true;
      EXPECT_EQ(k["type"], "int");
      EXPECT_EQ(k["stage"], "start");
      EXPECT_EQ(k["default"], 16);
      EXPECT_EQ(k["min"], 1);
      EXPECT_EQ(k["max"], 4096);
      EXPECT_EQ(k["help"], "buffers in the ring");
    }
    if (k["name"] == "testmod.mode") {
      saw_mode = true;
      EXPECT_EQ(k["values"], nlohmann::json({"buffered", "o_direct", "bypass"}));
    }
    if (k["name"] == "testmod.alpha") {
      EXPECT_EQ(k["value"], 0.5);
      EXPECT_EQ(k["source"], "flag");
    }
  }
  EXPECT_TRUE(saw_buffers);
  EXPECT_TRUE(saw_mode);
}

TEST(KnobsDeathTest, DuplicateDeclarationAborts) {
  EXPECT_DEATH(IntKnob({.name = "testmod.ring_buffers", .default_value = 1, .min = 0, .max = 2}),
               "declared once");
}

TEST(KnobsDeathTest, DefaultOutsideRangeAborts) {
  EXPECT_DEATH(IntKnob({.name = "testmod.bad_default", .default_value = 9, .min = 0, .max = 2}),
               "out of range");
}

}  // namespace
}  // namespace sluice
