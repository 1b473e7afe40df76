// A progress line for long commands: drawn on stderr only when it is a terminal.
//
//   ProgressBar bar("scan", total_frames);
//   bar.Update(done, "312 MB/s");
//   bar.Finish();
#pragma once

#include <cstdint>
#include <string>

namespace tessera::cli {

class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t total);
  /// Redraws at most ~10 times a second.
  void Update(uint64_t done, const std::string& note = "");
  /// Draws the final state and ends the line.
  void Finish();

 private:
  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  std::string note_;
  bool tty_;
  int64_t last_draw_ms_ = 0;
  void Draw();
};

}  // namespace tessera::cli
