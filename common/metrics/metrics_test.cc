#include "common/metrics/metrics.h"

#include <gtest/gtest.h>

namespace tessera::metrics {
namespace {

TEST(MetricsTest, HistogramsCountEachObservationInItsBucketAndSumIt) {
  LatencyHistogram h;
  for (double ms : {0.5, 1.0, 3.0, 7000.0, 20000.0, -1.0}) h.Observe(ms);
  const HistogramData d = h.Read();
  ASSERT_EQ(d.counts.size(), kLatencyBoundsMs.size() + 1);
  EXPECT_EQ(d.counts[0], 3u);   // <= 1 ms: 0.5, 1.0 and the negative one
  EXPECT_EQ(d.counts[2], 1u);   // <= 5 ms
  EXPECT_EQ(d.counts[12], 1u);  // <= 10 s
  EXPECT_EQ(d.counts[13], 1u);  // past every bound
  EXPECT_DOUBLE_EQ(d.sum_ms, 0.5 + 1.0 + 3.0 + 7000.0 + 20000.0);
}

TEST(MetricsTest, TheExpositionIsPrometheusText) {
  Exposition e;
  e.Gauge("tessera_slides", "Slides by state", {{"state", "acquiring"}}, 2);
  e.Gauge("tessera_slides", "Slides by state", {{"state", "ac\"q\\ui\nred"}}, 3);
  e.Counter("tessera_frames_written_total", "Frames", {}, 25);
  e.Gauge("bad name", "dropped", {}, 1);
  e.Counter("tessera_slides", "a gauge already: dropped", {}, 1);
  LatencyHistogram h;
  h.Observe(3);
  h.Observe(300);
  e.Histogram("tessera_ack_latency_seconds", "Ack", {{"slide", "s1"}}, h.Read());
  const std::string text = e.Text();
  EXPECT_EQ(text.find("# HELP tessera_slides Slides by state\n# TYPE tessera_slides gauge\n"
                      "tessera_slides{state=\"acquiring\"} 2\n"
                      "tessera_slides{state=\"ac\\\"q\\\\ui\\nred\"} 3\n"),
            0u)
      << text;
  EXPECT_NE(text.find("tessera_frames_written_total 25\n"), std::string::npos);
  EXPECT_EQ(text.find("bad name"), std::string::npos);
  EXPECT_EQ(text.find("tessera_slides 1"), std::string::npos);
  EXPECT_NE(text.find("tessera_ack_latency_seconds_bucket{slide=\"s1\",le=\"0.001\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("tessera_ack_latency_seconds_bucket{slide=\"s1\",le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("tessera_ack_latency_seconds_bucket{slide=\"s1\",le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("tessera_ack_latency_seconds_sum{slide=\"s1\"} 0.303\n"), std::string::npos);
  EXPECT_NE(text.find("tessera_ack_latency_seconds_count{slide=\"s1\"} 2\n"), std::string::npos);
}

}  // namespace
}  // namespace tessera::metrics
