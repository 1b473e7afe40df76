#include "common/catalog/catalog.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace tessera::catalog {
namespace {

class CatalogTest : public ::testing::Test {
 protected:
  std::string path_ = ::testing::TempDir() + "/catalog_test_" + std::to_string(::getpid()) + "_" +
                      ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".sqlite";
  void TearDown() override {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_ + suffix);
  }
};

TEST_F(CatalogTest, ReservedIdsAreNeverIssued) {
  auto c = Catalog::Open(path_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE((*c)->ReserveIds(7).ok());  // a fresh catalog, files s000001..s000007 on disk
  EXPECT_EQ(*(*c)->Insert({.name = "a", .state = "acquiring"}), "s000008");
  ASSERT_TRUE((*c)->ReserveIds(3).ok());  // lower than issued: no effect
  EXPECT_EQ(*(*c)->Insert({.name = "b", .state = "acquiring"}), "s000009");
  ASSERT_TRUE((*c)->ReserveIds(20).ok());
  EXPECT_EQ(*(*c)->Insert({.name = "c", .state = "acquiring"}), "s000021");
}

TEST_F(CatalogTest, AssignsIdsAndPersistsAcrossReopen) {
  {
    auto c = Catalog::Open(path_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    auto a = (*c)->Insert({.name = "a", .state = "acquiring", .path = "a.h5", .plan_json = "{}"});
    auto b = (*c)->Insert({.name = "b", .state = "acquiring", .path = "b.h5", .plan_json = "{}"});
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, "s000001");
    EXPECT_EQ(*b, "s000002");
    SlideRecord r = *(*c)->Get(*b);
    r.state = "acquired";
    r.frames_written = 42;
    ASSERT_TRUE((*c)->Update(r).ok());
  }
  auto c = Catalog::Open(path_);
  ASSERT_TRUE(c.ok());
  auto all = (*c)->List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1].state, "acquired");
  EXPECT_EQ((*all)[1].frames_written, 42u);
  EXPECT_EQ((*all)[0].name, "a");
}

TEST_F(CatalogTest, UnknownSlideIsNotFound) {
  auto c = Catalog::Open(path_);
  ASSERT_TRUE(c.ok());
  auto r = (*c)->Get("s999999");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("s999999"), std::string::npos);
  EXPECT_EQ((*c)->Update({.id = "nope"}).code(), StatusCode::kNotFound);
}

TEST_F(CatalogTest, UsesWriteAheadLogging) {
  auto c = Catalog::Open(path_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Insert({.name = "a", .state = "acquiring", .plan_json = "{}"}).ok());
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
}

}  // namespace
}  // namespace tessera::catalog
