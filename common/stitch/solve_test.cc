#include "common/stitch/solve.h"

#include <gtest/gtest.h>

#include <random>

namespace tessera::stitch {
namespace {

TEST(Solve, RecoversAGridFromNoisyLinksAndDropsTheOnesThatDisagree) {
  // A 6 x 6 grid: truth = stage + an error of up to 8 px; links = truth differences + noise.
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> error(-8, 8);
  std::normal_distribution<double> noise(0, 0.1);
  const int cols = 6, rows = 6;
  std::vector<std::array<double, 2>> stage, truth;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      stage.push_back({c * 900.0, r * 900.0});
      truth.push_back({c * 900.0 + error(rng), r * 900.0 + error(rng)});
    }
  }
  std::vector<TileLink> links;
  auto link = [&](uint32_t a, uint32_t b) {
    links.push_back({a, b, truth[b][0] - truth[a][0] + noise(rng), truth[b][1] - truth[a][1] + noise(rng), 1, true});
  };
  for (uint32_t r = 0; r < rows; ++r) {
    for (uint32_t c = 0; c < cols; ++c) {
      if (c + 1 < cols) link(r * cols + c, r * cols + c + 1);
      if (r + 1 < rows) link(r * cols + c, (r + 1) * cols + c);
    }
  }
  links[3].dx += 15;   // a wrong period
  links[20].dy -= 4;   // a subtler one
  links[30].dx += 40;  // and one registration flagged
  links[30].reliable = false;
  auto s = SolvePositions(stage, links, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_FALSE(s->used[3]);
  EXPECT_FALSE(s->used[20]);
  EXPECT_FALSE(s->used[30]);
  EXPECT_EQ(s->dropped[30], "unreliable");
  EXPECT_NE(s->dropped[3].find("disagrees"), std::string::npos);
  EXPECT_EQ(std::count(s->used.begin(), s->used.end(), false), 3);
  // The gauge: the mean stays the stage's mean; compare shapes.
  std::array<double, 2> shift{0, 0};
  for (size_t i = 0; i < truth.size(); ++i) {
    shift[0] += (s->positions[i][0] - truth[i][0]) / static_cast<double>(truth.size());
    shift[1] += (s->positions[i][1] - truth[i][1]) / static_cast<double>(truth.size());
  }
  for (size_t i = 0; i < truth.size(); ++i) {
    EXPECT_NEAR(s->positions[i][0] - shift[0], truth[i][0], 0.25) << i;
    EXPECT_NEAR(s->positions[i][1] - shift[1], truth[i][1], 0.25) << i;
  }
  EXPECT_EQ(std::count(s->group.begin(), s->group.end(), 0), 36);
}

TEST(Solve, UnlinkedTilesKeepTheirStagePositionsAndIslandsTheirMean) {
  const std::vector<std::array<double, 2>> stage = {{0, 0}, {100, 0}, {200, 0}, {300, 0}};
  // 0-1 linked (an island), 2 alone, 3 with only an unreliable link.
  const std::vector<TileLink> links = {{0, 1, 96, 2, 1, true}, {2, 3, 120, 0, 1, false}};
  auto s = SolvePositions(stage, links, {});
  ASSERT_TRUE(s.ok());
  EXPECT_NEAR(s->positions[1][0] - s->positions[0][0], 96, 1e-3);
  EXPECT_NEAR(s->positions[0][0] + s->positions[1][0], 100, 1e-3);  // the island's mean stays
  EXPECT_NEAR(s->positions[0][1] + s->positions[1][1], 0, 1e-3);
  EXPECT_NEAR(s->positions[2][0], 200, 1e-6);
  EXPECT_NEAR(s->positions[3][0], 300, 1e-6);
  EXPECT_EQ(s->group, (std::vector<int>{0, 0, -1, -1}));
  EXPECT_FALSE(SolvePositions(stage, {{0, 9, 1, 1, 1, true}}, {}).ok());
}

}  // namespace
}  // namespace tessera::stitch
