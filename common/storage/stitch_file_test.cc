#include "common/storage/stitch_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace tessera::storage {
namespace {

std::string Dir() {
  auto d = std::filesystem::path(::testing::TempDir()) / ("stitch_file_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d.string();
}

TEST(StitchFile, PathBesideTheSlide) { EXPECT_EQ(StitchPathOf("/data/slides/s000001.h5"), "/data/slides/s000001.stitch.h5"); }

TEST(StitchFile, WritesAndReadsBackAndAReStitchReplacesIt) {
  const std::string path = Dir() + "/s1.stitch.h5";
  StitchRecord r{.slide_id = "s1", .positions = {{0.25, -1.5}, {231.75, 3}}, .stage = {{0, 0}, {232, 0}},
                 .report_json = R"({"summary": {"tiles": 2}})"};
  ASSERT_TRUE(WriteStitchFile(path, r).ok());
  auto back = ReadStitchFile(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->slide_id, "s1");
  EXPECT_EQ(back->positions, r.positions);
  EXPECT_EQ(back->stage, r.stage);
  EXPECT_EQ(back->report_json, r.report_json);
  EXPECT_GT(back->created_unix_ms, 0);
  r.positions[1] = {230, 2};
  ASSERT_TRUE(WriteStitchFile(path, r).ok());
  EXPECT_EQ(ReadStitchFile(path)->positions[1], (std::array<double, 2>{230, 2}));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(StitchFile, MissingMismatchedAndForeignFilesAreClearErrors) {
  const std::string dir = Dir();
  EXPECT_EQ(ReadStitchFile(dir + "/none.stitch.h5").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(WriteStitchFile(dir + "/bad.stitch.h5", {.slide_id = "s", .positions = {{0, 0}}, .stage = {}}).code(),
            StatusCode::kInvalidArgument);
  std::ofstream(dir + "/junk.stitch.h5") << "not hdf5";
  EXPECT_EQ(ReadStitchFile(dir + "/junk.stitch.h5").status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace tessera::storage
