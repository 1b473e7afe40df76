#include "tests/mist.h"

#include <gtest/gtest.h>

#include "common/imageio/tiff.h"
#include "common/imageio/tile_config.h"
#include "tests/stack.h"

namespace tessera::testing {

void ExpectMistStoredExactlyOnce(Client& client, const std::string& id) {
  auto config = imageio::ReadTileConfig(kMist);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto info = client.Info(id);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->state, "acquired") << info->error;
  EXPECT_EQ(info->frames_written, config->entries.size());
  uint64_t chunk_bytes = 0;
  for (uint32_t t = 0; t < config->entries.size(); ++t) {
    auto tile = client.ReadTile({.slide = id, .tile = t});
    ASSERT_TRUE(tile.ok()) << "tile " << t << ": " << tile.status().ToString();
    auto tiff = imageio::ReadTiff(config->entries[t].path);
    ASSERT_TRUE(tiff.ok());
    EXPECT_TRUE(tiff->pixels == tile->data) << "tile " << t;
    auto chunk = client.ReadChunk(id, {{t, 0, 0}, 0, 0, 0});
    ASSERT_TRUE(chunk.ok()) << chunk.status().ToString();
    chunk_bytes += chunk->bytes.size();
  }
  // Each frame once: the file stores exactly one copy of every chunk (one chunk per tile).
  EXPECT_EQ(info->bytes_stored, chunk_bytes) << "a frame stored twice";
}

nlohmann::json ExpectMistStitchDone(Client& client, const std::string& id) {
  std::string state, error;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto info = client.Info(id);
        if (!info.ok()) return false;
        state = info->stitch.state;
        error = info->stitch.error;
        if (state.empty() && info->stitched_unix_ms > 0) state = "done";
        return state == "done" || state == "failed";
      },
      180000))
      << "the stitch of " << id << " did not end";
  EXPECT_EQ(state, "done") << error;
  auto stitch = client.GetStitch(id);
  EXPECT_TRUE(stitch.ok()) << stitch.status().ToString();
  if (!stitch.ok()) return nullptr;
  auto report = nlohmann::json::parse(stitch->report_json, nullptr, false);
  EXPECT_FALSE(report.is_discarded()) << stitch->report_json.substr(0, 2000);
  if (report.is_discarded()) return nullptr;
  EXPECT_EQ(report["summary"]["links"], 40);
  EXPECT_EQ(report["summary"]["reliable"], 40) << stitch->report_json.substr(0, 2000);
  return report;
}

}  // namespace tessera::testing
