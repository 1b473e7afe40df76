#include "common/metrics/metrics.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <fmt/format.h>

namespace tessera::metrics {
namespace {

bool ValidName(const std::string& n) {
  if (n.empty() || !(std::isalpha(static_cast<unsigned char>(n[0])) || n[0] == '_' || n[0] == ':')) return false;
  return std::all_of(n.begin(), n.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':'; });
}

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

}  // namespace

void LatencyHistogram::Observe(double ms) {
  if (!(ms >= 0)) ms = 0;  // NaN or negative (a clock step): the first bucket
  const auto at = std::lower_bound(kLatencyBoundsMs.begin(), kLatencyBoundsMs.end(), ms) - kLatencyBoundsMs.begin();
  counts_[static_cast<size_t>(at)].fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(std::min(ms, 1e12) * 1000), std::memory_order_relaxed);
}

HistogramData LatencyHistogram::Read() const {
  HistogramData d;
  for (const auto& c : counts_) d.counts.push_back(c.load(std::memory_order_relaxed));
  d.sum_ms = static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1000;
  return d;
}

std::string FormatLabels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    out += labels[i].first + "=\"";
    for (char c : labels[i].second) {
      if (c == '\\') {
        out += "\\\\";
      } else if (c == '"') {
        out += "\\\"";
      } else if (c == '\n') {
        out += "\\n";
      } else {
        out += c;
      }
    }
    out += '"';
  }
  return out + "}";
}

bool Exposition::Declare(const std::string& name, const std::string& type, const std::string& help) {
  if (!ValidName(name)) return false;
  auto [it, fresh] = families_.try_emplace(name);
  if (fresh) {
    it->second.type = type;
    it->second.help = help;
    order_.push_back(name);
  }
  return it->second.type == type;
}

void Exposition::Gauge(const std::string& name, const std::string& help, const Labels& labels, double value) {
  if (Declare(name, "gauge", help)) families_[name].samples.push_back(name + FormatLabels(labels) + " " + Number(value));
}

void Exposition::Counter(const std::string& name, const std::string& help, const Labels& labels, double value) {
  if (Declare(name, "counter", help)) families_[name].samples.push_back(name + FormatLabels(labels) + " " + Number(value));
}

void Exposition::Histogram(const std::string& name, const std::string& help, const Labels& labels,
                           const HistogramData& data) {
  if (!Declare(name, "histogram", help)) return;
  auto& samples = families_[name].samples;
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kLatencyBoundsMs.size(); ++i) {
    cumulative += i < data.counts.size() ? data.counts[i] : 0;
    Labels with = labels;
    with.emplace_back("le", i < kLatencyBoundsMs.size() ? Number(kLatencyBoundsMs[i] / 1000) : "+Inf");
    samples.push_back(name + "_bucket" + FormatLabels(with) + " " + std::to_string(cumulative));
  }
  samples.push_back(name + "_sum" + FormatLabels(labels) + " " + Number(data.sum_ms / 1000));
  samples.push_back(name + "_count" + FormatLabels(labels) + " " + std::to_string(cumulative));
}

std::string Exposition::Text() const {
  std::string out;
  for (const auto& name : order_) {
    const Family& f = families_.at(name);
    std::string help;
    for (char c : f.help) help += c == '\n' ? std::string("\\n") : c == '\\' ? std::string("\\\\") : std::string(1, c);
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + f.type + "\n";
    for (const auto& s : f.samples) out += s + "\n";
  }
  return out;
}

}  // namespace tessera::metrics
