// `tessera stitch ID` and `tessera ps`.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <optional>

#include "client/cli/commands.h"
#include "client/cli/progress.h"
#include "client/client.h"
#include "server/stitcher/stitcher.h"

namespace tessera::cli {

void AddStitchCommands(CLI::App& app, int& exit_code) {
  static stitcher::StitchOptions opts;
  static bool json = false;
  opts.manager = DefaultServer();
  auto* st = app.add_subcommand(
      "stitch", "Register every overlapping pair of a slide's fields of view on the stack's workers, solve their "
                "positions and print the QC report (shifts, reliability, residuals, suspicious tiles)");
  st->add_option("ID", opts.slide, "Slide id (see `tessera ls`)")->required();
  st->add_option("--server", opts.manager, "The manager's endpoint (env TESSERA_SERVER)")->capture_default_str();
  st->add_option("--channel", opts.channel, "Channel to register on")->capture_default_str();
  st->add_option("--z", opts.z, "Plane to register on (-1: the middle one)")->capture_default_str();
  st->add_option("--max-shift", opts.max_shift, "Pixels: the stage's error; no link moves a tile further")
      ->capture_default_str();
  st->add_flag("!--no-store", opts.store,
               "Only print the report: keep the slide's positions as they are (by default the solved positions "
               "are stored with the slide and the mosaic is served at them)");
  st->add_flag("--json", json, "The QC report as JSON: summary, links[], tiles[] (x, y solved, sub-pixel)");
  st->callback([&] {
    std::optional<ProgressBar> bar;
    std::string stage;
    auto r = stitcher::Stitch(
        opts,
        [&](const stitcher::StitchProgress& p) {
          if (p.stage != stage) {
            if (bar) bar->Finish();
            stage = p.stage;
            bar.emplace(p.stage, p.total);
          }
          bar->Update(p.done);
        },
        StopFlag());
    if (bar) bar->Finish();
    if (!r.ok()) {
      exit_code = Fail(r.status().ToString());
      return;
    }
    if (json) {
      fmt::print("{}\n", stitch::ReportJson(r->report));
    } else {
      fmt::print("{}", stitch::ReportTable(r->report));
      fmt::print("registered {} pairs in {:.2f} s ({:.0f} pairs/s), solved in {:.3f} s\n", r->pairs.size(),
                 r->register_s, static_cast<double>(r->pairs.size()) / std::max(1e-9, r->register_s), r->solve_s);
    }
  });

  static std::string ps_server = DefaultServer();
  auto* ps = app.add_subcommand("ps", "Show the stack's workers (their services and tasks) and the task queues");
  ps->add_option("--server", ps_server, "The manager's endpoint (env TESSERA_SERVER)")->capture_default_str();
  ps->callback([&] {
    auto m = stitcher::QueryBroker(ps_server);
    if (!m.ok()) {
      exit_code = Fail(m.status().ToString());
      return;
    }
    fmt::print("broker {}\n\n{:<28} {:<24} {:<10} {:>8} {:>10}\n", m->broker, "WORKER", "SERVICES", "TASK", "DONE",
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
