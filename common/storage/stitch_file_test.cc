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

namespace tessera::storage {
namespace {

TEST(StitchFile, CorrectionsWrittenAndReadBackAndH5pyReadsThem) {
  const std::string path = Dir() + "/corrected.stitch.h5";
  StitchRecord r{.slide_id = "s9", .positions = {{0, 0}, {90, 0}}, .stage = {{0, 0}, {90, 0}}, .report_json = "{}"};
  correct::FlatField flat{.width = 100, .height = 80, .grid_x = 4, .grid_y = 2,
                          .gain = {0.9f, 1.0f, 1.1f, 1.0f, 0.95f, 1.05f, 1.0f, 1.0f}, .dark = 100.5};
  r.corrections.channels.push_back({.channel = 1, .flat = flat, .dark = 100.5, .gains = {0.97, 1.03}});
  r.corrections.channels.push_back({.channel = 0, .dark = 12, .gains = {}});
  ASSERT_TRUE(WriteStitchFile(path, r).ok());
  auto back = ReadStitchFile(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->corrections.channels.size(), 2u);
  const auto* c1 = back->corrections.Of(1);
  ASSERT_NE(c1, nullptr);
  ASSERT_TRUE(c1->flat.has_value());
  EXPECT_EQ(c1->flat->gain, flat.gain);
  EXPECT_EQ(c1->flat->grid_x, 4u);
  EXPECT_EQ(c1->flat->grid_y, 2u);
  EXPECT_EQ(c1->flat->width, 100u);
  EXPECT_EQ(c1->flat->height, 80u);
  EXPECT_EQ(c1->dark, 100.5);
  EXPECT_EQ(c1->gains, (std::vector<double>{0.97, 1.03}));
  const auto* c0 = back->corrections.Of(0);
  ASSERT_NE(c0, nullptr);
  EXPECT_FALSE(c0->flat.has_value());
  EXPECT_EQ(c0->dark, 12);
  // Plain HDF5, as a user's script reads it.
  const std::string cmd = "/usr/bin/python3 -c \"import h5py,sys; f=h5py.File(sys.argv[1],'r'); g=f['stitch/corrections/c1']; "
                          "assert g['flat_field'].shape==(2,4); assert list(g['gains'][:])==[0.97,1.03]; "
                          "assert float(g.attrs['dark'])==100.5\" " + path;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace
}  // namespace tessera::storage
