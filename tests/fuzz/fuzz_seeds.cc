// Writes the binary seeds of the fuzz corpus (TIFFs, protobuf messages, ingest frames) into
// the corpus folder given as the only argument: `fuzz_seeds tests/fuzz/corpus`. The text
// seeds (JSON plans, TileConfiguration files, URLs) are written by hand.
#include <tiffio.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/codec/codec.h"
#include "common/imageio/tiff.h"
#include "proto/tessera.pb.h"
#include "tests/dcimg_files.h"

namespace {

namespace fs = std::filesystem;
using namespace tessera;

fs::path root;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / target);
  std::ofstream(root / target / name, std::ios::binary) << bytes;
}

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

imageio::Image Ramp(uint32_t w, uint32_t h, uint32_t planes, Dtype dtype) {
  imageio::Image img{.width = w, .height = h, .planes = planes, .dtype = dtype};
  img.pixels.resize(size_t{w} * h * planes * DtypeSize(dtype));
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(i * 7 + 3);
  return img;
}

// A one-page TIFF written by libtiff with the given compression, tiled or in strips.
std::string LibTiff(uint32_t w, uint32_t h, int bits, int compression, bool tiled, int samples = 1,
                    int format = SAMPLEFORMAT_UINT) {
  const fs::path path = fs::temp_directory_path() / "tessera_fuzz_seed.tif";
  TIFF* t = TIFFOpen(path.c_str(), "w");
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, w);
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, h);
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, samples);
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, bits);
  TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, format);
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, samples == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
  TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(t, TIFFTAG_COMPRESSION, compression);
  const size_t elem = static_cast<size_t>(bits / 8 * samples);
  if (tiled) {
    TIFFSetField(t, TIFFTAG_TILEWIDTH, 16);
    TIFFSetField(t, TIFFTAG_TILELENGTH, 16);
    std::vector<uint8_t> tile(16 * 16 * elem);
    for (uint32_t y = 0; y < h; y += 16) {
      for (uint32_t x = 0; x < w; x += 16) {
        for (size_t i = 0; i < tile.size(); ++i) tile[i] = static_cast<uint8_t>(x + y + i);
        TIFFWriteTile(t, tile.data(), x, y, 0, 0);
      }
    }
  } else {
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 4);
    std::vector<uint8_t> row(w * elem);
    for (uint32_t y = 0; y < h; ++y) {
      for (size_t i = 0; i < row.size(); ++i) row[i] = static_cast<uint8_t>(y * 3 + i);
      TIFFWriteScanline(t, row.data(), y, 0);
    }
  }
  TIFFClose(t);
  std::string bytes = Slurp(path);
  fs::remove(path);
  return bytes;
}

void TiffSeeds() {
  const auto encode = [](const imageio::Image& img) { return *imageio::EncodeTiff(img); };
  Write("tiff_fuzz", "u8_strips.tif", encode(Ramp(16, 8, 1, Dtype::kUint8)));
  Write("tiff_fuzz", "u16_3_pages.tif", encode(Ramp(7, 5, 3, Dtype::kUint16)));
  const fs::path big = fs::temp_directory_path() / "tessera_fuzz_big.tif";
  if (imageio::WriteTiff(big.string(), Ramp(9, 4, 2, Dtype::kUint8), /*bigtiff=*/true).ok()) {
    Write("tiff_fuzz", "bigtiff_2_pages.tif", Slurp(big));
  }
  fs::remove(big);
  Write("tiff_fuzz", "u16_tiled_lzw.tif", LibTiff(40, 20, 16, COMPRESSION_LZW, true));
  Write("tiff_fuzz", "u8_deflate.tif", LibTiff(24, 10, 8, COMPRESSION_ADOBE_DEFLATE, false));
  Write("tiff_fuzz", "u8_packbits_tiled.tif", LibTiff(20, 20, 8, COMPRESSION_PACKBITS, true));
  Write("tiff_fuzz", "rgb_refused.tif", LibTiff(8, 8, 8, COMPRESSION_NONE, false, 3));
  Write("tiff_fuzz", "float_refused.tif", LibTiff(8, 8, 32, COMPRESSION_NONE, false, 1, SAMPLEFORMAT_IEEEFP));
  const std::string cut = encode(Ramp(30, 30, 1, Dtype::kUint16));
  Write("tiff_fuzz", "truncated.tif", cut.substr(0, cut.size() / 2));
  Write("tiff_fuzz", "not_a_tiff.txt", "this is not a tiff");
}

// DCIMG files of each version, as tests/dcimg_files.h writes them from the documented layout.
void DcimgSeeds() {
  for (uint32_t v : {0x7u, 0x1000000u, 0x2000000u}) {
    Write("dcimg_fuzz", fmt::format("v{:x}.dcimg", v), testing::Build({.version = v, .width = 9, .height = 5, .frames = 2}));
  }
}

// The ingest_fuzz layout: flags, header length, header, length-prefixed payload frames.
std::string IngestInput(const proto::IngestMessage& m, const std::vector<std::string>& payload, bool fix = false) {
  const std::string header = m.SerializeAsString();
  std::string out(1, fix ? '\1' : '\0');
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  for (const auto& p : payload) {
    out += static_cast<char>(p.size() & 0xFF);
    out += static_cast<char>(p.size() >> 8);
    out += p;
  }
  return out;
}

void IngestSeeds() {
  // The fixed plan of ingest_fuzz: 64 x 48 uint16 frames in 32 x 32 chunks (2 x 2).
  std::vector<std::string> chunks;
  for (int i = 0; i < 4; ++i) {
    std::vector<uint8_t> raw(32 * 32 * 2);
    for (size_t k = 0; k < raw.size(); ++k) raw[k] = static_cast<uint8_t>(k * (i + 1));
    const auto packed = *codec::Compress(raw, 2, {});
    chunks.emplace_back(packed.begin(), packed.end());
  }
  auto frame = [&](uint32_t t, std::vector<std::pair<uint32_t, uint32_t>> cells) {
    proto::IngestMessage m;
    m.set_version(1);
    auto* f = m.mutable_frame();
    f->set_slide_id("s-1");
    f->set_t(t);
    f->set_c(1);
    f->set_z(1);
    for (size_t i = 0; i < cells.size(); ++i) {
      auto* meta = f->add_chunks();
      meta->set_cy(cells[i].first);
      meta->set_cx(cells[i].second);
      const std::string& c = chunks[i % chunks.size()];
      meta->set_xxh64(codec::Checksum({reinterpret_cast<const uint8_t*>(c.data()), c.size()}));
    }
    return m;
  };
  const std::vector<std::pair<uint32_t, uint32_t>> grid = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
  Write("ingest_fuzz", "valid_frame", IngestInput(frame(1, grid), chunks));
  Write("ingest_fuzz", "chunk_twice", IngestInput(frame(0, {{0, 0}, {0, 1}, {0, 1}, {1, 1}}), chunks));
  Write("ingest_fuzz", "chunk_outside", IngestInput(frame(0, {{0, 0}, {0, 1}, {1, 0}, {2, 0}}), chunks));
  Write("ingest_fuzz", "frame_outside", IngestInput(frame(7, grid), chunks));
  Write("ingest_fuzz", "three_payloads", IngestInput(frame(0, grid), {chunks[0], chunks[1], chunks[2]}));
  std::vector<std::string> damaged = chunks;
  damaged[2][20] ^= 0x5A;
  Write("ingest_fuzz", "damaged_fixed_checksum", IngestInput(frame(1, grid), damaged, /*fix=*/true));
  std::vector<std::string> header_broken = chunks;
  header_broken[1][3] = '\x7F';  // Blosc cbytes/typesize region
  Write("ingest_fuzz", "blosc_header_broken", IngestInput(frame(1, grid), header_broken, true));
  auto other = frame(0, grid);
  other.mutable_frame()->set_slide_id("s-2");
  Write("ingest_fuzz", "other_slide", IngestInput(other, chunks));
  proto::IngestMessage hello;
  hello.set_version(1);
  hello.mutable_hello()->set_slide_id("s-1");
  Write("ingest_fuzz", "hello", IngestInput(hello, {}));
}

void RequestSeeds() {
  proto::DealerRequest d;
  d.set_version(1);
  d.set_request_id(7);
  d.mutable_list_slides();
  Write("dealer_request_fuzz", "list_slides", d.SerializeAsString());
  d.mutable_slide_info()->set_slide_id("s-1");
  Write("dealer_request_fuzz", "slide_info", d.SerializeAsString());
  auto* read = d.mutable_read_chunks();
  read->set_slide_id("s-1");
  for (uint32_t i = 0; i < 3; ++i) {
    auto* c = read->add_chunks();
    c->set_t(i), c->set_c(1), c->set_z(2), c->set_level(i), c->set_cy(1), c->set_cx(i);
  }
  Write("dealer_request_fuzz", "read_chunks", d.SerializeAsString());
  auto* plan = d.mutable_plan_region();
  plan->set_slide_id("s-1");
  plan->set_level(2);
  plan->mutable_box()->set_x(-5), plan->mutable_box()->set_y(10), plan->mutable_box()->set_w(1 << 20),
      plan->mutable_box()->set_h(300);
  plan->set_cursor(12);
  plan->set_max_copies(100);
  Write("dealer_request_fuzz", "plan_region", d.SerializeAsString());
  Write("dealer_request_fuzz", "garbage", "\xff\xff\xff\xff\x0f\x08");

  proto::ManagerRequest m;
  m.set_version(1);
  m.mutable_open_slide()->set_plan_json(R"({"width":64,"height":48,"channels":["a"],"tiles":[{"name":"t0"}]})");
  Write("manager_request_fuzz", "open_slide", m.SerializeAsString());
  m.mutable_close_slide()->set_slide_id("s-1");
  Write("manager_request_fuzz", "close_slide", m.SerializeAsString());
  m.mutable_list_slides();
  Write("manager_request_fuzz", "list_slides", m.SerializeAsString());
  (*m.mutable_get_endpoints()->mutable_endpoints())["broker"] = "tcp://127.0.0.1:5555";
  Write("manager_request_fuzz", "get_endpoints", m.SerializeAsString());
  auto* stitch = m.mutable_stitch_slide();
  stitch->set_slide_id("s-1"), stitch->set_channel(1), stitch->set_z(-1), stitch->set_max_shift(20);
  Write("manager_request_fuzz", "stitch_slide", m.SerializeAsString());
  auto* store = m.mutable_store_stitch();
  store->set_slide_id("s-1");
  for (double v : {0.0, 1.5, 230.25, -4.0}) store->add_positions(v);
  store->set_report_json("{}");
  Write("manager_request_fuzz", "store_stitch", m.SerializeAsString());
  auto* progress = m.mutable_stitch_progress();
  progress->set_slide_id("s-1"), progress->set_state("running");
  Write("manager_request_fuzz", "stitch_progress", m.SerializeAsString());
  Write("manager_request_fuzz", "garbage", "\x12\xff\x01zz");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds CORPUS_DIR (tests/fuzz/corpus)\n");
    return 2;
  }
  root = argv[1];
  TiffSeeds();
  DcimgSeeds();
  IngestSeeds();
  RequestSeeds();
  return 0;
}
