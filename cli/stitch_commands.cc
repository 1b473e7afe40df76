// `tessera stitch ID` and `tessera ps`.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <thread>

#include "cli/commands.h"
#include "cli/progress.h"
#include "client/client.h"
#include "server/stitcher/stitcher.h"

namespace tessera::cli {

namespace {

// The stitch's progress until it ends: a bar per stage on a terminal.
Result<StitchState> Follow(Client& client, const std::string& slide) {
  std::optional<ProgressBar> bar;
  std::string stage;
  while (true) {
    TESSERA_ASSIGN_OR_RETURN(StitchState s, client.GetStitch(slide));
    if (!s.stage.empty() && s.stage != stage) {
      if (bar) bar->Finish();
      stage = s.stage;
      bar.emplace(s.stage, std::max<uint64_t>(1, s.total));
    }
    if (bar) bar->Update(s.done);
    if (s.state != "running") {
      if (bar) bar->Finish();
      return s;
    }
    if (StopFlag()) {
      return Error(StatusCode::kUnavailable, "stopped watching; the stitch of {} goes on (tessera stitch {} --wait "
                   "follows it again)", slide, slide);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // progress polling
  }
}

// The host part of a tcp:// or http:// endpoint; "(local)" for ipc:// and inproc://.
std::string HostOf(const std::string& endpoint) {
  const auto scheme = endpoint.find("://");
  if (scheme == std::string::npos || endpoint.starts_with("ipc:") || endpoint.starts_with("inproc:")) return "(local)";
  const std::string rest = endpoint.substr(scheme + 3);
  return rest.substr(0, rest.rfind(':'));
}

// `tessera ps`, first part: every role the manager names, where it runs, and whether it answers
// (the dealers with their caches; the broker as `broker_up` says; the slides' proxies and writers
// while they acquire).
void PrintRoles(const std::string& server, bool broker_up) {
  Client client(server);
  auto endpoints = client.Endpoints();
  fmt::print("{:<16} {:<32} {:<16} {}\n", "ROLE", "ENDPOINT", "HOST", "STATE");
  if (!endpoints.ok()) {
    fmt::print("{:<16} {:<32} {:<16} {}\n", "manager", server, HostOf(server), endpoints.status().ToString());
    return;
  }
  fmt::print("{:<16} {:<32} {:<16} {}\n", "manager", server, HostOf(server), "up");
  if (auto dealers = client.DealersStats(); dealers.ok()) {
    for (const auto& d : *dealers) {
      const uint64_t looked = d.cache_hits + d.cache_misses;
      fmt::print("{:<16} {:<32} {:<16} {}\n", "dealer", d.endpoint, HostOf(d.endpoint),
                 d.answered ? fmt::format("up, cache {} MB, {:.0f} % hits", d.cache_bytes >> 20,
                                          looked ? 100.0 * static_cast<double>(d.cache_hits) / static_cast<double>(looked) : 0.0)
                            : std::string("NOT ANSWERING"));
    }
  }
  for (const auto& [name, ep] : *endpoints) {
    if (name.starts_with("dealer") || name == "broker_local" || name == "manager") continue;
    std::string state = "named by the manager";
    if (name == "broker") state = broker_up ? "up" : "NOT ANSWERING";
    fmt::print("{:<16} {:<32} {:<16} {}\n", name == "http" ? "gateway" : name, ep, HostOf(ep), state);
  }
  if (auto slides = client.List(); slides.ok()) {
    for (const auto& sl : *slides) {
      if (sl.state != "acquiring") continue;
      fmt::print("{:<16} {:<32} {:<16} {}\n", "proxy " + sl.id, sl.proxy_endpoint, HostOf(sl.proxy_endpoint),
                 sl.proxy_pid > 0 ? fmt::format("pid {}, FIFO {} of {} MB", sl.proxy_pid, sl.fifo_held_bytes >> 20,
                                                sl.fifo_window_bytes >> 20)
                                  : std::string("starting"));
      fmt::print("{:<16} {:<32} {:<16} {}\n", "writer " + sl.id, "(the proxy's)", HostOf(sl.proxy_endpoint),
                 sl.writer_pid > 0 ? fmt::format("pid {}, {} of {} frames", sl.writer_pid, sl.frames_written,
                                                 sl.frames_total)
                                   : std::string("starting"));
    }
  }
}

}  // namespace

void AddDestripeOptions(CLI::App* cmd, DestripeArgs& a) {
  correct::DestripeOptions& o = a.options;
  cmd->add_option("--destripe", a.method,
                  "Destripe every plane first, by pystripe's method (wavelet or lightsheet), into the view ID:destriped "
                  "that is then registered and fused (the raw planes stay as they are)");
  cmd->add_option("--sigma1", o.sigma_foreground, "Destripe, wavelet: the notch's width for pixels above the threshold, px "
                  "(pystripe's -s1)")->capture_default_str();
  cmd->add_option("--sigma2", o.sigma_background, "Destripe, wavelet: the same for pixels below it (-s2; equal sigmas: one band)")
      ->capture_default_str();
  cmd->add_option("--wavelet", o.wavelet, "Destripe, wavelet: haar, db1-db10, sym2-sym10, coif1-coif5 (-w)")->capture_default_str();
  cmd->add_option("--wavelet-level", o.level, "Destripe, wavelet: decomposition levels, 0 as many as the plane allows (-l)")
      ->capture_default_str();
  cmd->add_option("--threshold", o.threshold, "Destripe, wavelet: grey level between background and foreground, -1 Otsu's (-t)")
      ->capture_default_str();
  cmd->add_option("--crossover", o.crossover, "Destripe, wavelet: grey levels over which the bands blend (-x)")->capture_default_str();
  cmd->add_option("--artifact-length", o.artifact_length, "Destripe, lightsheet: px along the stripes")->capture_default_str();
  cmd->add_option("--background-window", o.background_window, "Destripe, lightsheet: px, the background's square")
      ->capture_default_str();
  cmd->add_option("--percentile", o.percentile, "Destripe, lightsheet: the percentile, 0 to 1")->capture_default_str();
  cmd->add_option("--lightsheet-vs-background", o.lightsheet_vs_background,
                  "Destripe, lightsheet: the background's weight against the stripes")->capture_default_str();
  cmd->add_flag("--stripes-along-y", o.along_y, "Destripe: the stripes run down the columns (pystripe's --rotate)");
}

Result<std::optional<correct::DestripeOptions>> DestripeOf(const DestripeArgs& a) {
  if (a.method.empty()) return std::optional<correct::DestripeOptions>();
  correct::DestripeOptions o = a.options;
  TESSERA_ASSIGN_OR_RETURN(o.method, correct::DestripeMethodNamed(a.method));
  if (o.method == correct::DestripeMethod::kWavelet && o.sigma_foreground == 0 && o.sigma_background == 0) {
    return Error(StatusCode::kInvalidArgument, "--destripe wavelet: give --sigma1 and/or --sigma2 (px; pystripe suggests 100 to 256)");
  }
  TESSERA_RETURN_IF_ERROR(correct::CheckDestripeOptions(o));
  return std::optional(o);
}

void AddStitchCommands(CLI::App& app, int& exit_code) {
  static StitchRequest req;
  static std::string server;
  static bool json = false, wait_only = false;
  auto* st = app.add_subcommand(
      "stitch", "Stitch a slide on the stack's workers: register every overlapping pair, solve the positions, "
                "store them with the slide, and print the QC report (shifts, reliability, residuals, suspicious "
                "tiles); returns when done");
  st->add_option("ID", req.slide, "Slide id (see `tessera ls`)")->required();
  AddServerOption(st, server);
  st->add_option("--channel", req.channel, "Channel to register on")->capture_default_str();
  st->add_option("--z", req.z, "Plane to register on (-1: a z-stack's maximum projection over its planes)")->capture_default_str();
  st->add_option("--max-shift", req.max_shift, "Pixels: the stage's error; no link moves a tile further (0: 20)")
      ->capture_default_str();
  st->add_flag("!--no-store", req.store,
               "Only print the report: keep the slide's positions as they are (by default the solved positions "
               "are stored with the slide and the mosaic is served at them)");
  st->add_flag("--flat-field", req.flat_field,
               "Estimate each channel's flat field and dark level from its fields of view, store them with the "
               "slide and fuse with them (the raw fields stay as the camera gave them; `tessera info --json` "
               "lists the corrections)");
  st->add_flag("--normalize", req.normalize,
               "Solve a brightness gain per tile from the overlaps (after the flat field, if asked), store them and "
               "fuse with them");
  st->add_option("--dark", req.dark,
                 "With --flat-field or --normalize: the camera's dark level (its offset, from its data sheet) if "
                 "known; -1: estimated from the fields (0 where they cannot tell it, as BaSiC assumes)")
      ->check(CLI::Range(-1.0, 65535.0))->capture_default_str();
  static DestripeArgs destripe;
  AddDestripeOptions(st, destripe);
  st->add_flag("--wait", wait_only, "Start nothing: follow the stitch under way (or show the last one)");
  st->add_flag("--json", json, "The QC report as JSON: summary, links[], tiles[] (x, y solved, sub-pixel)");
  st->callback([&] {
    Client client(server);
    auto stripes = DestripeOf(destripe);
    if (!stripes.ok()) {
      exit_code = Fail(stripes.status().ToString());
      return;
    }
    req.destripe = *stripes;
    if (!wait_only) {
      auto started = client.StartStitch(req);
      if (!started.ok()) {
        exit_code = Fail(started.status().ToString());
        return;
      }
    }
    auto s = Follow(client, req.slide);
    if (!s.ok()) {
      exit_code = Fail(s.status().ToString());
      return;
    }
    if (s->state == "failed") {
      exit_code = Fail(fmt::format("the stitch of {} failed: {}", req.slide, s->error));
      return;
    }
    if (s->state != "done") {
      exit_code = Fail(fmt::format("slide {} has not been stitched", req.slide));
      return;
    }
    auto report = stitch::ReportFromJson(s->report_json);
    if (!report.ok()) {
      exit_code = Fail(report.status().ToString());
      return;
    }
    const double fused_mb = static_cast<double>(s->fused_bytes) / 1e6;
    if (json) {  // the report, and how the run went when this command saw it end
      auto j = nlohmann::json::parse(s->report_json);
      if (s->register_s > 0) {
        j["run"] = {{"register_s", s->register_s},
                    {"solve_s", s->solve_s},
                    {"fuse_s", s->fuse_s},
                    {"fused_mb", fused_mb},
                    {"stitcher_peak_rss_mb", static_cast<double>(s->peak_rss_bytes) / 1e6},
                    {"registered_while_acquiring", s->registered_while_acquiring},
                    {"deskew_s", s->deskew_s},
                    {"deskewed_while_acquiring", s->deskewed_while_acquiring}};
      }
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print("{}", stitch::ReportTable(*report));
    if (s->register_s > 0) {
      fmt::print("registered {} pairs in {:.2f} s, solved in {:.3f} s", report->links.size(), s->register_s, s->solve_s);
      if (s->fuse_s > 0) {
        fmt::print(", fused {:.0f} MB in {:.2f} s ({:.0f} MB/s)", fused_mb, s->fuse_s, fused_mb / s->fuse_s);
      }
      fmt::print("\n");
    }
  });

  static std::string ps_server;
  auto* ps = app.add_subcommand(
      "ps", "Show the stack's roles on every host (whether each answers), its workers and the task queues");
  AddServerOption(ps, ps_server);
  ps->callback([&] {
    auto m = stitcher::QueryBroker(ps_server);  // asked once: a broker gone costs one timeout
    PrintRoles(ps_server, m.ok());
    if (!m.ok()) {
      exit_code = Fail(m.status().ToString());
      return;
    }
    fmt::print("\nbroker {}\n\n{:<28} {:<24} {:<10} {:>8} {:>10}\n", m->broker, "WORKER", "SERVICES", "TASK", "DONE",
               "BUSY_MS");
    for (const auto& w : m->workers) {
      fmt::print("{:<28} {:<24} {:<10} {:>8} {:>10}\n", w.name, w.services, w.task.empty() ? "-" : w.task, w.done,
                 w.busy_ms);
    }
    fmt::print("\n{:<10} {:>8} {:>7} {:>8} {:>8} {:>7} {:>8} {:>12}\n", "SERVICE", "WORKERS", "QUEUED", "RUNNING",
               "DONE", "FAILED", "RETRIED", "QUEUED_BYTES");
    for (const auto& q : m->queues) {
      fmt::print("{:<10} {:>8} {:>7} {:>8} {:>8} {:>7} {:>8} {:>12}\n", q.service, q.workers, q.queued, q.running,
                 q.done, q.failed, q.retried, q.queued_bytes);
    }
  });
}

}  // namespace tessera::cli
