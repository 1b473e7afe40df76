#include "server/gateway/iiif.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

#include "server/gateway/url.h"

namespace tessera::gateway {
namespace {

constexpr int64_t kW = 3000, kH = 2000;
const IiifLimits kLimits{.max_width = 4096, .max_height = 4096, .max_area = 4096 * 3000};

IiifImageRequest Parse(const std::string& spec) {
  auto r = ParseImageRequest(spec, kW, kH, kLimits);
  EXPECT_TRUE(r.ok()) << spec << ": " << r.status().ToString();
  return r.ok() ? *r : IiifImageRequest{};
}

StatusCode Code(const std::string& spec) { return ParseImageRequest(spec, kW, kH, kLimits).status().code(); }

TEST(IiifRegion, EveryForm) {
  auto full = Parse("full/max/0/default.jpg");
  EXPECT_EQ(full.x, 0);
  EXPECT_EQ(full.w, kW);
  EXPECT_EQ(full.h, kH);
  auto square = Parse("square/max/0/default.jpg");
  EXPECT_EQ(square.x, 500);  // centred on the longer side
  EXPECT_EQ(square.y, 0);
  EXPECT_EQ(square.w, 2000);
  EXPECT_EQ(square.h, 2000);
  auto px = Parse("10,20,300,400/max/0/default.jpg");
  EXPECT_EQ(px.x, 10);
  EXPECT_EQ(px.y, 20);
  EXPECT_EQ(px.w, 300);
  EXPECT_EQ(px.h, 400);
  auto pct = Parse("pct:10,25,50,50/max/0/default.jpg");
  EXPECT_EQ(pct.x, 300);
  EXPECT_EQ(pct.y, 500);
  EXPECT_EQ(pct.w, 1500);
  EXPECT_EQ(pct.h, 1000);
  auto frac = Parse("pct:0.5,0,12.5,100/max/0/default.jpg");
  EXPECT_EQ(frac.x, 15);
  EXPECT_EQ(frac.w, 375);
}

TEST(IiifRegion, EdgeTilesAreCroppedToTheImage) {
  auto edge = Parse("2560,1536,512,512/max/0/default.jpg");
  EXPECT_EQ(edge.w, 440);
  EXPECT_EQ(edge.h, 464);
  EXPECT_EQ(edge.out_w, 440);  // max: the cropped region's size
  auto scaled = Parse("2048,1024,1024,1024/476,/0/default.jpg");  // as OpenSeadragon asks for an edge tile
  EXPECT_EQ(scaled.w, 952);
  EXPECT_EQ(scaled.out_w, 476);
  EXPECT_EQ(scaled.out_h, 488);
}

TEST(IiifRegion, EmptyOrOutsideOrMalformedIs400) {
  for (const char* spec : {"0,0,0,10/max/0/default.jpg", "0,0,10,0/max/0/default.jpg", "3000,0,10,10/max/0/default.jpg",
                           "0,2000,10,10/max/0/default.jpg", "-1,0,10,10/max/0/default.jpg", "1,2,3/max/0/default.jpg",
                           "1,2,3,4,5/max/0/default.jpg", "a,b,c,d/max/0/default.jpg", "pct:101,0,1,1/max/0/default.jpg",
                           "pct:1e2,0,1,1/max/0/default.jpg", "1.5,0,10,10/max/0/default.jpg", "Full/max/0/default.jpg",
                           "99999999999999999999,0,1,1/max/0/default.jpg", "/max/0/default.jpg"}) {
    EXPECT_EQ(Code(spec), StatusCode::kInvalidArgument) << spec;
  }
}

TEST(IiifSize, EveryForm) {
  EXPECT_EQ(Parse("full/max/0/default.jpg").out_w, kW);
  auto w = Parse("full/300,/0/default.jpg");
  EXPECT_EQ(w.out_w, 300);
  EXPECT_EQ(w.out_h, 200);
  auto h = Parse("full/,100/0/default.jpg");
  EXPECT_EQ(h.out_w, 150);
  EXPECT_EQ(h.out_h, 100);
  auto wh = Parse("full/300,50/0/default.jpg");  // distorted, as asked
  EXPECT_EQ(wh.out_w, 300);
  EXPECT_EQ(wh.out_h, 50);
  auto confined = Parse("full/!300,300/0/default.jpg");
  EXPECT_EQ(confined.out_w, 300);
  EXPECT_EQ(confined.out_h, 200);
  auto pct = Parse("full/pct:25/0/default.jpg");
  EXPECT_EQ(pct.out_w, 750);
  EXPECT_EQ(pct.out_h, 500);
  auto small = Parse("0,0,100,100/!500,500/0/default.jpg");  // no upscaling without ^
  EXPECT_EQ(small.out_w, 100);
}

TEST(IiifSize, UpscalingOnlyWithCaret) {
  EXPECT_EQ(Code("0,0,100,100/200,/0/default.jpg"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("0,0,100,100/,101/0/default.jpg"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("0,0,100,100/pct:150/0/default.jpg"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse("0,0,100,100/^200,/0/default.jpg").out_h, 200);
  EXPECT_EQ(Parse("0,0,100,100/^pct:150/0/default.jpg").out_w, 150);
  EXPECT_EQ(Parse("0,0,100,100/^!500,400/0/default.jpg").out_w, 400);
  auto upmax = Parse("0,0,100,50/^max/0/default.jpg");  // up to the limits, keeping the shape
  EXPECT_EQ(upmax.out_w, 4096);
  EXPECT_EQ(upmax.out_h, 2048);
}

TEST(IiifSize, LimitsAndErrors) {
  // max stays within maxArea: 3000 x 2000 = 6 M pixels > 4096 x 3000.
  const IiifLimits tight{.max_width = 1000, .max_height = 1000, .max_area = 1000 * 1000};
  auto m = ParseImageRequest("full/max/0/default.jpg", kW, kH, tight);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->out_w, 1000);
  EXPECT_EQ(m->out_h, 666);
  EXPECT_EQ(ParseImageRequest("full/2000,/0/default.jpg", kW, kH, tight).status().code(), StatusCode::kResourceExhausted);
  for (const char* spec : {"full/full/0/default.jpg", "full/,/0/default.jpg", "full/0,/0/default.jpg",
                           "full/!300,/0/default.jpg", "full/pct:0/0/default.jpg", "full/pct:x/0/default.jpg",
                           "full/-5,/0/default.jpg", "full/1,2,3/0/default.jpg", "full//0/default.jpg"}) {
    EXPECT_EQ(Code(spec), StatusCode::kInvalidArgument) << spec;
  }
}

TEST(IiifRotationQualityFormat, OfferedAndNot) {
  auto r = Parse("full/max/!90/gray.png");
  EXPECT_TRUE(r.mirror);
  EXPECT_EQ(r.rotation, 90);
  EXPECT_EQ(r.quality, IiifImageRequest::Quality::kGray);
  EXPECT_EQ(r.format, IiifImageRequest::Format::kPng);
  EXPECT_EQ(Parse("full/max/360/color.jpg").rotation, 0);
  EXPECT_EQ(Parse("full/max/270.0/default.jpg").rotation, 270);
  EXPECT_EQ(Code("full/max/45/default.jpg"), StatusCode::kUnimplemented);
  EXPECT_EQ(Code("full/max/22.5/default.jpg"), StatusCode::kUnimplemented);
  EXPECT_EQ(Code("full/max/361/default.jpg"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("full/max/-90/default.jpg"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("full/max/0/bitonal.jpg"), StatusCode::kUnimplemented);
  EXPECT_EQ(Code("full/max/0/sepia.jpg"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("full/max/0/default.webp"), StatusCode::kUnimplemented);
  EXPECT_EQ(Code("full/max/0/default.tif"), StatusCode::kUnimplemented);
  EXPECT_EQ(Code("full/max/0/default.exe"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("full/max/0/default"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("full/max/0"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("full/max/0/default.jpg/extra"), StatusCode::kInvalidArgument);
}

TEST(IiifLevels, TheCoarsestLevelWithEnoughResolution) {
  auto at = [](const std::string& spec) { return ChooseLevel(Parse(spec), 4); };
  EXPECT_EQ(at("0,0,512,512/512,/0/default.jpg"), 0);
  EXPECT_EQ(at("0,0,1024,1024/512,/0/default.jpg"), 1);
  EXPECT_EQ(at("0,0,1023,1023/512,/0/default.jpg"), 1);  // OpenSeadragon's edge tiles round
  EXPECT_EQ(at("0,0,1000,1000/512,/0/default.jpg"), 0);  // level 1 would have 500 < 512 pixels
  EXPECT_EQ(at("0,0,2048,2048/512,/0/default.jpg"), 2);
  EXPECT_EQ(at("full/100,/0/default.jpg"), 3);  // never past the coarsest level
  EXPECT_EQ(at("0,0,2048,512/512,512/0/default.jpg"), 0);  // the finer direction decides
}

TEST(IiifInfo, RequiredFieldsTilesAndSizes) {
  auto j = nlohmann::json::parse(InfoJson("http://h/iiif/3/s1", 3000, 2000, 4, 512, kLimits));
  EXPECT_EQ(j["@context"], "http://iiif.io/api/image/3/context.json");
  EXPECT_EQ(j["id"], "http://h/iiif/3/s1");
  EXPECT_EQ(j["type"], "ImageService3");
  EXPECT_EQ(j["protocol"], "http://iiif.io/api/image");
  EXPECT_EQ(j["profile"], "level2");
  EXPECT_EQ(j["width"], 3000);
  EXPECT_EQ(j["height"], 2000);
  EXPECT_EQ(j["maxArea"], kLimits.max_area);
  EXPECT_EQ(j["tiles"][0]["width"], 512);
  EXPECT_EQ(j["tiles"][0]["scaleFactors"], nlohmann::json({1, 2, 4, 8}));
  ASSERT_EQ(j["sizes"].size(), 4u);
  EXPECT_EQ(j["sizes"][0]["width"], 375);  // smallest first
  EXPECT_EQ(j["sizes"][3]["width"], 3000);
  EXPECT_NE(std::find(j["extraFeatures"].begin(), j["extraFeatures"].end(), "mirroring"), j["extraFeatures"].end());
  // Sizes over the limits are not offered.
  auto tight = nlohmann::json::parse(InfoJson("x", 3000, 2000, 4, 512, {1000, 1000, 1000000}));
  EXPECT_EQ(tight["sizes"].size(), 2u);
}

// ---------------------------------------------------------------- bounds (every URL is hostile)

TEST(IiifBounds, ARegionNumberPastAUint32Is400) {
  EXPECT_EQ(Code("0,0,4294967296,10/max/0/default.jpg"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("4294967296,0,10,10/max/0/default.jpg"), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseImageRequest("0,0,4294967296,1/max/0/default.jpg", kW, kH, kLimits).status().message(),
            "region '0,0,4294967296,1': 4294967296 is over the largest pixel count, 4294967295");
  // The largest count itself is only cropped to the image.
  EXPECT_EQ(Parse("0,0,4294967295,4294967295/max/0/default.jpg").w, kW);
}

TEST(IiifBounds, ASizePastAUint32Is400) {
  for (const char* spec : {"full/4294967296,/0/default.jpg", "full/^4294967296,/0/default.jpg",
                           "full/,4294967296/0/default.jpg", "full/^!4294967296,4294967296/0/default.jpg",
                           "full/^999999999999,999999999999/0/default.jpg"}) {
    EXPECT_EQ(Code(spec), StatusCode::kInvalidArgument) << spec;
  }
}

TEST(IiifBounds, NumbersOfTwentyDigitsAre400) {
  for (const char* spec : {"99999999999999999999,0,1,1/max/0/default.jpg", "0,0,1,99999999999999999999/max/0/default.jpg",
                           "full/99999999999999999999,/0/default.jpg", "full/^pct:99999999999999999999/0/default.jpg",
                           "full/max/99999999999999999999/default.jpg", "pct:99999999999999999999,0,1,1/max/0/default.jpg"}) {
    const StatusCode code = Code(spec);
    // A percentage that large upscales past the limits: 413, never a wrapped size.
    EXPECT_TRUE(code == StatusCode::kInvalidArgument || code == StatusCode::kResourceExhausted) << spec;
  }
  EXPECT_EQ(Code("full/^pct:99999999999999999999/0/default.jpg"), StatusCode::kResourceExhausted);
}

TEST(IiifBounds, AnUpscaledPercentageStaysWithinTheLimits) {
  // 3000 x 2000 at 1e18 %: refused as over the limits, not cast to a wrapped int64.
  EXPECT_EQ(Code("full/^pct:1000000000000000000/0/default.jpg"), StatusCode::kResourceExhausted);
}

TEST(IiifBounds, AnOverLongRequestIs400) {
  const std::string spec = "full/max/0/default.jpg" + std::string(kMaxUrlBytes, 'x');
  EXPECT_EQ(ParseImageRequest(spec, kW, kH, kLimits).status().message(),
            "the request is 8214 bytes long, over the limit of 8192");
}

TEST(IiifBounds, ChooseLevelWithAbsurdLevelCountsStaysDefined) {
  IiifImageRequest req = Parse("full/1,/0/default.jpg");
  req.w = req.h = int64_t{1} << 62;  // a region of 2^62 shown as one pixel
  EXPECT_EQ(ChooseLevel(req, 1000), 61);
  EXPECT_EQ(ChooseLevel(req, 0), 0);
}

TEST(UrlBounds, PercentDecodeRefusesAnOverLongUrl) {
  EXPECT_TRUE(PercentDecode(std::string(kMaxUrlBytes, 'a')).ok());
  EXPECT_EQ(PercentDecode(std::string(kMaxUrlBytes + 1, 'a')).status().message(),
            "the URL is 8193 bytes long, over the limit of 8192");
}

TEST(UrlBounds, PercentDecodeRefusesInvalidUtf8) {
  EXPECT_EQ(*PercentDecode("caf%C3%A9"), "caf\xc3\xa9");
  for (const char* bad : {"%E9", "%C3", "%C0%AF", "%ED%A0%80", "%F4%90%80%80", "%FF"}) {
    EXPECT_EQ(PercentDecode(bad).status().message(), "the URL is not valid UTF-8 once decoded") << bad;
  }
}

TEST(UrlBounds, PercentDecodeRefusesAnEscapeCutShortAtTheEnd) {
  for (const char* bad : {"a%", "a%4", "%%41"}) EXPECT_FALSE(PercentDecode(bad).ok()) << bad;
  EXPECT_EQ(*PercentDecode("a%41"), "aA");
}

TEST(UrlBounds, ParseQueryRefusesTooManyParametersAndOverLongQueries) {
  std::string query;
  for (size_t i = 0; i < kMaxQueryParams; ++i) query += "k" + std::to_string(i) + "=1&";
  EXPECT_TRUE(ParseQuery(query).ok());
  EXPECT_EQ(ParseQuery(query + "one=more").status().message(), "the query has more than 256 parameters");
  EXPECT_EQ(ParseQuery(std::string(kMaxUrlBytes + 1, '&')).status().message(),
            "the query is 8193 bytes long, over the limit of 8192");
}

TEST(UrlBounds, ParseCountAndParseRangeNeverWrap) {
  EXPECT_EQ(ParseCount("999999999999"), 999999999999);
  for (const char* bad : {"4294967296000", "99999999999999999999", "18446744073709551616"}) {
    EXPECT_FALSE(ParseCount(bad)) << bad;
  }
  EXPECT_FALSE(ParseRange("0:99999999999999999999", ':'));
  EXPECT_FALSE(ParseRange("99999999999999999999", ':'));
}


}  // namespace
}  // namespace tessera::gateway
