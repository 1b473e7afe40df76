#include "common/storage/internal/direct_writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

namespace tessera::storage::internal {
namespace {

std::string FreshFile(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "tessera_direct_writer_test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::trunc).close();
  return path;
}

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// The buffered path, as the driver's sec2 file: pwrite on a plain descriptor of the same file.
struct Plain {
  int fd;
  std::vector<std::pair<uint64_t, size_t>> writes;
  explicit Plain(const std::string& path) : fd(::open(path.c_str(), O_WRONLY)) {}
  ~Plain() { ::close(fd); }
  bool Write(uint64_t at, std::span<const uint8_t> b) {
    writes.emplace_back(at, b.size());
    return ::pwrite(fd, b.data(), b.size(), static_cast<off_t>(at)) == static_cast<ssize_t>(b.size());
  }
  DirectWriter::Buffered Path() {
    return [this](uint64_t at, std::span<const uint8_t> b) { return Write(at, b); };
  }
};

std::vector<uint8_t> Bytes(size_t n, std::mt19937_64& rng) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

TEST(DirectWriterTest, RunsOfAppendsLandWholePagesDirectAndTheRestBuffered) {
  const std::string path = FreshFile("runs");
  Plain plain(path);
  auto d = DirectWriter::Open(path, plain.Path());
  ASSERT_NE(d, nullptr) << "this file system refuses O_DIRECT: " << std::strerror(errno);
  std::mt19937_64 rng(7);
  std::vector<uint8_t> model;
  auto put = [&](uint64_t at, const std::vector<uint8_t>& b, bool direct) {
    if (model.size() < at + b.size()) model.resize(at + b.size());
    std::copy(b.begin(), b.end(), model.begin() + static_cast<ptrdiff_t>(at));
    if (direct) {
      ASSERT_TRUE(d->Append(at, b));
    } else {  // as the driver does for metadata: drain, then the buffered path
      ASSERT_TRUE(d->Drain());
      ASSERT_TRUE(plain.Write(at, b));
    }
  };
  // Chunks of odd sizes one after another (a run over several blocks), a few small writes
  // between them as HDF5's metadata lands beside them, a gap, and a chunk rewritten in place.
  uint64_t at = 100;  // the first run starts mid-page
  for (int i = 0; i < 40; ++i) {
    const size_t n = 50'000 + rng() % 600'000;
    put(at, Bytes(n, rng), true);
    at += n;
    if (i % 9 == 8) {
      put(at, Bytes(2048, rng), false);
      at += 2048;
    }
    if (i == 20) at += 12'345;
  }
  const uint64_t rewrite = 100 + 50'000;
  put(rewrite, Bytes(70'000, rng), true);  // overlaps what the writer holds or wrote
  EXPECT_TRUE(d->Holds(rewrite + 10'000, 1));
  EXPECT_EQ(d->end(), at);
  ASSERT_TRUE(d->Drain());
  EXPECT_FALSE(d->Holds(0, at));
  EXPECT_EQ(ReadAll(path), model);
  // Most bytes went direct; what went buffered is pieces of pages, never a whole page.
  EXPECT_GT(d->direct_bytes(), model.size() * 9 / 10);
  for (const auto& [offset, size] : plain.writes) {
    if (size == 2048) continue;  // the metadata
    EXPECT_LT(size, DirectWriter::kAlign) << "at " << offset;
  }
}

TEST(DirectWriterTest, AFullDiskIsReportedAtTheNextDrainWithItsErrno) {
  const auto dir = std::filesystem::temp_directory_path() / "tessera_direct_writer_full";
  std::filesystem::create_directories(dir);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "needs root to mount a small tmpfs: " << std::strerror(errno);
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{dir.string()};
  const std::string path = (dir / "full").string();
  std::ofstream(path).close();
  Plain plain(path);
  auto d = DirectWriter::Open(path, plain.Path());
  if (d == nullptr) GTEST_SKIP() << "tmpfs refuses O_DIRECT on this kernel";
  std::mt19937_64 rng(1);
  bool ok = true;
  for (uint64_t at = 0; ok && at < (uint64_t{16} << 20); at += 300'000) ok = d->Append(at, Bytes(300'000, rng));
  if (ok) ok = d->Drain();
  EXPECT_FALSE(ok);
  EXPECT_EQ(d->error(), ENOSPC);
  EXPECT_FALSE(d->Drain()) << "a failure stays";
}

}  // namespace
}  // namespace tessera::storage::internal
