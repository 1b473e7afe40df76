#include "common/stitch/report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace tessera::stitch {
namespace {

TEST(OverlappingPairs, SideNeighboursOfAGridNotItsCornersNorFarTiles) {
  std::vector<std::array<double, 2>> stage;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) stage.push_back({c * 90.0, r * 90.0});
  stage.push_back({10000, 10000});  // far away: no pair
  const auto pairs = OverlappingPairs(stage, 100, 100);
  ASSERT_EQ(pairs.size(), 12u);  // 3 rows x 2 + 3 columns x 2
  for (const auto& p : pairs) {
    EXPECT_LT(p.a, p.b);
    EXPECT_TRUE((p.dx == 90 && p.dy == 0) || (p.dx == 0 && p.dy == 90)) << p.a << "-" << p.b;
  }
}

TEST(QcReport, NamesTilesWithoutAUsedLinkAndTilesWithABadResidual) {
  const std::vector<std::array<double, 2>> stage = {{0, 0}, {90, 0}, {180, 0}, {270, 0}};
  const std::vector<TilePair> pairs = {{0, 1, 90, 0}, {1, 2, 90, 0}, {2, 3, 90, 0}};
  std::vector<Link> links(3);
  for (auto& l : links) {
    l.nominal_dx = 90;
    l.dx = 91;
    l.ncc = 0.9;
    l.reliable = true;
  }
  links[2].reliable = false;
  links[2].reason = "low texture";
  Solution s;
  s.positions = {{0, 0}, {91, 0}, {182, 0}, {270, 0}};
  s.residual = {0.1, 1.5, 0};
  s.used = {true, true, false};
  s.dropped = {"", "", ""};
  const QcReport r = MakeReport({"a", "b", "c", "d"}, stage, pairs, links, s, 20);
  EXPECT_EQ(r.reliable, 2);
  EXPECT_EQ(r.used, 2);
  EXPECT_DOUBLE_EQ(r.max_residual, 1.5);
  EXPECT_FALSE(r.tiles[0].suspicious);
  EXPECT_TRUE(r.tiles[1].suspicious);  // its link to 2 is off by 1.5 px
  EXPECT_TRUE(r.tiles[2].suspicious);
  EXPECT_TRUE(r.tiles[3].suspicious);  // only an unreliable link: at its stage position
  EXPECT_NE(r.tiles[3].why.find("no reliable link"), std::string::npos) << r.tiles[3].why;
  EXPECT_EQ(r.links[2].note, "low texture");
  const auto j = nlohmann::json::parse(ReportJson(r));
  EXPECT_EQ(j["summary"]["suspicious"], 3);
  EXPECT_EQ(j["tiles"][1]["x"], 91.0);
  EXPECT_EQ(j["links"][0]["shift_x"], 1.0);
  auto back = ReportFromJson(ReportJson(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(ReportJson(*back), ReportJson(r));
  EXPECT_EQ(ReportFromJson("{}").status().code(), StatusCode::kDataLoss);
  const std::string table = ReportTable(r);
  EXPECT_NE(table.find("3 suspicious tile(s)"), std::string::npos) << table;
  EXPECT_NE(table.find("tile 3 (d)"), std::string::npos) << table;
}

}  // namespace
}  // namespace tessera::stitch
