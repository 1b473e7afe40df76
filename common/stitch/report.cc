#include "common/stitch/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

namespace tessera::stitch {

std::vector<TilePair> OverlappingPairs(const std::vector<std::array<double, 2>>& stage, int64_t width, int64_t height,
                                       double min_fraction) {
  // Tiles by the cell of a grid of tile-sized cells their corner falls in: overlapping
  // tiles are in the same or a neighbouring cell.
  const auto w = static_cast<double>(width), h = static_cast<double>(height);
  std::map<std::pair<int64_t, int64_t>, std::vector<uint32_t>> cells;
  auto cell = [&](uint32_t i) {
    return std::pair{static_cast<int64_t>(std::floor(stage[i][0] / w)), static_cast<int64_t>(std::floor(stage[i][1] / h))};
  };
  for (uint32_t i = 0; i < stage.size(); ++i) cells[cell(i)].push_back(i);
  std::vector<TilePair> pairs;
  for (uint32_t a = 0; a < stage.size(); ++a) {
    const auto [cx, cy] = cell(a);
    for (int64_t y = cy - 1; y <= cy + 1; ++y) {
      for (int64_t x = cx - 1; x <= cx + 1; ++x) {
        auto it = cells.find({x, y});
        if (it == cells.end()) continue;
        for (uint32_t b : it->second) {
          if (b <= a) continue;
          const double dx = stage[b][0] - stage[a][0], dy = stage[b][1] - stage[a][1];
          const double ox = w - std::abs(dx), oy = h - std::abs(dy);
          if (ox > 0 && oy > 0 && ox * oy >= min_fraction * w * h) pairs.push_back({a, b, dx, dy});
        }
      }
    }
  }
  std::sort(pairs.begin(), pairs.end(), [](const TilePair& p, const TilePair& q) {
    return std::pair(p.a, p.b) < std::pair(q.a, q.b);
  });
  return pairs;
}

QcReport MakeReport(const std::vector<std::string>& names, const std::vector<std::array<double, 2>>& stage,
                    const std::vector<TilePair>& pairs, const std::vector<Link>& links, const Solution& solution,
                    double max_shift, const std::vector<double>& stage_z, double max_shift_z) {
  QcReport r;
  r.volume = !solution.z.empty() && stage_z.size() == stage.size();
  r.tiles.resize(stage.size());
  for (uint32_t t = 0; t < stage.size(); ++t) {
    TileReport& tr = r.tiles[t];
    tr.tile = t;
    tr.name = t < names.size() ? names[t] : fmt::format("tile {}", t);
    tr.stage = stage[t];
    tr.solved = solution.positions[t];
    if (r.volume) {
      tr.stage_z = stage_z[t];
      tr.solved_z = solution.z[t];
    }
  }
  std::vector<std::vector<std::string>> why(stage.size());
  for (size_t i = 0; i < pairs.size() && i < links.size(); ++i) {
    LinkReport lr;
    lr.a = pairs[i].a;
    lr.b = pairs[i].b;
    lr.link = links[i];
    lr.residual = i < solution.residual.size() ? solution.residual[i] : 0;
    lr.used = i < solution.used.size() && solution.used[i];
    lr.note = !links[i].reliable ? links[i].reason : (i < solution.dropped.size() ? solution.dropped[i] : "");
    r.reliable += links[i].reliable;
    r.used += lr.used;
    for (uint32_t t : {lr.a, lr.b}) {
      r.tiles[t].links++;
      r.tiles[t].used += lr.used;
    }
    if (lr.used) r.max_residual = std::max(r.max_residual, lr.residual);
    if (lr.used && lr.residual > 1.0) {
      for (uint32_t t : {lr.a, lr.b}) why[t].push_back(fmt::format("link to {} off by {:.1f} px", lr.a + lr.b - t, lr.residual));
    }
    r.links.push_back(std::move(lr));
  }
  for (TileReport& tr : r.tiles) {
    const double moved = std::hypot(tr.solved[0] - tr.stage[0], tr.solved[1] - tr.stage[1]);
    if (tr.used == 0) {
      why[tr.tile].insert(why[tr.tile].begin(), tr.links == 0 ? "no neighbour: at its stage position"
                                                              : "no reliable link: at its stage position");
    }
    if (moved > max_shift) why[tr.tile].push_back(fmt::format("moved {:.1f} px from the stage", moved));
    if (r.volume && std::abs(tr.solved_z - tr.stage_z) > max_shift_z) {
      why[tr.tile].push_back(fmt::format("moved {:.1f} planes from the stage's z", tr.solved_z - tr.stage_z));
    }
    tr.suspicious = !why[tr.tile].empty();
    tr.why = fmt::format("{}", fmt::join(why[tr.tile], "; "));
    r.suspicious += tr.suspicious;
  }
  return r;
}

std::string ReportJson(const QcReport& r) {
  using nlohmann::json;
  json j;
  j["summary"] = {{"tiles", r.tiles.size()},  {"links", r.links.size()},      {"reliable", r.reliable},
                  {"used", r.used},           {"suspicious", r.suspicious}, {"max_residual_px", r.max_residual},
                  {"volume", r.volume}};
  auto& links = j["links"] = json::array();
  for (const auto& l : r.links) {
    links.push_back({{"a", l.a},
                     {"b", l.b},
                     {"dx", l.link.dx},
                     {"dy", l.link.dy},
                     {"shift_x", l.link.dx - l.link.nominal_dx},
                     {"shift_y", l.link.dy - l.link.nominal_dy},
                     {"ncc", l.link.ncc},
                     {"margin", l.link.margin},
                     {"texture", l.link.texture},
                     {"reliable", l.link.reliable},
                     {"used", l.used},
                     {"residual_px", l.residual},
                     {"note", l.note}});
    if (r.volume) {
      links.back()["dz"] = l.link.dz;
      links.back()["shift_z"] = l.link.dz - l.link.nominal_dz;
      links.back()["ncc_z"] = l.link.ncc_z;
    }
  }
  auto& tiles = j["tiles"] = json::array();
  for (const auto& t : r.tiles) {
    tiles.push_back({{"tile", t.tile},
                     {"name", t.name},
                     {"x", t.solved[0]},
                     {"y", t.solved[1]},
                     {"stage_x", t.stage[0]},
                     {"stage_y", t.stage[1]},
                     {"links", t.links},
                     {"links_used", t.used},
                     {"suspicious", t.suspicious},
                     {"why", t.why}});
    if (r.volume) {
      tiles.back()["z"] = t.solved_z;
      tiles.back()["stage_z"] = t.stage_z;
    }
  }
  return j.dump(2);
}

Result<QcReport> ReportFromJson(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("summary") || !j.contains("links") || !j.contains("tiles")) {
    return Error(StatusCode::kDataLoss, "not a stitch QC report (summary, links, tiles)");
  }
  try {
    QcReport r;
    const auto& s = j["summary"];
    r.reliable = s.at("reliable").get<int>();
    r.used = s.at("used").get<int>();
    r.suspicious = s.at("suspicious").get<int>();
    r.max_residual = s.at("max_residual_px").get<double>();
    r.volume = s.value("volume", false);
    for (const auto& l : j["links"]) {
      LinkReport lr;
      lr.a = l.at("a").get<uint32_t>();
      lr.b = l.at("b").get<uint32_t>();
      lr.link.dx = l.at("dx").get<double>();
      lr.link.dy = l.at("dy").get<double>();
      lr.link.nominal_dx = lr.link.dx - l.at("shift_x").get<double>();
      lr.link.nominal_dy = lr.link.dy - l.at("shift_y").get<double>();
      lr.link.ncc = l.at("ncc").get<double>();
      lr.link.margin = l.at("margin").get<double>();
      lr.link.texture = l.at("texture").get<double>();
      lr.link.reliable = l.at("reliable").get<bool>();
      lr.used = l.at("used").get<bool>();
      lr.residual = l.at("residual_px").get<double>();
      lr.note = l.at("note").get<std::string>();
      if (r.volume) {
        lr.link.dz = l.at("dz").get<double>();
        lr.link.nominal_dz = lr.link.dz - l.at("shift_z").get<double>();
        lr.link.ncc_z = l.at("ncc_z").get<double>();
      }
      r.links.push_back(std::move(lr));
    }
    for (const auto& t : j["tiles"]) {
      TileReport tr;
      tr.tile = t.at("tile").get<uint32_t>();
      tr.name = t.at("name").get<std::string>();
      tr.solved = {t.at("x").get<double>(), t.at("y").get<double>()};
      tr.stage = {t.at("stage_x").get<double>(), t.at("stage_y").get<double>()};
      tr.links = t.at("links").get<int>();
      tr.used = t.at("links_used").get<int>();
      tr.suspicious = t.at("suspicious").get<bool>();
      tr.why = t.at("why").get<std::string>();
      if (r.volume) {
        tr.solved_z = t.at("z").get<double>();
        tr.stage_z = t.at("stage_z").get<double>();
      }
      r.tiles.push_back(std::move(tr));
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    return Error(StatusCode::kDataLoss, "stitch QC report: {}", e.what());
  }
}

std::string ReportTable(const QcReport& r) {
  std::string out = fmt::format("{:>5} {:>5} {:>8} {:>8} {}{:>6} {:>6} {:>9} {:>5}  {}\n", "a", "b", "shift_x", "shift_y",
                                r.volume ? fmt::format("{:>8} ", "shift_z") : "", "ncc", "margin", "resid_px", "used",
                                "note");
  for (const auto& l : r.links) {
    out += fmt::format("{:>5} {:>5} {:>8.2f} {:>8.2f} {}{:>6.3f} {:>6.3f} {:>9.2f} {:>5}  {}\n", l.a, l.b,
                       l.link.dx - l.link.nominal_dx, l.link.dy - l.link.nominal_dy,
                       r.volume ? fmt::format("{:>8.2f} ", l.link.dz - l.link.nominal_dz) : "", l.link.ncc,
                       l.link.margin, l.residual, l.used ? "yes" : "no", l.note);
  }
  out += fmt::format("\n{} tiles, {} links: {} reliable, {} used, largest residual {:.2f} px\n", r.tiles.size(),
                     r.links.size(), r.reliable, r.used, r.max_residual);
  if (r.suspicious == 0) {
    out += "no suspicious tile\n";
  } else {
    out += fmt::format("{} suspicious tile(s):\n", r.suspicious);
    for (const auto& t : r.tiles) {
      if (t.suspicious) out += fmt::format("  tile {} ({}): {}\n", t.tile, t.name, t.why);
    }
  }
  return out;
}

}  // namespace tessera::stitch
