#include "server/gateway/render.h"

#include <fmt/format.h>
#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <memory>
#include <optional>

#include "server/gateway/url.h"

namespace tessera::gateway {
namespace {

struct Rgb {
  uint8_t r, g, b;
};

// Colours by what a channel's name usually means in fluorescence microscopy.
std::optional<Rgb> ColourOfName(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  auto has = [&](std::initializer_list<std::string_view> words) {
    return std::any_of(words.begin(), words.end(), [&](std::string_view w) { return name.find(w) != std::string::npos; });
  };
  if (has({"dapi", "hoechst", "405", "blue"})) return Rgb{0, 0, 255};
  if (has({"gfp", "488", "fitc", "green"})) return Rgb{0, 255, 0};
  if (has({"561", "568", "594", "cy3", "tritc", "mcherry", "rfp", "tdtomato", "red"})) return Rgb{255, 0, 0};
  if (has({"640", "647", "cy5", "far"})) return Rgb{255, 0, 255};
  return std::nullopt;
}

std::optional<uint32_t> ParseUint(std::string_view s, uint32_t max) {
  const auto v = ParseCount(s);
  if (!v || *v > max) return std::nullopt;
  return static_cast<uint32_t>(*v);
}

std::optional<Rgb> ParseHexColour(std::string_view s) {
  if (s.starts_with('#')) s.remove_prefix(1);
  if (s.size() != 6) return std::nullopt;
  uint8_t v[3];
  for (int i = 0; i < 3; ++i) {
    int byte = 0;
    for (char c : s.substr(static_cast<size_t>(2 * i), 2)) {
      const int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                    : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F')                    ? c - 'A' + 10
                                                                : -1;
      if (d < 0) return std::nullopt;
      byte = byte * 16 + d;
    }
    v[i] = static_cast<uint8_t>(byte);
  }
  return Rgb{v[0], v[1], v[2]};
}

// Source columns (or rows) averaged into each output one: [begin, end) clipped to the
// source, and how many there would be unclipped (outside counts as black).
struct Spans {
  std::vector<int64_t> begin, end, count;
};

Spans MakeSpans(double origin, double extent, int64_t out, int64_t source) {
  Spans s;
  s.begin.resize(static_cast<size_t>(out));
  s.end.resize(static_cast<size_t>(out));
  s.count.resize(static_cast<size_t>(out));
  const double step = extent / static_cast<double>(out);
  for (int64_t i = 0; i < out; ++i) {
    const double a = origin + static_cast<double>(i) * step, b = a + step;
    // Source pixels whose centres fall in [a, b); when enlarging, the one under the centre.
    int64_t lo = static_cast<int64_t>(std::ceil(a - 0.5)), hi = static_cast<int64_t>(std::ceil(b - 0.5));
    if (hi <= lo) {
      lo = static_cast<int64_t>(std::floor((a + b) / 2));
      hi = lo + 1;
    }
    const auto k = static_cast<size_t>(i);
    s.count[k] = hi - lo;
    s.begin[k] = std::clamp<int64_t>(lo, 0, source);
    s.end[k] = std::clamp<int64_t>(hi, 0, source);
  }
  return s;
}

using ColourTable = std::array<std::array<uint8_t, 256>, 3>;  // level -> each component

// Adds `level`, coloured, into the K interleaved components at `dst` (clamped at 255).
template <int K>
inline void Blend(uint8_t* dst, uint8_t level, const ColourTable& colour) {
  for (int c = 0; c < K; ++c) {
    dst[c] = static_cast<uint8_t>(std::min(255, dst[c] + colour[static_cast<size_t>(c)][level]));
  }
}

// Adds one channel, windowed through `lut` and coloured with `colour`, into `out` (K
// components): each output pixel the area average of the source pixels under it.
template <int K, typename T>
void AddChannel(const T* plane, int64_t src_w, const Spans& cols, const Spans& rows, const std::vector<uint8_t>& lut,
                const ColourTable& colour, Image8& out) {
  const int64_t ow = out.width, oh = out.height;
  for (int64_t j = 0; j < oh; ++j) {
    const auto jr = static_cast<size_t>(j);
    uint8_t* dst = out.pixels.data() + static_cast<size_t>(j * ow * K);
    for (int64_t i = 0; i < ow; ++i, dst += K) {
      const auto ic = static_cast<size_t>(i);
      uint64_t sum = 0;
      for (int64_t y = rows.begin[jr]; y < rows.end[jr]; ++y) {
        const T* row = plane + y * src_w;
        for (int64_t x = cols.begin[ic]; x < cols.end[ic]; ++x) sum += row[x];
      }
      const uint64_t n = static_cast<uint64_t>(rows.count[jr] * cols.count[ic]);
      const uint8_t level = lut[static_cast<size_t>((sum + n / 2) / n)];
      if (level != 0) Blend<K>(dst, level, colour);
    }
  }
}

// The same when every output pixel is one source pixel (a tile 1:1 with a stored level,
// the usual case): a table look-up per pixel over the run of columns inside the source.
// `first`: nothing was drawn yet, so the components are set rather than added to.
template <int K, typename T>
void AddChannelOneToOne(const T* plane, int64_t src_w, const Spans& cols, const Spans& rows,
                        const std::vector<uint8_t>& lut, const ColourTable& colour, bool first, Image8& out) {
  int64_t i0 = 0, i1 = out.width;  // output columns over the source (contiguous at 1:1)
  while (i0 < i1 && cols.end[static_cast<size_t>(i0)] == cols.begin[static_cast<size_t>(i0)]) ++i0;
  while (i1 > i0 && cols.end[static_cast<size_t>(i1 - 1)] == cols.begin[static_cast<size_t>(i1 - 1)]) --i1;
  if (i0 == i1) return;
  const int64_t x0 = cols.begin[static_cast<size_t>(i0)];
  for (int64_t j = 0; j < out.height; ++j) {
    const auto jr = static_cast<size_t>(j);
    if (rows.end[jr] == rows.begin[jr]) continue;  // outside the source: black
    const T* src = plane + rows.begin[jr] * src_w + x0;
    uint8_t* dst = out.pixels.data() + static_cast<size_t>((j * out.width + i0) * K);
    const int64_t n = i1 - i0;
    if constexpr (K == 1) {  // `lut` has the colour in it (see Render)
      if (first) {
        for (int64_t i = 0; i < n; ++i) dst[i] = lut[src[i]];
      } else {
        for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(std::min(255, dst[i] + lut[src[i]]));
      }
    } else {
      for (int64_t i = 0; i < n; ++i, dst += K) {
        const uint8_t level = lut[src[i]];
        for (int c = 0; c < K; ++c) {
          const uint8_t v = colour[static_cast<size_t>(c)][level];
          dst[c] = first ? v : static_cast<uint8_t>(std::min(255, dst[c] + v));
        }
      }
    }
  }
}

// The window as a table from raw value to 0..`weight`: linear from min to max, rounded,
// clamped; the ramp is computed, the rest filled.
void FillWindowTable(const ChannelStyle& s, int weight, std::vector<uint8_t>& lut) {
  const auto size = static_cast<uint32_t>(lut.size());
  const uint32_t lo = std::min(s.min + 1, size), hi = std::min(s.max, size);  // [lo, hi): the ramp
  std::fill(lut.begin(), lut.begin() + lo, uint8_t{0});
  const uint64_t span = s.max - s.min;
  for (uint32_t v = lo; v < hi; ++v) {
    const uint64_t level = ((v - s.min) * 510ull + span) / (2 * span);
    lut[v] = static_cast<uint8_t>((level * static_cast<uint64_t>(weight) + 127) / 255);
  }
  if (hi >= lo) std::fill(lut.begin() + hi, lut.end(), static_cast<uint8_t>(weight));
}

// Mirrors left-right, then rotates clockwise by 90, 180 or 270 degrees.
Image8 Orient(const Image8& in, bool mirror, int rotation) {
  if (!mirror && rotation == 0) return in;
  const bool swap = rotation == 90 || rotation == 270;
  Image8 out{swap ? in.height : in.width, swap ? in.width : in.height, in.channels, {}};
  out.pixels.resize(in.pixels.size());
  const int64_t W = in.width, H = in.height;
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t x = 0; x < W; ++x) {
      const int64_t sx = mirror ? W - 1 - x : x;  // (sx, y) after mirroring lands at (x, y)
      int64_t dx = x, dy = y;
      if (rotation == 90) dx = H - 1 - y, dy = x;
      else if (rotation == 180) dx = W - 1 - x, dy = H - 1 - y;
      else if (rotation == 270) dx = y, dy = W - 1 - x;
      std::copy_n(in.pixels.data() + (y * W + sx) * in.channels, in.channels,
                  out.pixels.data() + (dy * out.width + dx) * in.channels);
    }
  }
  return out;
}

}  // namespace

ChannelStyle DefaultStyle(std::span<const uint16_t> values, uint32_t channel, uint32_t channel_count,
                          const std::string& name) {
  std::vector<uint64_t> histogram(65536);
  uint64_t n = 0;
  for (uint16_t v : values) {
    if (v != 0) {
      ++histogram[v];
      ++n;
    }
  }
  ChannelStyle s;
  s.name = name;
  const uint64_t lo_rank = n / 1000, hi_rank = n - n / 1000;
  uint64_t seen = 0;
  bool lo_set = false;
  s.max = 1;
  for (uint32_t v = 1; v < 65536 && n > 0; ++v) {
    seen += histogram[v];
    if (!lo_set && seen > lo_rank) {
      s.min = v;
      lo_set = true;
    }
    if (seen >= hi_rank) {
      s.max = v;
      break;
    }
  }
  if (s.max <= s.min) s.max = s.min + 1;
  static constexpr Rgb kPalette[] = {{0, 255, 0}, {255, 0, 255}, {0, 255, 255}, {255, 255, 0}, {255, 0, 0}, {0, 0, 255}};
  Rgb c = channel_count == 1 ? Rgb{255, 255, 255} : ColourOfName(name).value_or(kPalette[channel % std::size(kPalette)]);
  s.r = c.r;
  s.g = c.g;
  s.b = c.b;
  return s;
}

Result<std::vector<ChannelStyle>> ApplyStyleQuery(std::vector<ChannelStyle> styles,
                                                  const std::map<std::string, std::string>& query) {
  const auto count = static_cast<uint32_t>(styles.size());
  auto channel_of = [&](std::string_view key, std::string_view text) -> Result<uint32_t> {
    const auto c = ParseUint(text, 1u << 20);
    if (!c || *c >= count) {
      return Error(StatusCode::kInvalidArgument, "{}: '{}' is not a channel; the slide has channels 0 to {}", key, text,
                   count - 1);
    }
    return *c;
  };
  for (const auto& [key, value] : query) {
    if (key == "channels") {
      for (auto& s : styles) s.on = false;
      if (value.empty()) continue;
      for (std::string_view text : Split(value, ',')) {
        TESSERA_ASSIGN_OR_RETURN(uint32_t c, channel_of(key, text));
        styles[c].on = true;
      }
    } else if (key.starts_with("window")) {
      TESSERA_ASSIGN_OR_RETURN(uint32_t c, channel_of(key, std::string_view(key).substr(6)));
      const auto bounds = Split(value, ',');
      const auto lo = bounds.size() == 2 ? ParseUint(bounds[0], 65535) : std::nullopt;
      const auto hi = bounds.size() == 2 ? ParseUint(bounds[1], 65535) : std::nullopt;
      if (!lo || !hi || *hi <= *lo) {
        return Error(StatusCode::kInvalidArgument, "{}={}: give min,max with 0 <= min < max <= 65535", key, value);
      }
      styles[c].min = *lo;
      styles[c].max = *hi;
    } else if (key.starts_with("color")) {
      TESSERA_ASSIGN_OR_RETURN(uint32_t c, channel_of(key, std::string_view(key).substr(5)));
      const auto rgb = ParseHexColour(value);
      if (!rgb) return Error(StatusCode::kInvalidArgument, "{}={}: give a hex colour such as ff00ff", key, value);
      styles[c].r = rgb->r;
      styles[c].g = rgb->g;
      styles[c].b = rgb->b;
    }
  }
  return styles;
}

Result<Image8> Render(const Planes& src, const SourceBox& box, const std::vector<ChannelStyle>& styles,
                      const IiifImageRequest& req) {
  if (static_cast<int>(styles.size()) != src.channels) {
    return Error(StatusCode::kInternal, "{} channel styles for {} planes", styles.size(), src.channels);
  }
  if (src.bytes_per_sample != 1 && src.bytes_per_sample != 2) {
    return Error(StatusCode::kInvalidArgument, "{}-byte samples cannot be rendered", src.bytes_per_sample);
  }
  const auto plane_bytes = static_cast<size_t>(src.width * src.height * src.bytes_per_sample);
  if (src.data.size() < plane_bytes * static_cast<size_t>(src.channels)) {
    return Error(StatusCode::kInternal, "{} bytes for {} planes of {} x {}", src.data.size(), src.channels, src.width,
                 src.height);
  }
  // One component when the picture has no colour: asked for gray, or every channel that is
  // on is a shade of grey (a single channel shown white). A third of the JPEG's work.
  const bool colourless = std::all_of(styles.begin(), styles.end(),
                                      [](const ChannelStyle& s) { return !s.on || (s.r == s.g && s.g == s.b); });
  const bool gray = req.quality == IiifImageRequest::Quality::kGray;
  Image8 out{req.out_w, req.out_h, gray || colourless ? 1 : 3, {}};
  out.pixels.assign(static_cast<size_t>(out.width * out.height * out.channels), 0);
  const Spans cols = MakeSpans(box.x, box.w, out.width, src.width);
  const Spans rows = MakeSpans(box.y, box.h, out.height, src.height);
  // 1:1: one source pixel per output pixel, consecutive (enlarging repeats them).
  const bool unit = box.w == static_cast<double>(out.width) && box.h == static_cast<double>(out.height);
  std::vector<uint8_t> lut(src.bytes_per_sample == 1 ? 256 : 65536);
  bool first = true;
  for (int c = 0; c < src.channels; ++c) {
    const ChannelStyle& s = styles[static_cast<size_t>(c)];
    if (!s.on) continue;
    // One component: the colour's weight goes into the window table (gray: the sum of
    // the windowed intensities, whatever the colours) and the colour table is the identity.
    const int weight = gray ? 255 : s.r;
    FillWindowTable(s, out.channels == 1 ? weight : 255, lut);
    ColourTable colour{};
    const int rgb[3] = {s.r, s.g, s.b};
    for (int k = 0; k < out.channels; ++k) {
      for (int l = 0; l < 256; ++l) {
        colour[static_cast<size_t>(k)][static_cast<size_t>(l)] =
            static_cast<uint8_t>(out.channels == 1 ? l : (l * rgb[k] + 127) / 255);
      }
    }
    const uint8_t* plane = src.data.data() + plane_bytes * static_cast<size_t>(c);
    const auto* plane16 = reinterpret_cast<const uint16_t*>(plane);
    auto add = [&]<int K>() {
      if (unit) {
        src.bytes_per_sample == 2 ? AddChannelOneToOne<K>(plane16, src.width, cols, rows, lut, colour, first, out)
                                  : AddChannelOneToOne<K>(plane, src.width, cols, rows, lut, colour, first, out);
      } else {
        src.bytes_per_sample == 2 ? AddChannel<K>(plane16, src.width, cols, rows, lut, colour, out)
                                  : AddChannel<K>(plane, src.width, cols, rows, lut, colour, out);
      }
    };
    out.channels == 1 ? add.template operator()<1>() : add.template operator()<3>();
    first = false;
  }
  return Orient(out, req.mirror, req.rotation);
}

Result<std::string> EncodeJpeg(const Image8& image, int quality) {
  // One compressor per thread, made on first use.
  thread_local std::unique_ptr<void, int (*)(tjhandle)> handle(tjInitCompress(), tjDestroy);
  if (!handle) return Error(StatusCode::kInternal, "libjpeg-turbo: {}", tjGetErrorStr2(nullptr));
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(handle.get(), image.pixels.data(), static_cast<int>(image.width), 0,
                             static_cast<int>(image.height), image.channels == 1 ? TJPF_GRAY : TJPF_RGB, &jpeg, &size,
                             image.channels == 1 ? TJSAMP_GRAY : TJSAMP_444, quality, TJFLAG_FASTDCT);
  std::unique_ptr<unsigned char, void (*)(unsigned char*)> owned(jpeg, tjFree);
  if (rc != 0) return Error(StatusCode::kInternal, "libjpeg-turbo: {}", tjGetErrorStr2(handle.get()));
  return std::string(reinterpret_cast<const char*>(jpeg), size);
}

Result<std::string> EncodePng(const Image8& image) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = image.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, image.pixels.data(), 0, nullptr)) {
    return Error(StatusCode::kInternal, "libpng: {}", png.message);
  }
  std::string out(size, '\0');
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, image.pixels.data(), 0, nullptr)) {
    return Error(StatusCode::kInternal, "libpng: {}", png.message);
  }
  out.resize(size);
  return out;
}

std::vector<ChannelStyle> DefaultStyles(const Array& a, const std::vector<std::string>& names) {
  std::vector<ChannelStyle> styles;
  const size_t plane = static_cast<size_t>(a.shape[2] * a.shape[3]);
  std::vector<uint16_t> values(plane);
  for (uint32_t c = 0; c < a.shape[0]; ++c) {
    for (size_t i = 0; i < plane; ++i) {
      const size_t at = a.index(c, 0, 0, 0) + i;
      values[i] = a.dtype == Dtype::kUint16 ? a.values<uint16_t>()[at] : a.values<uint8_t>()[at];
    }
    styles.push_back(DefaultStyle(values, c, static_cast<uint32_t>(a.shape[0]), names[c]));
  }
  return styles;
}

}  // namespace tessera::gateway
