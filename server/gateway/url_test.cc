#include "server/gateway/url.h"

#include <gtest/gtest.h>

namespace tessera::gateway {
namespace {

TEST(Url, PercentDecode) {
  EXPECT_EQ(*PercentDecode("a%2Fb%2c%41"), "a/b,A");
  EXPECT_EQ(*PercentDecode("plain"), "plain");
  for (const char* bad : {"%", "%2", "%zz", "a%g0", "%00"}) {
    EXPECT_EQ(PercentDecode(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(Url, SplitKeepsEmptyParts) {
  EXPECT_EQ(Split("/a//b/", '/'), (std::vector<std::string_view>{"", "a", "", "b", ""}));
  EXPECT_EQ(Split("", ','), (std::vector<std::string_view>{""}));
}

TEST(Url, Query) {
  auto q = ParseQuery("channels=0,1&window0=100%2C4000&flag&&channels=2");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->at("channels"), "2");  // the last one
  EXPECT_EQ(q->at("window0"), "100,4000");
  EXPECT_EQ(q->at("flag"), "");
  EXPECT_EQ(q->size(), 3u);
  EXPECT_FALSE(ParseQuery("a=%zz").ok());
}

TEST(Url, ParseCount) {
  EXPECT_EQ(ParseCount("0"), 0);
  EXPECT_EQ(ParseCount("123456789012"), 123456789012);
  for (const char* bad : {"", "-1", "+1", "1e3", "1.0", " 1", "1234567890123"}) EXPECT_FALSE(ParseCount(bad)) << bad;
}

TEST(Url, ParseRange) {
  EXPECT_EQ(ParseRange("2:5", ':'), std::make_pair(int64_t{2}, int64_t{5}));
  EXPECT_EQ(ParseRange("3", ':'), std::make_pair(int64_t{3}, int64_t{4}));
  EXPECT_EQ(ParseRange("0-512", '-'), std::make_pair(int64_t{0}, int64_t{512}));
  for (const char* bad : {"", "5:5", "5:2", ":3", "3:", "a:b", "1:2:3"}) EXPECT_FALSE(ParseRange(bad, ':')) << bad;
}

}  // namespace
}  // namespace tessera::gateway
