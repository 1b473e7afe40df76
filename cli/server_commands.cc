// `tessera up` (the whole stack in one process tree) and `tessera serve ROLE`.
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "client/client.h"
#include "common/security/security.h"
#include "common/wire/listener.h"
#include "common/wire/wire.h"
#include "server/broker/broker.h"
#include "server/dealer/tile_dealer.h"
#include "server/gateway/gateway.h"
#include "server/manager/slide_manager.h"
#include "server/proxy/slide_proxy.h"
#include "server/scaler/scaler.h"
#include "server/stitcher/stitcher.h"
#include "server/supervisor/child_process.h"
#include "server/supervisor/supervisor.h"
#include "server/worker/worker.h"
#include "server/writer/slide_writer.h"

namespace tessera::cli {
namespace {

// Children of the manager end with it, even when it is killed.
void DieWithParent(bool enabled) {
  if (enabled) ::prctl(PR_SET_PDEATHSIG, SIGTERM);
}

// What every `serve ROLE` but the manager takes: --die-with-parent (the roles a parent
// starts), and --security (env TESSERA_SECURITY, which the manager and `tessera up` set for
// the roles they start).
struct RoleStart {
  bool die_with_parent = false;
  std::string security;  ///< the stack's security folder; empty: unauthenticated, loopback only
};

void AddRoleStartOptions(CLI::App* cmd, RoleStart& start) {
  cmd->add_flag("--die-with-parent", start.die_with_parent, "Exit when the parent process ends");
  cmd->add_option("--security", start.security,
                  "The stack's security folder (DATA/security of its manager: server.key, clients.json, "
                  "stack.credential); without it the role listens on loopback only, unauthenticated")
      ->envname("TESSERA_SECURITY");
}

// Ends with the parent if asked, and joins a secured stack: its keys, and a ZAP handler for
// the life of the process.
Status StartRole(const RoleStart& start) {
  DieWithParent(start.die_with_parent);
  if (start.security.empty()) return OkStatus();
  static std::unique_ptr<security::ZapHandler> zap;
  TESSERA_ASSIGN_OR_RETURN(zap, security::JoinStack(start.security));
  return OkStatus();
}

void Ready(const std::string& line) {
  fmt::print("ready {}\n", line);
  std::fflush(stdout);
}

void AddManagerOptions(CLI::App* cmd, manager::ManagerOptions& o) {
  cmd->add_option("--data", o.data_dir, "Data folder: catalog.sqlite and slides/*.h5")
      ->capture_default_str();
  cmd->add_option("--host", o.child_host,
                  "IPv4 address the slide proxies and writers listen on (the manager's host as seen "
                  "by scanners; 0.0.0.0 for every interface)")
      ->capture_default_str();
  cmd->add_option("--fifo-bytes", o.fifo_bytes,
                  "Each slide proxy's FIFO bound in bytes of compressed frames (scanner credit)")
      ->capture_default_str();
  cmd->add_option("--sync-interval-ms", o.sync_interval_ms,
                  "Longest time a frame waits before the writer fsyncs it")
      ->capture_default_str();
  cmd->add_flag("!--no-fsync", o.fsync,
                "Acknowledge after an HDF5 flush without fsync: survives a killed process, "
                "not a power cut");
  cmd->add_option("--auto-stitch", o.auto_stitch,
                  "Stitch each slide on the workers when its scan closes (unless scanned with --no-stitch)")
      ->capture_default_str();
}

// The viewer page's folder: web/ beside the source tree this binary was built from, found
// by walking up from the executable (build/cli/tessera -> web/index.html).
std::string DefaultWebRoot() {
  std::error_code ec;
  auto dir = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
  // Installed (cmake --install, the Debian package): PREFIX/bin/tessera and PREFIX/share/tessera/web.
  if (const auto installed = dir.parent_path() / "share" / "tessera" / "web";
      !ec && std::filesystem::exists(installed / "index.html", ec)) {
    return installed.string();
  }
  // In a build tree: the source tree's web/ above it.
  for (; !ec && !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
    if (std::filesystem::exists(dir / "web" / "index.html", ec)) return (dir / "web").string();
  }
  return "";
}

}  // namespace

void AddServerCommands(CLI::App& app, int& exit_code) {
  // ---- up
  auto* up = app.add_subcommand(
      "up", "Run the whole stack on this machine in the foreground (Ctrl-C stops it)");
  static manager::ManagerOptions up_opts;
  static int port = 7400;
  AddManagerOptions(up, up_opts);
  up->add_option("--port", port, "Manager port (0: any free port)")->capture_default_str();
  static uint64_t up_cache_bytes = dealer::DealerOptions{}.cache_bytes;
  up->add_option("--cache-bytes", up_cache_bytes, "The tile dealer's chunk cache, in bytes")
      ->capture_default_str();
  static std::vector<std::string> up_cors;
  up->add_option("--cors-origin", up_cors,
                 "A web origin whose pages may read the gateway's answers (repeatable; \"*\" for any; default: none)");
  static int http_port = 8080;
  auto* http_opt = up->add_option("--http-port", http_port,
                                  "The HTTP gateway's port: the viewer page, IIIF, REST (0: any free port; "
                                  "the default becomes 0 when --port is 0)")
                       ->capture_default_str();
  static std::string up_web = DefaultWebRoot();
  up->add_option("--web", up_web, "The viewer page's folder (served at /)")->capture_default_str();
  static int up_workers = 2;
  up->add_option("--workers", up_workers, "Stitching workers (register, fuse, pyramid) on this machine")
      ->capture_default_str();
  static bool insecure = false, up_http_public = false;
  static std::string up_tls_cert, up_tls_key;
  up->add_option("--tls-cert", up_tls_cert, "PEM certificate chain: the gateway serves HTTPS (with --tls-key)");
  up->add_option("--tls-key", up_tls_key, "The certificate's PEM private key");
  up->add_flag("--insecure", insecure,
               "No keys, no tokens: anyone who reaches a port may push, read and close slides (loopback only)");
  up->add_flag("--http-public", up_http_public,
               "The gateway serves reads without its token (published data; it serves nothing else)");
  up->callback([&, http_opt] {
    const std::string data = std::filesystem::absolute(up_opts.data_dir).string();
    const std::string& host = up_opts.child_host;
    if (port == 0 && http_opt->count() == 0) http_port = 0;  // a throwaway stack: nothing fixed
    // The manager's socket first: every role is told where it is, and it keeps it across
    // restarts.
    auto manager_socket = wire::Listener::Open(host, port);
    auto http_socket = wire::Listener::Open(host, http_port);
    for (const Status& s : {manager_socket.status(), http_socket.status()}) {
      if (!s.ok()) {
        exit_code = Fail(s.ToString());
        return;
      }
    }
    const std::string manager = manager_socket->endpoint();
    std::string security_dir, credential, token;
    if (insecure) {  // every role refuses to bind beyond loopback so
      fmt::print(stderr, "warning: --insecure: any process that reaches this machine's loopback may push, read "
                         "and close slides\n");
    } else {
      security_dir = data + "/security";
      credential = security_dir + "/" + security::kAdminCredentialFile;
      // The keys and the token first, for the roles started before the manager; the manager
      // writes the admin credential (for its endpoint) when it starts.
      Status s = security::KeyStore::Open(security_dir).status();
      auto t = security::ReadHttpToken(security_dir);
      if (s.ok()) s = t.status();
      if (!s.ok()) {
        exit_code = Fail(s.ToString());
        return;
      }
      token = *t;
      ::setenv("TESSERA_SECURITY", security_dir.c_str(), 1);  // every role joins the stack
    }
    const std::string at = "tcp://" + host + ":{port}";
    supervisor::SupervisorOptions so{.host = host};
    so.services.push_back(
        {"dealer",
         {"serve", "dealer", "--manager", manager, "--bind", at, "--events-bind", at, "--publish-bind", at,
          "--cache-bytes", std::to_string(up_cache_bytes), "--die-with-parent"}});
    // The workers and stitchers share the broker's host: they reach it through its Unix socket
    // in DATA/run (the service user's alone) when the path fits in one.
    const std::string run_dir = data + "/run", broker_door = wire::IpcEndpoint(run_dir + "/broker.ipc");
    const bool broker_local = !broker_door.empty();
    supervisor::Service broker{"broker", {"serve", "broker", "--bind", at, "--die-with-parent"}};
    if (broker_local) {
      std::error_code ec;
      std::filesystem::create_directories(run_dir, ec);
      std::filesystem::permissions(run_dir, std::filesystem::perms::owner_all, ec);
      broker.args.insert(broker.args.end(), {"--local", broker_door});
    }
    so.services.push_back(std::move(broker));
    for (int i = 0; i < up_workers; ++i) {
      so.services.push_back({fmt::format("worker{}", i),
                             {"serve", "worker", "--broker", broker_local ? "{broker_local}" : "{broker}", "--manager",
                              manager, "--services",
                              fmt::format("{}", fmt::join(worker::KnownServices(), ",")), "--die-with-parent"}});
    }
    supervisor::Service gateway{"gateway",
                    {"serve", "gateway", "--manager", manager, "--host", host, "--port",
                     std::to_string(http_socket->port()), "--web", up_web, "--die-with-parent"}};
    gateway.listeners.push_back(std::make_shared<const wire::Listener>(std::move(*http_socket)));
    for (const auto& origin : up_cors) gateway.args.insert(gateway.args.end(), {"--cors-origin", origin});
    if (up_http_public) gateway.args.push_back("--http-public");
    for (const auto& [flag, file] : {std::pair{"--tls-cert", &up_tls_cert}, {"--tls-key", &up_tls_key}}) {
      if (!file->empty()) gateway.args.insert(gateway.args.end(), {flag, std::filesystem::absolute(*file).string()});
    }
    so.services.push_back(std::move(gateway));
    // The slide service last: it resumes slides and stitches, which need the roles above.
    supervisor::Service slides{"manager",
                   {"serve", "manager", "--data", data, "--host", host, "--bind", manager, "--fifo-bytes",
                    std::to_string(up_opts.fifo_bytes), "--sync-interval-ms", std::to_string(up_opts.sync_interval_ms),
                    "--auto-stitch", up_opts.auto_stitch ? "true" : "false", "--events", "{dealer_events}"}};
    for (const char* name : {"dealer", "dealer_events", "dealer_publish", "broker", "http"}) {
      slides.args.insert(slides.args.end(), {"--endpoint", fmt::format("{0}={{{0}}}", name)});
    }
    if (broker_local) slides.args.insert(slides.args.end(), {"--endpoint", "broker_local={broker_local}"});
    if (!up_opts.fsync) slides.args.push_back("--no-fsync");
    slides.args.push_back("--die-with-parent");
    slides.listeners.push_back(std::make_shared<const wire::Listener>(std::move(*manager_socket)));
    so.services.push_back(std::move(slides));
    auto stack = supervisor::Supervisor::Open(so);
    if (!stack.ok()) {
      exit_code = Fail(stack.status().ToString());
      return;
    }
    const auto& endpoints = (*stack)->endpoints();
    std::string line;
    for (const auto& [name, ep] : endpoints) {
      if (name != "credential") line += name + "=" + ep + " ";
    }
    line += "data=" + data;
    std::string client_args = "--server " + manager;
    if (!token.empty()) {
      line += " credential=" + credential + " token=" + token;
      client_args = "--credential " + credential;
    }
    Ready(line);
    const auto http = endpoints.find("http");
    const std::string viewer = http == endpoints.end() ? "(no gateway)"
                               : token.empty()          ? http->second + "/"
                                                        : http->second + "/?token=" + token;
    fmt::print(stderr,
               "tessera is up: manager at {}\n  viewer:            {}\n  push a demo scan:  tessera scan --synthetic "
               "{}\n  list slides:       tessera ls {}\n",
               manager, viewer, client_args, client_args);
    if (!token.empty()) {
      fmt::print(stderr,
                 "  security:          clients need {} (admin) or one from `tessera credential new`;\n"
                 "                     HTTP needs the token (the viewer link sets it; or Authorization: Bearer)\n",
                 credential);
    }
    if (Status s = (*stack)->Run(StopFlag()); !s.ok()) exit_code = Fail(s.ToString());
  });

  // ---- serve
  auto* serve = app.add_subcommand("serve", "Run one role of the stack (for several hosts)");
  serve->require_subcommand(1);

  static manager::ManagerOptions mgr_opts;
  auto* mgr = serve->add_subcommand("manager", "The slide manager and catalog");
  AddManagerOptions(mgr, mgr_opts);
  mgr->add_option("--bind", mgr_opts.bind, "Endpoint to listen on")->capture_default_str();
  mgr->add_option("--security", mgr_opts.security_dir,
                  "The stack's security folder, created the first time (keys, issued credentials, the HTTP token); "
                  "the roles it starts join with it. Without it: loopback only, unauthenticated")
      ->envname("TESSERA_SECURITY");
  mgr->add_option("--events", mgr_opts.events,
                  "The tile dealer's events endpoint, for the slide writers (its dealer_events=)");
  static bool mgr_die = false;
  mgr->add_flag("--die-with-parent", mgr_die, "Exit when the parent process ends (its slides' roles stop with it)");
  static std::vector<std::string> mgr_endpoints;
  mgr->add_option("--endpoint", mgr_endpoints,
                  "NAME=ENDPOINT of another role, told to clients (e.g. dealer=tcp://host:7401, "
                  "dealer_publish=tcp://host:7403); repeat for several");
  mgr->callback([&] {
    for (const auto& e : mgr_endpoints) {
      const auto eq = e.find('=');
      if (eq == std::string::npos) {
        exit_code = Fail("--endpoint '" + e + "' is not NAME=ENDPOINT");
        return;
      }
      mgr_opts.endpoints[e.substr(0, eq)] = e.substr(eq + 1);
    }
    DieWithParent(mgr_die);
    auto m = manager::SlideManager::Open(mgr_opts);
    if (!m.ok()) {
      exit_code = Fail(m.status().ToString());
      return;
    }
    Ready("manager=" + (*m)->endpoint() +
          ((*m)->admin_credential().empty() ? "" : " credential=" + (*m)->admin_credential()));
    if (Status s = (*m)->Run(StopFlag()); !s.ok()) exit_code = Fail(s.ToString());
  });

  static proxy::ProxyOptions proxy_opts;
  auto* px = serve->add_subcommand("proxy", "A slide's proxy (started by the manager)");
  px->add_option("--slide", proxy_opts.slide_id, "Slide id")->required();
  px->add_option("--plan", proxy_opts.plan_file, "Scan plan JSON file")->required();
  px->add_option("--writer", proxy_opts.writer, "The slide writer's endpoint")->required();
  px->add_option("--bind", proxy_opts.bind, "Endpoint scanners connect to")->capture_default_str();
  px->add_option("--local", proxy_opts.local,
                 "Also serve scanners on this host at this ipc:// endpoint (a Unix socket: no TCP, no encryption)");
  px->add_option("--fifo-bytes", proxy_opts.fifo_bytes, "FIFO bound in bytes")->capture_default_str();
  static RoleStart proxy_start;
  AddRoleStartOptions(px, proxy_start);
  px->callback([&] {
    if (Status s = StartRole(proxy_start); !s.ok()) {
      exit_code = Fail(s.ToString());
      return;
    }
    auto p = proxy::SlideProxy::Open(proxy_opts);
    if (!p.ok()) {
      exit_code = Fail(p.status().ToString());
      return;
    }
    Ready((*p)->endpoint());
    if (Status s = (*p)->Run(StopFlag()); !s.ok()) exit_code = Fail(s.ToString());
  });

  static dealer::DealerOptions dealer_opts;
  auto* dl = serve->add_subcommand("dealer", "The tile dealer: tiles, regions and live events for viewers and programs");
  dl->add_option("--manager", dealer_opts.manager, "The slide manager's endpoint")->required();
  dl->add_option("--bind", dealer_opts.bind, "Endpoint for requests")->capture_default_str();
  dl->add_option("--events-bind", dealer_opts.events_bind, "Endpoint the slide writers publish to")
      ->capture_default_str();
  dl->add_option("--publish-bind", dealer_opts.publish_bind, "Endpoint viewers subscribe to")
      ->capture_default_str();
  dl->add_option("--cache-bytes", dealer_opts.cache_bytes, "Chunk cache size in bytes")->capture_default_str();
  dl->add_option("--io-threads", dealer_opts.io_threads, "Threads reading slide files")->capture_default_str();
  static RoleStart dealer_start;
  AddRoleStartOptions(dl, dealer_start);
  dl->callback([&] {
    if (Status s = StartRole(dealer_start); !s.ok()) {
      exit_code = Fail(s.ToString());
      return;
    }
    auto d = dealer::TileDealer::Open(dealer_opts);
    if (!d.ok()) {
      exit_code = Fail(d.status().ToString());
      return;
    }
    Ready(fmt::format("dealer={} dealer_events={} dealer_publish={}", (*d)->endpoint(),
                      (*d)->events_endpoint(), (*d)->publish_endpoint()));
    if (Status s = (*d)->Run(StopFlag()); !s.ok()) exit_code = Fail(s.ToString());
  });

  static gateway::GatewayOptions gateway_opts;
  gateway_opts.web_root = DefaultWebRoot();
  auto* gw = serve->add_subcommand(
      "gateway", "The HTTP gateway: the viewer page, IIIF Image API 3.0, REST, raw regions, Neuroglancer precomputed");
  gw->add_option("--manager", gateway_opts.manager, "The slide manager's endpoint")->required();
  gw->add_option("--host", gateway_opts.host, "Address to listen on (0.0.0.0: every interface)")->capture_default_str();
  gw->add_option("--port", gateway_opts.port, "Port to listen on (0: any free port)")->capture_default_str();
  gw->add_option("--web", gateway_opts.web_root, "The viewer page's folder (served at /; empty: none)")
      ->capture_default_str();
  gw->add_option("--public-url", gateway_opts.public_url,
                 "Where clients reach this gateway, for the URLs it writes (default: http://HOST:PORT; "
                 "the request's Host header is never used)");
  gw->add_option("--cors-origin", gateway_opts.cors_origins,
                 "A web origin whose pages may read the answers, e.g. https://viewer.lab.example (repeatable; "
                 "\"*\" for any; default: none)");
  gw->add_flag("--http-public", gateway_opts.http_public,
               "Serve without the stack's token: published data, for anyone who reaches the port (the gateway "
               "only reads)");
  gw->add_option("--tls-cert", gateway_opts.tls_cert, "PEM certificate chain: serve HTTPS instead of HTTP (with --tls-key)");
  gw->add_option("--tls-key", gateway_opts.tls_key, "The certificate's PEM private key");
  gw->add_option("--threads", gateway_opts.threads, "Network threads")->capture_default_str();
  gw->add_option("--workers", gateway_opts.workers, "Threads reading and rendering pixels")->capture_default_str();
  gw->add_option("--timeout", gateway_opts.timeout_s, "Seconds to read a request or write a response")
      ->capture_default_str();
  gw->add_option("--max-output-pixels", gateway_opts.max_output_pixels, "Largest IIIF image, width x height")
      ->capture_default_str();
  gw->add_option("--max-raw-bytes", gateway_opts.max_raw_bytes, "Largest raw region (.npy, .tiff, precomputed chunk)")
      ->capture_default_str();
  gw->add_option("--decoded-cache-bytes", gateway_opts.decoded_cache_bytes,
                 "Decoded chunks kept for the next tiles, in bytes (0: none)")
      ->capture_default_str();
  static RoleStart gateway_start;
  AddRoleStartOptions(gw, gateway_start);
  gw->callback([&] {
    if (Status s = StartRole(gateway_start); !s.ok()) {
      exit_code = Fail(s.ToString());
      return;
    }
    if (!gateway_start.security.empty() && !gateway_opts.http_public) {
      auto token = security::ReadHttpToken(gateway_start.security);
      if (!token.ok()) {
        exit_code = Fail(token.status().ToString());
        return;
      }
      gateway_opts.token = *token;
    }
    auto g = gateway::Gateway::Open(gateway_opts);
    if (!g.ok()) {
      exit_code = Fail(g.status().ToString());
      return;
    }
    Ready("http=" + (*g)->url());
    if (Status s = (*g)->Run(StopFlag()); !s.ok()) exit_code = Fail(s.ToString());
  });

  static broker::BrokerOptions broker_opts;
  auto* bk = serve->add_subcommand("broker", "The task broker: hands stitching tasks to workers");
  bk->add_option("--bind", broker_opts.bind, "Endpoint for workers and clients")->capture_default_str();
  bk->add_option("--local", broker_opts.local,
                 "An ipc:// endpoint it also serves, for the workers and stitchers on this host");
  bk->add_option("--heartbeat-ms", broker_opts.heartbeat_ms, "Heartbeat interval, both ways")->capture_default_str();
  bk->add_option("--task-timeout-ms", broker_opts.task_timeout_ms,
                 "A worker on one task longer is dropped and the task goes to another")
      ->capture_default_str();
  bk->add_option("--max-attempts", broker_opts.max_attempts, "Tries of one task before it fails for good")
      ->capture_default_str();
  bk->add_option("--max-queued-bytes", broker_opts.max_queued_bytes, "Bound of the task queues, in bytes")
      ->capture_default_str();
  static RoleStart broker_start;
  AddRoleStartOptions(bk, broker_start);
  bk->callback([&] {
    if (Status s = StartRole(broker_start); !s.ok()) {
      exit_code = Fail(s.ToString());
      return;
    }
    auto b = broker::Broker::Open(broker_opts);
    if (!b.ok()) {
      exit_code = Fail(b.status().ToString());
      return;
    }
    Ready("broker=" + (*b)->endpoint() +
          ((*b)->local_endpoint().empty() ? std::string() : " broker_local=" + (*b)->local_endpoint()));
    if (Status s = (*b)->Run(StopFlag()); !s.ok()) exit_code = Fail(s.ToString());
  });

  static worker::WorkerOptions worker_opts;
  auto* wk = serve->add_subcommand("worker", "A stitching worker: takes tasks from the broker");
  wk->add_option("--broker", worker_opts.broker, "The broker's endpoint")->required();
  wk->add_option("--manager", worker_opts.manager, "The slide manager's endpoint (finds the tile dealer)")->required();
  wk->add_option("--services", worker_opts.services,
                 fmt::format("Services to offer, comma-separated ({})", fmt::join(worker::KnownServices(), ", ")))
      ->delimiter(',')
      ->capture_default_str();
  wk->add_option("--name", worker_opts.name, "Name in `tessera ps` (default host:pid)");
  wk->add_option("--heartbeat-ms", worker_opts.heartbeat_ms, "Heartbeat interval (as the broker's)")
      ->capture_default_str();
  static RoleStart worker_start;
  AddRoleStartOptions(wk, worker_start);
  wk->callback([&] {
    if (Status s = StartRole(worker_start); !s.ok()) {
      exit_code = Fail(s.ToString());
      return;
    }
    auto w = worker::Worker::Open(worker_opts);
    if (!w.ok()) {
      exit_code = Fail(w.status().ToString());
      return;
    }
    Ready("worker " + (*w)->name());
    if (Status s = (*w)->Run(StopFlag()); !s.ok()) exit_code = Fail(s.ToString());
  });

  static scaler::ScalerOptions scaler_opts;
  auto* sc = serve->add_subcommand(
      "scaler", "Asks a Slurm cluster for workers (sbatch) while the task queues hold work; lets them go when they drain");
  sc->add_option("--manager", scaler_opts.manager, "The slide manager's endpoint (finds the broker)")->required();
  sc->add_option("--worker-credential", scaler_opts.credential,
                 "The workers' credential file (role worker; `tessera credential new --role worker`): each job "
                 "gets it, and the scaler reads the queues with it")
      ->required();
  sc->add_option("--script", scaler_opts.script, "The batch script each job runs (deploy/slurm/tessera-worker.sbatch)")
      ->required();
  sc->add_option("--broker", scaler_opts.broker, "The broker's endpoint as the cluster's nodes reach it (default: "
                 "the one the manager names)");
  sc->add_option("--submit-arg", scaler_opts.submit_args,
                 "An sbatch option for every job (--partition=P, --account=A, --time=T, --output=PATH); repeat");
  sc->add_option("--job-name", scaler_opts.job_name, "The jobs' name in squeue")->capture_default_str();
  sc->add_option("--min-workers", scaler_opts.min_workers, "Jobs kept while the queues are empty")->capture_default_str();
  sc->add_option("--max-workers", scaler_opts.max_workers, "Most jobs at once")
      ->check(CLI::Range(1u, 10000u))
      ->capture_default_str();
  sc->add_option("--tasks-per-worker", scaler_opts.tasks_per_worker,
                 "Waiting or running tasks that call for one more worker")
      ->capture_default_str();
  static double scaler_idle_s = 30;
  sc->add_option("--idle-s", scaler_idle_s, "Seconds the queues stay empty before the jobs are let go")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  sc->callback([&] {
    scaler_opts.idle_ms = static_cast<int>(scaler_idle_s * 1000);
    if (Status s = UseCredential(scaler_opts.credential); !s.ok()) {
      exit_code = Fail(s.ToString());
      return;
    }
    auto sc = scaler::Scaler::Open(scaler_opts);
    if (!sc.ok()) {
      exit_code = Fail(sc.status().ToString());
      return;
    }
    Ready("scaler " + scaler_opts.job_name);
    if (Status s = (*sc)->Run(StopFlag()); !s.ok()) exit_code = Fail(s.ToString());
  });

  static stitcher::StitchOptions stitcher_opts;
  auto* sr = serve->add_subcommand("stitcher", "Stitch one slide and report to the manager (started by the manager)");
  sr->add_option("--slide", stitcher_opts.slide, "Slide id")->required();
  sr->add_option("--manager", stitcher_opts.manager, "The slide manager's endpoint")->required();
  sr->add_option("--channel", stitcher_opts.channel, "Channel to register on")->capture_default_str();
  sr->add_option("--z", stitcher_opts.z, "Plane to register on (-1: a z-stack's maximum projection over its planes)")->capture_default_str();
  sr->add_option("--max-shift", stitcher_opts.max_shift, "Pixels: the stage's error")->capture_default_str();
  sr->add_flag("!--no-store", stitcher_opts.store, "Report only: keep the slide's positions");
  sr->add_flag("--deskew-only", stitcher_opts.deskew_only, "An oblique scan: make its deskewed view only");
  sr->add_flag("--flat-field", stitcher_opts.flat_field, "Estimate each channel's flat field and dark level; fuse with them");
  sr->add_flag("--normalize", stitcher_opts.normalize, "Solve a gain per tile from the overlaps; fuse with them");
  sr->add_option("--dark", stitcher_opts.dark, "The camera's dark level (offset), if known; -1: estimated")
      ->check(CLI::Range(-1.0, 65535.0))->capture_default_str();
  static DestripeArgs stitcher_destripe;
  AddDestripeOptions(sr, stitcher_destripe);
  static RoleStart stitcher_start;
  AddRoleStartOptions(sr, stitcher_start);
  sr->callback([&] {
    auto stripes = DestripeOf(stitcher_destripe);
    if (!stripes.ok()) {
      exit_code = Fail(stripes.status().ToString());
      return;
    }
    stitcher_opts.destripe = *stripes;
    if (Status s = StartRole(stitcher_start); !s.ok()) {
      exit_code = Fail(s.ToString());
      return;
    }
    Ready("stitcher " + stitcher_opts.slide);
    if (Status s = stitcher::RunAndReport(stitcher_opts, StopFlag()); !s.ok()) {
      if (StopFlag().load()) {  // not a failure: the manager resumes the stitch (and logs so)
        exit_code = supervisor::kExitInterrupted;
      } else {
        exit_code = Fail(s.ToString());
      }
    }
  });

  static writer::WriterOptions writer_opts;
  auto* wr = serve->add_subcommand("writer", "A slide's writer (started by the manager)");
  wr->add_option("--slide", writer_opts.slide_id, "Slide id")->required();
  wr->add_option("--file", writer_opts.file, "The slide's HDF5 file (reopened if it exists)")->required();
  wr->add_option("--plan", writer_opts.plan_file, "Scan plan JSON file (to create the file)");
  wr->add_option("--bind", writer_opts.bind, "Endpoint the proxy connects to")->capture_default_str();
  wr->add_option("--sync-interval-ms", writer_opts.sync_interval_ms, "Longest wait before fsync")
      ->capture_default_str();
  wr->add_option("--sync-bytes", writer_opts.sync_bytes, "Sync once this many bytes are pending")
      ->capture_default_str();
  wr->add_flag("!--no-fsync", writer_opts.fsync, "Flush without fsync");
  wr->add_option("--events", writer_opts.events, "Where to publish 'frames landed' events (the dealer's events endpoint)");
  static RoleStart writer_start;
  AddRoleStartOptions(wr, writer_start);
  wr->callback([&] {
    if (Status s = StartRole(writer_start); !s.ok()) {
      exit_code = Fail(s.ToString());
      return;
    }
    auto w = writer::SlideWriter::Open(writer_opts);
    if (!w.ok()) {
      exit_code = Fail(w.status().ToString());
      return;
    }
    Ready((*w)->endpoint());
    if (Status s = (*w)->Run(StopFlag()); !s.ok()) exit_code = Fail(s.ToString());
  });
}

}  // namespace tessera::cli
