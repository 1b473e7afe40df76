// Metrics: latency histograms the roles keep, and the Prometheus text exposition format
// (version 0.0.4) the gateway's /metrics answers with for the whole stack.
//
//   LatencyHistogram acks;                 // in a role: lock-free, fixed buckets
//   acks.Observe(12.5);                    // milliseconds
//   Exposition e;                          // in the gateway
//   e.Gauge("tessera_fifo_held_bytes", "Bytes a slide's proxy holds", {{"slide", id}}, held);
//   e.Histogram("tessera_ack_latency_seconds", "...", {{"slide", id}}, acks.Read());
//   std::string body = e.Text();
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace tessera::metrics {

/// Upper bounds of the latency buckets, in milliseconds (the last bucket is +Inf).
inline constexpr std::array<double, 13> kLatencyBoundsMs = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};

/// What a histogram holds: a count per bucket (not cumulative; one more than the bounds: the
/// last is past every bound), and the sum of what was observed, in milliseconds.
struct HistogramData {
  std::vector<uint64_t> counts;
  double sum_ms = 0;
};

/// A histogram of latencies, safe to observe from any thread.
class LatencyHistogram {
 public:
  void Observe(double ms);
  HistogramData Read() const;

 private:
  std::array<std::atomic<uint64_t>, kLatencyBoundsMs.size() + 1> counts_{};
  std::atomic<uint64_t> sum_us_{0};
};

using Labels = std::vector<std::pair<std::string, std::string>>;

/// Builds a Prometheus text exposition: each family's HELP and TYPE once, then its samples.
/// Names must match [a-zA-Z_:][a-zA-Z0-9_:]* (checked: a bad name is dropped, never emitted);
/// label values are escaped.
class Exposition {
 public:
  void Gauge(const std::string& name, const std::string& help, const Labels& labels, double value);
  void Counter(const std::string& name, const std::string& help, const Labels& labels, double value);
  /// A latency histogram in seconds (Prometheus's base unit): `name`_bucket{le=...}, _sum, _count.
  void Histogram(const std::string& name, const std::string& help, const Labels& labels, const HistogramData& data);
  std::string Text() const;

 private:
  struct Family {
    std::string type, help;
    std::vector<std::string> samples;
  };
  bool Declare(const std::string& name, const std::string& type, const std::string& help);
  std::vector<std::string> order_;
  std::map<std::string, Family> families_;
};

/// "{a=\"x\",b=\"y\"}" (empty for no labels), values escaped as the format asks.
std::string FormatLabels(const Labels& labels);

}  // namespace tessera::metrics
