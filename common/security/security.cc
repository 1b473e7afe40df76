#include "common/security/security.h"

#include <sys/random.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "common/durable/durable.h"
#include "common/wire/wire.h"

namespace tessera::security {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kServerKeyFile = "server.key";
constexpr const char* kClientsFile = "clients.json";
constexpr size_t kMaxFileBytes = 16 << 20;

bool IsZ85Key(std::string_view k) {
  if (k.size() != 40) return false;
  static constexpr std::string_view kAlphabet =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  return k.find_first_not_of(kAlphabet) == std::string_view::npos;
}

Result<std::string> ReadSmallFile(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return Error(StatusCode::kNotFound, "{} does not exist", path);
  const auto size = fs::file_size(path, ec);
  if (ec || size > kMaxFileBytes) return Error(StatusCode::kInvalidArgument, "{} is not a Tessera key file", path);
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  if (!in) return Error(StatusCode::kUnavailable, "cannot read {}", path);
  return s.str();
}

struct Client {
  std::string name, public_key;
  Role role = Role::kViewer;
  bool revoked = false;
};

Result<std::vector<Client>> ParseClients(const std::string& text, const std::string& path) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return Error(StatusCode::kDataLoss, "{} is not a list of client keys", path);
  std::vector<Client> out;
  for (const auto& e : j) {
    if (!e.is_object() || !e.value("name", json()).is_string() || !e.value("public_key", json()).is_string() ||
        !e.value("role", json()).is_string()) {
      return Error(StatusCode::kDataLoss, "{}: an entry lacks name, role or public_key", path);
    }
    Client c{e["name"].get<std::string>(), e["public_key"].get<std::string>()};
    TESSERA_ASSIGN_OR_RETURN(c.role, ParseRole(e["role"].get<std::string>()));
    c.revoked = e.value("revoked", false);
    out.push_back(std::move(c));
  }
  return out;
}

std::string ClientsJson(const std::vector<Client>& clients) {
  json j = json::array();
  for (const auto& c : clients) {
    j.push_back({{"name", c.name}, {"role", RoleName(c.role)}, {"public_key", c.public_key}, {"revoked", c.revoked}});
  }
  return j.dump(2) + "\n";
}

// The 32 bytes of a CURVE public key, as Z85 text.
std::string Z85(const uint8_t* key32) {
  char text[41];
  zmq_z85_encode(text, key32, 32);
  return std::string(text, 40);
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAdmin: return "admin";
    case Role::kScanner: return "scanner";
    case Role::kViewer: return "viewer";
    case Role::kWorker: return "worker";
  }
  return "viewer";
}

Result<Role> ParseRole(std::string_view name) {
  for (Role r : {Role::kAdmin, Role::kScanner, Role::kViewer, Role::kWorker}) {
    if (name == RoleName(r)) return r;
  }
  return Error(StatusCode::kInvalidArgument, "unknown role '{}': give admin, scanner, viewer or worker", name);
}

KeyPair GenerateKeyPair() {
  char pub[41], sec[41];
  const int rc = zmq_curve_keypair(pub, sec);
  assert(rc == 0 && "libzmq without CURVE");
  (void)rc;
  return {std::string(pub, 40), std::string(sec, 40)};
}

Status WriteCredential(const std::string& path, const Credential& c) {
  const json j = {{"tessera_credential", 1},          {"name", c.name},
                  {"role", RoleName(c.role)},         {"endpoint", c.endpoint},
                  {"server_key", c.server_key},       {"public_key", c.keys.public_key},
                  {"secret_key", c.keys.secret_key}};
  return durable::WriteFile(path, j.dump(2) + "\n", 0600);
}

Result<Credential> ReadCredential(const std::string& path) {
  TESSERA_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  const json j = json::parse(text, nullptr, false);
  auto bad = [&](std::string_view what) {
    return Error(StatusCode::kInvalidArgument, "{} is not a Tessera credential: {}", path, what);
  };
  if (!j.is_object() || j.value("tessera_credential", 0) != 1) return bad("no \"tessera_credential\": 1");
  Credential c;
  for (auto [key, out] : {std::pair{"name", &c.name}, {"endpoint", &c.endpoint}, {"server_key", &c.server_key},
                          {"public_key", &c.keys.public_key}, {"secret_key", &c.keys.secret_key}}) {
    if (!j.contains(key) || !j[key].is_string()) return bad(fmt::format("no \"{}\"", key));
    *out = j[key].get<std::string>();
  }
  if (!j.contains("role") || !j["role"].is_string()) return bad("no \"role\"");
  auto role = ParseRole(j["role"].get<std::string>());
  if (!role.ok()) return bad(role.status().message());
  c.role = *role;
  for (const std::string* k : {&c.server_key, &c.keys.public_key, &c.keys.secret_key}) {
    if (!IsZ85Key(*k)) return bad("a key is not 40 Z85 characters");
  }
  return c;
}

// ---------------------------------------------------------------- key store

struct KeyStore::Impl {
  std::string dir;
  KeyPair server;
  std::vector<Client> clients;

  Status Save() const { return durable::WriteFile(dir + "/" + kClientsFile, ClientsJson(clients)); }
};

KeyStore::KeyStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KeyStore::~KeyStore() = default;
const KeyPair& KeyStore::server_keys() const { return impl_->server; }

Result<KeyPair> ReadServerKeys(const std::string& dir) {
  const std::string path = dir + "/" + kServerKeyFile;
  TESSERA_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  std::istringstream in(text);
  KeyPair k;
  if (!(in >> k.public_key >> k.secret_key) || !IsZ85Key(k.public_key) || !IsZ85Key(k.secret_key)) {
    return Error(StatusCode::kDataLoss, "{} does not hold a CURVE key pair", path);
  }
  return k;
}

Result<std::string> ReadHttpToken(const std::string& dir) {
  const std::string path = dir + "/" + kHttpTokenFile;
  TESSERA_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.size() < 32 || text.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return Error(StatusCode::kDataLoss, "{} does not hold a token", path);
  }
  return text;
}

Result<std::unique_ptr<KeyStore>> KeyStore::Open(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error(StatusCode::kUnavailable, "cannot create {}: {}", dir, ec.message());
  ::chmod(dir.c_str(), 0700);
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  auto server = ReadServerKeys(dir);
  if (server.status().code() == StatusCode::kNotFound) {
    impl->server = GenerateKeyPair();
    TESSERA_RETURN_IF_ERROR(durable::WriteFile(dir + "/" + kServerKeyFile,
                                               impl->server.public_key + "\n" + impl->server.secret_key + "\n", 0600));
  } else {
    TESSERA_RETURN_IF_ERROR(server.status());
    impl->server = *server;
  }
  const std::string clients = dir + "/" + kClientsFile;
  if (auto text = ReadSmallFile(clients); text.ok()) {
    TESSERA_ASSIGN_OR_RETURN(impl->clients, ParseClients(*text, clients));
  } else if (text.status().code() != StatusCode::kNotFound) {
    return text.status();
  }
  std::unique_ptr<KeyStore> store(new KeyStore(std::move(impl)));
  TESSERA_RETURN_IF_ERROR(store->Ensure("stack", Role::kAdmin, "", dir + "/" + kStackCredentialFile).status());
  if (ReadHttpToken(dir).status().code() == StatusCode::kNotFound) {
    uint8_t bytes[24];
    if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) {
      return Error(StatusCode::kInternal, "no random bytes for the HTTP token");
    }
    std::string token;
    for (uint8_t b : bytes) token += fmt::format("{:02x}", b);
    TESSERA_RETURN_IF_ERROR(durable::WriteFile(dir + "/" + kHttpTokenFile, token + "\n", 0600));
  }
  return store;
}

Result<Credential> KeyStore::Ensure(const std::string& name, Role role, const std::string& endpoint,
                                    const std::string& path) {
  const bool issued = std::any_of(impl_->clients.begin(), impl_->clients.end(),
                                  [&](const Client& c) { return c.name == name && !c.revoked; });
  if (issued) {
    if (auto held = ReadCredential(path); held.ok() && held->server_key == impl_->server.public_key &&
                                          Lookup(held->keys.public_key).has_value()) {
      if (held->endpoint == endpoint) return *held;
      held->endpoint = endpoint;
      TESSERA_RETURN_IF_ERROR(WriteCredential(path, *held));
      return *held;
    }
  }
  // The file is gone or stale, or the name was revoked: the old key goes (refused from now on,
  // as unknown) and a new one is issued under the same name.
  impl_->clients.erase(std::remove_if(impl_->clients.begin(), impl_->clients.end(),
                                      [&](const Client& c) { return c.name == name; }),
                       impl_->clients.end());
  TESSERA_ASSIGN_OR_RETURN(Credential c, Issue(name, role, endpoint));
  TESSERA_RETURN_IF_ERROR(WriteCredential(path, c));
  return c;
}

std::vector<Issued> KeyStore::List() const {
  std::vector<Issued> out;
  for (const auto& c : impl_->clients) out.push_back({c.name, c.role, c.revoked});
  return out;
}

Result<Credential> KeyStore::Issue(const std::string& name, Role role, const std::string& endpoint) {
  if (name.empty() || name.size() > 128 || name.find_first_of(" \t\n\"\\/") != std::string::npos) {
    return Error(StatusCode::kInvalidArgument, "credential name '{}': 1-128 characters, no spaces, quotes or slashes",
                 name);
  }
  for (const auto& c : impl_->clients) {
    if (c.name == name) return Error(StatusCode::kAlreadyExists, "a credential named {} exists already", name);
  }
  Credential cred{name, role, endpoint, impl_->server.public_key, GenerateKeyPair()};
  impl_->clients.push_back({name, cred.keys.public_key, role, false});
  if (Status s = impl_->Save(); !s.ok()) {
    impl_->clients.pop_back();
    return s;
  }
  return cred;
}

Status KeyStore::Revoke(const std::string& name) {
  for (auto& c : impl_->clients) {
    if (c.name != name) continue;
    c.revoked = true;
    return impl_->Save();
  }
  return Error(StatusCode::kNotFound, "no credential named {} (see {}/{})", name, impl_->dir, kClientsFile);
}

std::optional<Peer> KeyStore::Lookup(std::string_view public_key) const {
  for (const auto& c : impl_->clients) {
    if (c.public_key == public_key && !c.revoked) return Peer{c.name, c.role};
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- ZAP

struct ZapHandler::Impl {
  std::string dir;
  zmq::socket_t socket;
  std::jthread thread;
  std::atomic<uint64_t> refused{0};
  std::mutex mu;  // clients and loaded: the ZAP thread and every thread that checks a message
  std::vector<Client> clients;
  std::pair<ino_t, int64_t> loaded{0, 0};  // the file's inode (each save renames a new one) and mtime
  int64_t checked_ms = 0;  // when Admits last looked at the file

  // Whether `key` is known and not revoked, the file looked at again at most every 200 ms.
  bool Admits(std::string_view key) {
    std::lock_guard lock(mu);
    if (const int64_t now = wire::NowMs(); now - checked_ms >= 200) {
      checked_ms = now;
      Reload();
    }
    return std::any_of(clients.begin(), clients.end(),
                       [&](const Client& c) { return c.public_key == key && !c.revoked; });
  }

  void Reload() {
    const std::string path = dir + "/" + kClientsFile;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return;
    const std::pair<ino_t, int64_t> seen{st.st_ino, int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
    if (seen == loaded) return;
    if (auto text = ReadSmallFile(path); text.ok()) {
      if (auto parsed = ParseClients(*text, path); parsed.ok()) {
        clients = std::move(*parsed);
        loaded = seen;
      }
    }
  }

  // One request of RFC 27: version, id, domain, address, identity, mechanism, credentials...
  void Answer(std::vector<zmq::message_t>& req) {
    std::string code = "400", text = "unknown key", user, metadata;
    // CURVE (tcp://) proved the client's public key in its handshake; PLAIN (ipc://, a Unix
    // socket) hands over its secret key as the password, whose public key is derived here.
    std::string key;
    if (req.size() >= 7 && req[0].to_string() == "1.0") {
      const std::string mechanism = req[5].to_string();
      if (mechanism == "CURVE" && req[6].size() == 32) {
        key = Z85(static_cast<const uint8_t*>(req[6].data()));
      } else if (mechanism == "PLAIN" && req.size() >= 8 && req[7].size() == 40) {
        const std::string secret = req[7].to_string();
        char derived[41] = {};
        if (zmq_curve_public(derived, secret.c_str()) == 0) key = derived;
      }
    }
    if (!key.empty()) {
      std::lock_guard lock(mu);
      Reload();
      for (const auto& c : clients) {
        if (c.public_key != key) continue;
        if (c.revoked) {
          text = "credential " + c.name + " was revoked";
          break;
        }
        code = "200", text = "OK", user = c.name;
        // ZMTP metadata on every message from this peer: its role, and its key, by which a
        // revocation after the handshake is noticed (wire::Admitted).
        for (const auto& [name, value] : {std::pair<std::string_view, std::string_view>{"Role", RoleName(c.role)},
                                          {"Key", c.public_key}}) {
          metadata.push_back(static_cast<char>(name.size()));
          metadata += name;
          for (int shift : {24, 16, 8, 0}) metadata.push_back(static_cast<char>((value.size() >> shift) & 0xFF));
          metadata += value;
        }
        break;
      }
    }
    if (code != "200") ++refused;
    const std::string request_id = req.size() > 1 ? req[1].to_string() : "";
    const std::string parts[] = {"1.0", request_id, code, text, user, metadata};
    for (size_t i = 0; i < 6; ++i) {
      socket.send(zmq::buffer(parts[i]), i < 5 ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }

  void Serve(const std::stop_token& stop) {
    while (!stop.stop_requested()) {
      zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
      if (wire::Poll(&item, 1, 100) <= 0) continue;
      std::vector<zmq::message_t> req;
      while (true) {
        zmq::message_t m;
        if (!socket.recv(m, zmq::recv_flags::dontwait)) break;
        const bool more = m.more();
        if (req.size() < 16) req.push_back(std::move(m));
        if (!more) break;
      }
      Answer(req);
    }
  }
};

ZapHandler::ZapHandler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ZapHandler::~ZapHandler() {
  wire::SetAdmission(nullptr);
  impl_->thread.request_stop();
  impl_->thread = {};
}
uint64_t ZapHandler::refused() const { return impl_->refused.load(); }

Result<std::unique_ptr<ZapHandler>> ZapHandler::Start(const std::string& dir) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->socket = zmq::socket_t(wire::Context(), zmq::socket_type::rep);
  impl->socket.set(zmq::sockopt::linger, 0);
  try {
    impl->socket.bind("inproc://zeromq.zap.01");
  } catch (const zmq::error_t& e) {
    return Error(StatusCode::kInternal, "cannot start the ZAP handler: {}", e.what());
  }
  impl->Reload();
  Impl* m = impl.get();
  impl->thread = std::jthread([m](std::stop_token stop) { m->Serve(stop); });
  wire::SetAdmission([m](std::string_view key) { return m->Admits(key); });
  return std::unique_ptr<ZapHandler>(new ZapHandler(std::move(impl)));
}

Result<std::unique_ptr<ZapHandler>> JoinStack(const std::string& dir) {
  auto server = ReadServerKeys(dir);
  if (server.status().code() == StatusCode::kNotFound) {
    return Error(StatusCode::kNotFound,
                 "{} holds no stack's keys: give the security folder of the stack (DATA/security, made by "
                 "`tessera up` or `tessera serve manager --security DIR`)",
                 dir);
  }
  TESSERA_RETURN_IF_ERROR(server.status());
  const std::string cred_path = dir + "/" + kStackCredentialFile;
  TESSERA_ASSIGN_OR_RETURN(Credential own, ReadCredential(cred_path));
  TESSERA_ASSIGN_OR_RETURN(auto zap, ZapHandler::Start(dir));
  wire::SetSecurity({.server_public = server->public_key,
                     .server_secret = server->secret_key,
                     .client_public = own.keys.public_key,
                     .client_secret = own.keys.secret_key,
                     .server_key = server->public_key,
                     .credential = "the stack's own (" + cred_path + ")",
                     .client_name = own.name});
  return zap;
}

void UseCredential(const Credential& credential, const std::string& source) {
  wire::Security sec = wire::GetSecurity();
  sec.client_public = credential.keys.public_key;
  sec.client_secret = credential.keys.secret_key;
  sec.server_key = credential.server_key;
  sec.credential = fmt::format("credential '{}' ({})", credential.name, source);
  sec.client_name = credential.name;
  wire::SetSecurity(sec);
}

}  // namespace tessera::security
