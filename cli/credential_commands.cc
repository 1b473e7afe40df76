// `tessera credential new|revoke|ls`: who may talk to a secured stack (docs/security.md).
#include <filesystem>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "client/client.h"

namespace tessera::cli {

void AddCredentialCommands(CLI::App& app, int& exit_code) {
  auto* cred = app.add_subcommand(
      "credential", "Issue, revoke and list the credentials of a secured stack (admin only)");
  cred->require_subcommand(1);
  static std::string server;

  static std::string role, name, out;
  auto* issue = cred->add_subcommand(
      "new", "Issue a credential file for a new client: its endpoint, the stack's key, its own key pair, its role");
  issue->add_option("--role", role, "admin, scanner (open, push, close scans), viewer (read), worker (serve tasks)")
      ->required();
  issue->add_option("-o,--output", out, "The file to write (mode 0600); hand it to the client")->required();
  issue->add_option("--name", name, "The client's name, unique in the stack (default: the file's name without its extension)");
  AddServerOption(issue, server);
  issue->callback([&] {
    if (std::filesystem::exists(out)) {
      exit_code = Fail(fmt::format("{} exists: choose another file, or remove it first", out));
      return;
    }
    const std::string who = name.empty() ? std::filesystem::path(out).stem().string() : name;
    if (Status s = Client(server).IssueCredential(who, role, out); !s.ok()) {
      exit_code = Fail(s.ToString());
      return;
    }
    fmt::print("{}\n", out);
    fmt::print(stderr, "issued credential '{}' ({}): the client passes --credential {} or sets TESSERA_CREDENTIAL\n",
               who, role, out);
  });

  static std::string revoke_name;
  auto* revoke = cred->add_subcommand("revoke", "Refuse a credential's key from now on (every new connection)");
  revoke->add_option("NAME", revoke_name, "The credential's name (see `tessera credential ls`)")->required();
  AddServerOption(revoke, server);
  revoke->callback([&] {
    if (Status s = Client(server).RevokeCredential(revoke_name); !s.ok()) exit_code = Fail(s.ToString());
  });

  auto* ls = cred->add_subcommand("ls", "List the credentials the stack issued: name, role, revoked");
  AddServerOption(ls, server);
  ls->callback([&] {
    auto all = Client(server).ListCredentials();
    if (!all.ok()) {
      exit_code = Fail(all.status().ToString());
      return;
    }
    fmt::print("{:<24} {:<8} {}\n", "NAME", "ROLE", "STATE");
    for (const auto& c : *all) fmt::print("{:<24} {:<8} {}\n", c.name, c.role, c.revoked ? "revoked" : "active");
  });
}

}  // namespace tessera::cli
