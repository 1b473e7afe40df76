#include "common/durable/durable.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace tessera::durable {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(DurableTest, WriteFileReplacesTheContentAndLeavesNoTemporary) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / "durable_write";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "plan.json").string();
  ASSERT_TRUE(WriteFile(path, "first").ok());
  ASSERT_TRUE(WriteFile(path, "second, longer").ok());
  EXPECT_EQ(Read(path), "second, longer");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(DurableTest, ErrorsNameThePath) {
  Status s = WriteFile("/nonexistent-folder/x.json", "x");
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("/nonexistent-folder/x.json"), std::string::npos) << s.ToString();
  s = Rename("/nonexistent-folder/a", "/nonexistent-folder/b");
  EXPECT_NE(s.message().find("cannot rename"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace tessera::durable
