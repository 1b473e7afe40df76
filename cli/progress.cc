#include "cli/progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include <fmt/format.h>

namespace tessera::cli {

ProgressBar::ProgressBar(std::string label, uint64_t total)
    : label_(std::move(label)), total_(total), tty_(::isatty(STDERR_FILENO) != 0) {}

void ProgressBar::Update(uint64_t done, const std::string& note) {
  done_ = done;
  note_ = note;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  if (now - last_draw_ms_ < 100) return;
  last_draw_ms_ = now;
  Draw();
}

void ProgressBar::Draw() {
  if (!tty_) return;
  constexpr int kWidth = 30;
  const double f = total_ == 0 ? 1.0 : static_cast<double>(done_) / static_cast<double>(total_);
  const int filled = static_cast<int>(f * kWidth);
  fmt::print(stderr, "\r{} [{}{}] {}/{} {}\033[K", label_, std::string(filled, '#'),
             std::string(kWidth - filled, '.'), done_, total_, note_);
  std::fflush(stderr);
}

void ProgressBar::Finish() {
  if (!tty_) return;
  Draw();
  fmt::print(stderr, "\n");
}

}  // namespace tessera::cli
