#include "common/correct/corrections.h"

#include <gtest/gtest.h>

#include <vector>

#include "common/correct/corrections_proto.h"

namespace tessera::correct {
namespace {

FlatField Flat(uint32_t w, uint32_t h) {
  return {.width = w, .height = h, .grid_x = 2, .grid_y = 2, .gain = {0.8f, 1.2f, 1.0f, 1.0f}, .dark = 100};
}

TEST(CorrectionsTest, CorrectionsThatDoNotFitTheSlideAreRefused) {
  auto check = [](SlideCorrections c) { return CheckCorrections(c, 3, 2, 64, 48).code(); };
  EXPECT_EQ(check({{{.channel = 0, .flat = Flat(64, 48), .dark = 100, .gains = {1, 1.1, 0.9}}}}), StatusCode::kOk);
  EXPECT_EQ(check({{{.channel = 2}}}), StatusCode::kInvalidArgument);                        // no such channel
  EXPECT_EQ(check({{{.channel = 0}, {.channel = 0}}}), StatusCode::kInvalidArgument);        // twice
  EXPECT_EQ(check({{{.channel = 0, .flat = Flat(32, 48)}}}), StatusCode::kInvalidArgument);  // another size
  EXPECT_EQ(check({{{.channel = 0, .gains = {1, 1}}}}), StatusCode::kInvalidArgument);       // not one per tile
  EXPECT_EQ(check({{{.channel = 0, .gains = {1, 0, 1}}}}), StatusCode::kInvalidArgument);    // a zero gain
  EXPECT_EQ(check({{{.channel = 0, .dark = -4}}}), StatusCode::kInvalidArgument);
}

TEST(CorrectionsTest, AWindowIsCorrectedAsTheFieldItIsPartOf) {
  ChannelCorrections c{.channel = 0, .flat = Flat(4, 4), .dark = 100, .gains = {1.0, 2.0}};
  std::vector<uint16_t> field(16, 500), whole(16), part(4);
  CorrectWindow(c, 1, {field.data(), 4, 4, 0}, 0, 0, 1, whole, 65535);
  // The window at (2, 2) of the field: the same pixels as the whole field's there.
  CorrectWindow(c, 1, {field.data(), 2, 2, 0}, 2, 2, 1, part, 65535);
  EXPECT_EQ(part[0], whole[10]);
  EXPECT_EQ(part[3], whole[15]);
  // Tile 1's gain 2 and F at the top-left pixel's centre: (500 - 100) / (F * 2) + 100.
  EXPECT_NEAR(whole[0], 400 / (c.flat->At(0.5, 0.5) * 2) + 100, 0.5);
  EXPECT_LT(c.flat->At(0.5, 0.5), c.flat->At(3.5, 0.5));
  // No corrections for a channel means none: the round trip through the protocol keeps that.
  SlideCorrections s{{c}};
  google::protobuf::RepeatedPtrField<proto::ChannelCorrections> p;
  ToProto(s, &p);
  const SlideCorrections back = FromProto(p);
  ASSERT_EQ(back.channels.size(), 1u);
  EXPECT_EQ(back.Of(1), nullptr);
  EXPECT_EQ(back.Of(0)->flat->gain, c.flat->gain);
  EXPECT_EQ(back.Of(0)->gains, c.gains);
}

}  // namespace
}  // namespace tessera::correct
