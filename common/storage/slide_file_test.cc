#include "common/storage/slide_file.h"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <chrono>
#include <thread>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "common/codec/codec.h"

namespace tessera::storage {
namespace {

ScanPlan SmallPlan() {
  ScanPlan p;
  p.name = "small";
  p.width = 300;  // three chunks across, the last one padded
  p.height = 200;
  p.chunk_y = 128;
  p.chunk_x = 128;
  p.channels = {"DAPI", "GFP"};
  for (int i = 0; i < 3; ++i) p.tiles.push_back({.name = "t" + std::to_string(i), .x = i * 250.0});
  return p;
}

std::vector<uint8_t> ChunkBytes(const ScanPlan& p, uint64_t seed) {
  std::vector<uint16_t> v(p.chunk_bytes() / 2);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint16_t>((i * 7 + seed * 131) % 4096);
  std::span<const uint8_t> raw(reinterpret_cast<const uint8_t*>(v.data()), p.chunk_bytes());
  return *codec::Compress(raw, 2, p.codec);
}

void WriteFrame(SlideFile& f, uint64_t index) {
  const ScanPlan& p = f.plan();
  for (uint32_t cy = 0; cy < p.chunks_y(); ++cy)
    for (uint32_t cx = 0; cx < p.chunks_x(); ++cx) {
      auto bytes = ChunkBytes(p, index * 10 + cy * 2 + cx);
      ASSERT_TRUE(f.WriteChunk({p.KeyOf(index), 0, cy, cx}, bytes, codec::Checksum(bytes)).ok());
    }
  f.MarkWritten(index);
}

class SlideFileTest : public ::testing::Test {
 protected:
  std::string path_ = ::testing::TempDir() + "/slide_file_test_" + std::to_string(::getpid()) +
                      "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".h5";
  void TearDown() override { std::filesystem::remove(path_); }
};

TEST_F(SlideFileTest, StoresChunksExactlyAsReceived) {
  ScanPlan plan = SmallPlan();
  {
    auto f = SlideFile::Create(path_, plan, "s-1");
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    WriteFrame(**f, 0);
    WriteFrame(**f, 5);
    ASSERT_TRUE((*f)->Close().ok());
  }
  auto r = SlideFile::OpenForRead(path_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->slide_id(), "s-1");
  EXPECT_EQ((*r)->plan().channels, plan.channels);
  EXPECT_EQ((*r)->frames_written(), 2u);
  EXPECT_TRUE((*r)->IsWritten(5));
  EXPECT_FALSE((*r)->IsWritten(1));
  auto chunk = (*r)->ReadChunk({plan.KeyOf(5), 0, 0, 1});
  ASSERT_TRUE(chunk.ok());
  EXPECT_EQ(*chunk, ChunkBytes(plan, 51));
  EXPECT_EQ((*r)->StoredChecksum({plan.KeyOf(5), 0, 0, 1}), codec::Checksum(*chunk));
  EXPECT_EQ((*r)->ReadChunk({plan.KeyOf(1), 0, 0, 0}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*r)->ReadChunk({plan.KeyOf(1), 0, 3, 0}).status().code(), StatusCode::kOutOfRange);
}

TEST_F(SlideFileTest, EveryChunksPlaceIsRecordedAndReadsBackWithoutHdf5) {
  ScanPlan plan = SmallPlan();
  auto w = SlideFile::Create(path_, plan, "s-1");
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  WriteFrame(**w, 0);
  WriteFrame(**w, 5);
  ASSERT_TRUE((*w)->Sync(false).ok());
  // While the writer has the file (a SWMR reader) and after it closed it (a plain one).
  for (bool closed : {false, true}) {
    SCOPED_TRACE(closed);
    if (closed) {
      ASSERT_TRUE((*w)->Close().ok());
    }
    auto r = SlideFile::OpenForRead(path_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    for (uint64_t frame : {0u, 5u}) {
      for (uint32_t cy = 0; cy < plan.chunks_y(); ++cy) {
        for (uint32_t cx = 0; cx < plan.chunks_x(); ++cx) {
          const ChunkKey key{plan.KeyOf(frame), 0, cy, cx};
          auto place = (*r)->Place(key);
          ASSERT_TRUE(place.ok()) << place.status().ToString();
          ASSERT_GT(place->size, 0u) << "chunk " << cy << "," << cx << " of frame " << frame << " has no place";
          auto got = (*r)->ReadPlace(*place);
          ASSERT_TRUE(got.ok()) << got.status().ToString();
          EXPECT_EQ(std::vector<uint8_t>(got->begin(), got->end()), ChunkBytes(plan, frame * 10 + cy * 2 + cx));
        }
      }
    }
    const ChunkKey key{plan.KeyOf(5), 0, 1, 2};
    auto place = (*r)->Place(key);
    ASSERT_TRUE(place.ok());
    // Bytes that are not the chunk's are refused, never decoded.
    SlideFile::ChunkPlace off_by_one = *place;
    ++off_by_one.offset;
    EXPECT_EQ((*r)->ReadPlace(off_by_one).status().code(), StatusCode::kDataLoss);
    SlideFile::ChunkPlace past_the_end = *place;
    past_the_end.offset = uint64_t{1} << 40;
    EXPECT_EQ((*r)->ReadPlace(past_the_end).status().code(), StatusCode::kDataLoss);
    SlideFile::ChunkPlace wrapping = *place;
    wrapping.offset = ~uint64_t{0} - 4;
    EXPECT_EQ((*r)->ReadPlace(wrapping).status().code(), StatusCode::kDataLoss);
    EXPECT_EQ((*r)->Place({plan.KeyOf(4), 0, 0, 0}).status().code(), StatusCode::kNotFound);
    EXPECT_EQ((*r)->Place({plan.KeyOf(1), 0, 3, 0}).status().code(), StatusCode::kOutOfRange);
    if (!closed) {
      // The file grows past what the reader mapped: the frames synced since are read too, and
      // the chunks read before stay as they were.
      const auto before = (*r)->ReadPlace(*place);
      ASSERT_TRUE(before.ok());
      for (uint64_t frame = 1; frame < 4; ++frame) WriteFrame(**w, frame);
      ASSERT_TRUE((*w)->Sync(false).ok());
      ASSERT_TRUE((*r)->Refresh().ok());
      for (uint64_t frame = 1; frame < 4; ++frame) {
        const ChunkKey later{plan.KeyOf(frame), 0, 1, 2};
        auto at = (*r)->Place(later);
        ASSERT_TRUE(at.ok() && at->size > 0) << at.status().ToString();
        auto got = (*r)->ReadPlace(*at);
        ASSERT_TRUE(got.ok()) << got.status().ToString();
        EXPECT_EQ(std::vector<uint8_t>(got->begin(), got->end()), ChunkBytes(plan, frame * 10 + 1 * 2 + 2));
      }
      EXPECT_EQ(std::vector<uint8_t>(before->begin(), before->end()), ChunkBytes(plan, 5 * 10 + 1 * 2 + 2));
    }
  }
}

// Chunks of hundreds of KB, as a camera's, go to the disk with O_DIRECT (not through the page
// cache) and read back the same, while the file is live and after it closed.
// This process's resident pages mapped from files, kB (/proc/self/status RssFile).
uint64_t RssFileKb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("RssFile:")) return std::stoull(line.substr(8));
  }
  return 0;
}

TEST_F(SlideFileTest, LargeChunksGoStraightToTheDiskAndReadBackTheSame) {
  ScanPlan plan = SmallPlan();
  plan.width = 1000;
  plan.height = 512;
  plan.chunk_y = plan.chunk_x = 512;
  std::mt19937_64 rng(3);
  std::map<std::pair<uint64_t, uint32_t>, std::vector<uint8_t>> stored;
  auto w = SlideFile::Create(path_, plan, "s-1");
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  for (uint64_t frame = 0; frame < plan.frame_count(); ++frame) {
    for (uint32_t cx = 0; cx < plan.chunks_x(); ++cx) {
      std::vector<uint16_t> noise(plan.chunk_bytes() / 2);
      for (auto& v : noise) v = static_cast<uint16_t>(rng() % 4096);
      auto bytes = *codec::Compress({reinterpret_cast<const uint8_t*>(noise.data()), plan.chunk_bytes()}, 2, plan.codec);
      ASSERT_GT(bytes.size(), size_t{64} << 10);
      ASSERT_TRUE((*w)->WriteChunk({plan.KeyOf(frame), 0, 0, cx}, bytes, codec::Checksum(bytes)).ok());
      stored[{frame, cx}] = std::move(bytes);
    }
    (*w)->MarkWritten(frame);
  }
  ASSERT_TRUE((*w)->Sync(false).ok());
  for (bool closed : {false, true}) {
    SCOPED_TRACE(closed);
    if (closed) {
      ASSERT_TRUE((*w)->Close().ok());
    }
    auto r = SlideFile::OpenForRead(path_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const int fd = ::open(path_.c_str(), O_RDONLY);
    const auto length = static_cast<size_t>(std::filesystem::file_size(path_));
    void* map = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, 0);
    ASSERT_NE(map, MAP_FAILED);
    const long page = ::sysconf(_SC_PAGESIZE);
    std::vector<unsigned char> resident((length + page - 1) / page);
    ASSERT_EQ(::mincore(map, length, resident.data()), 0);
    size_t whole_pages = 0, cached = 0;
    for (const auto& [at, bytes] : stored) {
      const ChunkKey key{plan.KeyOf(at.first), 0, 0, at.second};
      auto place = (*r)->Place(key);
      ASSERT_TRUE(place.ok() && place->size == bytes.size());
      if (!closed) {  // before any read of the chunks: their whole pages are not in the page cache
        for (uint64_t p = (place->offset + page - 1) / page; (p + 1) * page <= place->offset + place->size; ++p) {
          ++whole_pages;
          cached += resident[p] & 1;
        }
      }
      auto got = (*r)->ReadPlace(*place);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(std::vector<uint8_t>(got->begin(), got->end()), bytes);
      auto through_hdf5 = (*r)->ReadChunk(key);
      ASSERT_TRUE(through_hdf5.ok()) << through_hdf5.status().ToString();
      EXPECT_EQ(*through_hdf5, bytes);
    }
    ::munmap(map, length);
    ::close(fd);
    if (!closed) {
      EXPECT_LT(cached, whole_pages / 20) << cached << " of " << whole_pages << " pages cached";
    }
  }
}

// A reader that reads the whole of a large file through its mapping keeps no more of it mapped
// than the read budget (32 MiB) and a little: its resident memory does not grow with the file.
TEST_F(SlideFileTest, AReadersMappingStaysBoundedHoweverMuchOfTheFileItReads) {
  ScanPlan plan = SmallPlan();
  plan.width = plan.height = 1024;
  plan.chunk_y = plan.chunk_x = 512;
  plan.tiles.resize(24);
  for (uint32_t t = 0; t < 24; ++t) plan.tiles[t] = {.name = fmt::format("t{}", t), .x = t * 1000.0};
  std::mt19937_64 rng(5);
  uint64_t stored = 0;
  {
    auto w = SlideFile::Create(path_, plan, "s-1");
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    std::vector<uint16_t> noise(plan.chunk_bytes() / 2);
    for (uint64_t frame = 0; frame < plan.frame_count(); ++frame) {
      for (uint32_t c = 0; c < plan.chunks_per_frame(); ++c) {
        for (auto& v : noise) v = static_cast<uint16_t>(rng() % 4096);
        auto bytes = *codec::Compress({reinterpret_cast<const uint8_t*>(noise.data()), plan.chunk_bytes()}, 2, plan.codec);
        stored += bytes.size();
        ASSERT_TRUE((*w)->WriteChunk({plan.KeyOf(frame), 0, c / 2, c % 2}, bytes, codec::Checksum(bytes)).ok());
      }
      (*w)->MarkWritten(frame);
    }
    ASSERT_TRUE((*w)->Close().ok());
  }
  ASSERT_GT(stored, uint64_t{80} << 20);
  auto r = SlideFile::OpenForRead(path_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const uint64_t before = RssFileKb();
  uint64_t read = 0, most = 0;
  for (uint64_t frame = 0; frame < plan.frame_count(); ++frame) {
    for (uint32_t c = 0; c < plan.chunks_per_frame(); ++c) {
      auto place = (*r)->Place({plan.KeyOf(frame), 0, c / 2, c % 2});
      ASSERT_TRUE(place.ok() && place->size > 0);
      auto got = (*r)->ReadPlace(*place);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      read += got->size();
      most = std::max(most, RssFileKb());
    }
  }
  EXPECT_EQ(read, stored);
  EXPECT_LT(most, before + (40 << 10)) << "kB mapped from files, before the reads " << before << "; "
                                       << (read >> 20) << " MiB read";
}

TEST_F(SlideFileTest, AFileWithoutChunkPlacesIsReadThroughHdf5) {
  ScanPlan plan = SmallPlan();
  {
    auto w = SlideFile::Create(path_, plan, "s-1");
    ASSERT_TRUE(w.ok());
    WriteFrame(**w, 4);
    ASSERT_TRUE((*w)->Close().ok());
  }
  {  // as a file written before chunk_at existed
    const hid_t f = H5Fopen(path_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    EXPECT_GE(H5Ldelete(f, "/raw/chunk_at", H5P_DEFAULT), 0);
    H5Fclose(f);
  }
  auto r = SlideFile::OpenForRead(path_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ChunkKey key{plan.KeyOf(4), 0, 1, 1};
  auto place = (*r)->Place(key);
  ASSERT_TRUE(place.ok());
  EXPECT_EQ(place->size, 0u);
  auto chunk = (*r)->ReadChunk(key);
  ASSERT_TRUE(chunk.ok());
  EXPECT_EQ(*chunk, ChunkBytes(plan, 4 * 10 + 1 * 2 + 1));
}

TEST_F(SlideFileTest, CreateRefusesToOverwrite) {
  auto f = SlideFile::Create(path_, SmallPlan(), "s-1");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(SlideFile::Create(path_, SmallPlan(), "s-2").status().code(),
            StatusCode::kAlreadyExists);
}

TEST_F(SlideFileTest, ASecondWriterWaitsForTheFirstToCloseTheFile) {
  auto first = SlideFile::Create(path_, SmallPlan(), "s-1");
  ASSERT_TRUE(first.ok());
  WriteFrame(**first, 2);
  ASSERT_TRUE((*first)->Sync(true).ok());
  // The first writer is still closing (its manager died, it got SIGTERM) when the next one
  // opens the file: the next one waits for it instead of failing the slide.
  std::thread closing([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    first->reset();
  });
  auto second = SlideFile::OpenForWrite(path_);
  closing.join();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_TRUE((*second)->IsWritten(2));
}

TEST_F(SlideFileTest, ReadableWhileBeingWritten) {
  auto w = SlideFile::Create(path_, SmallPlan(), "s-1");
  ASSERT_TRUE(w.ok());
  WriteFrame(**w, 2);
  ASSERT_TRUE((*w)->Sync(true).ok());
  auto r = SlideFile::OpenForRead(path_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)->IsWritten(2));
}

TEST_F(SlideFileTest, KilledWriterKeepsEverySyncedFrameAndResumes) {
  ScanPlan plan = SmallPlan();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto f = SlideFile::Create(path_, plan, "s-1");
    if (!f.ok()) ::_exit(1);
    for (uint64_t i = 0; i < 4; ++i) WriteFrame(**f, i);
    if (!(*f)->Sync(true).ok()) ::_exit(2);
    WriteFrame(**f, 4);  // written but never synced: not promised to anyone
    ::kill(::getpid(), SIGKILL);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);

  auto f = SlideFile::OpenForWrite(path_);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->frames_written(), 4u);
  EXPECT_FALSE((*f)->IsWritten(4));
  for (uint64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(*(*f)->ReadChunk({plan.KeyOf(i), 0, 0, 0}), ChunkBytes(plan, i * 10)) << "frame " << i;
  }
  WriteFrame(**f, 4);
  WriteFrame(**f, 5);
  ASSERT_TRUE((*f)->Close().ok());
  auto r = SlideFile::OpenForRead(path_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->frames_written(), 6u);
  EXPECT_EQ(*(*r)->ReadChunk({plan.KeyOf(4), 0, 0, 1}), ChunkBytes(plan, 41));
}

TEST_F(SlideFileTest, KilledBeforeItsFirstSyncTheFileStillResumes) {
  ScanPlan plan = SmallPlan();
  for (int round = 0; round < 3; ++round) {  // the kill lands at a different point each time
    std::filesystem::remove(path_);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      auto f = SlideFile::Create(path_, plan, "s-1");
      if (!f.ok()) ::_exit(1);
      for (uint64_t i = 0; i < static_cast<uint64_t>(2 + round * 2); ++i) WriteFrame(**f, i);
      ::kill(::getpid(), SIGKILL);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    auto f = SlideFile::OpenForWrite(path_);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_EQ((*f)->frames_written(), 0u);
    for (uint64_t i = 0; i < plan.frame_count(); ++i) WriteFrame(**f, i);
    ASSERT_TRUE((*f)->Close().ok());
    auto r = SlideFile::OpenForRead(path_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)->frames_written(), plan.frame_count());
    for (uint64_t i = 0; i < plan.frame_count(); ++i) {
      EXPECT_EQ(*(*r)->ReadChunk({plan.KeyOf(i), 0, 1, 2}), ChunkBytes(plan, i * 10 + 4)) << "frame " << i;
    }
  }
}

TEST_F(SlideFileTest, KilledAtAnyPointTheFileResumes) {
  ScanPlan plan = SmallPlan();
  plan.tiles.resize(40);
  for (size_t i = 0; i < plan.tiles.size(); ++i) plan.tiles[i].name = "t" + std::to_string(i);
  for (int round = 0; round < 20; ++round) {
    std::filesystem::remove(path_);
    int progress[2];
    ASSERT_EQ(::pipe(progress), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {  // writes and syncs frame after frame, reporting each one
      ::close(progress[0]);
      auto f = SlideFile::Create(path_, plan, "s-1");
      if (!f.ok()) ::_exit(1);
      for (uint64_t i = 0; i < plan.frame_count(); ++i) {
        WriteFrame(**f, i);
        if (!(*f)->Sync(i % 2 == 0).ok()) ::_exit(2);
        char c = 1;
        if (::write(progress[1], &c, 1) != 1) ::_exit(3);
      }
      ::pause();
    }
    ::close(progress[1]);
    // Kill after a different number of frames each round, wherever the child is then.
    int synced = 0;
    while (synced < 1 + round * 3 % 70) {
      char c;
      if (::read(progress[0], &c, 1) != 1) break;
      ++synced;
    }
    ::kill(child, SIGKILL);
    ::close(progress[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    auto f = SlideFile::OpenForWrite(path_);
    ASSERT_TRUE(f.ok()) << "round " << round << ": " << f.status().ToString();
    // Every frame the child had synced (and said so) before it died is there, intact.
    ASSERT_GE((*f)->frames_written(), uint64_t(synced)) << "round " << round;
    for (int i = 0; i < synced; ++i) {
      ASSERT_TRUE((*f)->IsWritten(uint64_t(i))) << "round " << round << " frame " << i;
      ASSERT_EQ(*(*f)->ReadOwnChunk({plan.KeyOf(uint64_t(i)), 0, 1, 2}), ChunkBytes(plan, uint64_t(i) * 10 + 4))
          << "round " << round << " frame " << i;
    }
    for (uint64_t i = 0; i < plan.frame_count(); ++i) {
      if (!(*f)->IsWritten(i)) WriteFrame(**f, i);
    }
    ASSERT_TRUE((*f)->Close().ok());
    auto r = SlideFile::OpenForRead(path_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ((*r)->frames_written(), plan.frame_count());
    for (uint64_t i = 0; i < plan.frame_count(); ++i) {
      ASSERT_EQ(*(*r)->ReadChunk({plan.KeyOf(i), 0, 1, 2}), ChunkBytes(plan, i * 10 + 4))
          << "round " << round << " frame " << i;
    }
  }
}

TEST_F(SlideFileTest, ReadFrameReassemblesChunksAndCropsPadding) {
  ScanPlan plan = SmallPlan();
  std::vector<uint16_t> pixels(size_t{plan.width} * plan.height);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint16_t>(i * 31 % 65521);
  auto f = SlideFile::Create(path_, plan, "s-1");
  ASSERT_TRUE(f.ok());
  const FrameKey key{1, 1, 0};
  std::vector<uint16_t> chunk(plan.chunk_bytes() / 2);
  for (uint32_t cy = 0; cy < plan.chunks_y(); ++cy)
    for (uint32_t cx = 0; cx < plan.chunks_x(); ++cx) {
      std::fill(chunk.begin(), chunk.end(), 0);
      for (uint32_t r = 0; r < plan.chunk_y && cy * plan.chunk_y + r < plan.height; ++r)
        for (uint32_t c = 0; c < plan.chunk_x && cx * plan.chunk_x + c < plan.width; ++c)
          chunk[r * plan.chunk_x + c] = pixels[(cy * plan.chunk_y + r) * plan.width + cx * plan.chunk_x + c];
      auto packed = *codec::Compress({reinterpret_cast<const uint8_t*>(chunk.data()), plan.chunk_bytes()}, 2, plan.codec);
      ASSERT_TRUE((*f)->WriteChunk({key, 0, cy, cx}, packed, codec::Checksum(packed)).ok());
    }
  (*f)->MarkWritten(plan.FrameIndex(key));
  ASSERT_TRUE((*f)->Sync(false).ok());
  auto frame = (*f)->ReadFrame(key);
  ASSERT_TRUE(frame.ok()) << frame.status().ToString();
  ASSERT_EQ(frame->size(), pixels.size() * 2);
  EXPECT_EQ(std::memcmp(frame->data(), pixels.data(), frame->size()), 0);
  EXPECT_EQ((*f)->ReadFrame({0, 0, 0}).status().code(), StatusCode::kNotFound);
}

TEST_F(SlideFileTest, AVolumeViewStoresChunksOfSeveralPlanesAndLevelsOfTheirOwnDepth) {
  ScanPlan plan;
  plan.name = "volume";
  plan.tiles.push_back({.name = "fused"});
  plan.width = 96;
  plan.height = 64;
  plan.z_planes = 10;  // chunks of 4 planes: 0-3, 4-7, 8-9 (the last padded)
  plan.chunk_y = plan.chunk_x = 32;
  plan.chunk_z = 4;
  plan.pixel_size_um = {1, 1, 1};  // isotropic: every level halves z
  ASSERT_TRUE(plan.Validate().ok());
  const LevelShape l0 = plan.Level(0), l1 = plan.Level(1);
  ASSERT_EQ(l1.depth, 5u);
  // Plane z of the volume holds value z * 100 + x.
  std::vector<uint16_t> chunk(l0.chunk_voxels());
  auto f = SlideFile::Create(path_, plan, "v-1");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  for (uint32_t z = 0; z < l0.depth; z += l0.chunk_z) {
    for (uint32_t cy = 0; cy < l0.chunks_y(); ++cy)
      for (uint32_t cx = 0; cx < l0.chunks_x(); ++cx) {
        for (uint32_t k = 0; k < l0.chunk_z; ++k)
          for (uint32_t i = 0; i < l0.chunk_pixels(); ++i)
            chunk[k * l0.chunk_pixels() + i] = static_cast<uint16_t>(z + k < l0.depth ? (z + k) * 100 + cx * 32 + i % 32 : 0);
        auto packed = *codec::Compress({reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size() * 2}, 2, plan.codec);
        ASSERT_TRUE((*f)->WriteChunk({{0, 0, z}, 0, cy, cx}, packed, codec::Checksum(packed)).ok());
      }
    for (uint32_t k = z; k < std::min(z + l0.chunk_z, l0.depth); ++k) (*f)->MarkWritten(plan.FrameIndex({0, 0, k}));
  }
  ASSERT_TRUE((*f)->Sync(false).ok());
  // A chunk is named by its first plane; any other plane is refused, as is a plane past the level.
  EXPECT_TRUE((*f)->ReadChunk({{0, 0, 8}, 0, 1, 2}).ok());
  EXPECT_EQ((*f)->ReadChunk({{0, 0, 2}, 0, 0, 0}).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ((*f)->ReadChunk({{0, 0, 5}, 1, 0, 0}).status().code(), StatusCode::kOutOfRange);  // level 1 has 5 planes
  EXPECT_EQ((*f)->ReadChunk({{0, 0, 4}, 1, 0, 0}).status().code(), StatusCode::kNotFound);    // not computed yet
  // A plane out of a chunk of several, checksums and all.
  auto plane9 = (*f)->ReadFrame({0, 0, 9});
  ASSERT_TRUE(plane9.ok()) << plane9.status().ToString();
  uint16_t v;
  std::memcpy(&v, plane9->data() + 2 * (5 * 96 + 70), 2);
  EXPECT_EQ(v, 9 * 100 + 70);
  ASSERT_TRUE((*f)->Close().ok());
  // h5py's view of it: chunks of 4 planes, level 1 five planes deep.
  const std::string script =
      "import sys, h5py, hdf5plugin; f = h5py.File(sys.argv[1], 'r'); t = f['/raw/tiles']; l = f['/raw/levels/1/tiles']; "
      "print(t.chunks, l.shape, l.chunks, int(t[0, 0, 9, 5, 70]), list(l.attrs['pixel_size_um']))";
  const std::string cmd = "/usr/bin/python3 -c \"" + script + "\" " + path_;
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[512] = {};
  const bool read = std::fgets(line, sizeof line, p) != nullptr;
  ::pclose(p);
  ASSERT_TRUE(read);
  EXPECT_EQ(std::string(line), "(1, 1, 4, 32, 32) (1, 1, 5, 32, 48) (1, 1, 4, 32, 32) 970 [2.0, 2.0, 2.0]\n");
}

}  // namespace
}  // namespace tessera::storage
