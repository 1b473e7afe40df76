// Security: who may talk to a Tessera stack, and as what.
//
// Every TCP endpoint speaks CurveZMQ (encrypted, the server authenticated by its public key);
// every Unix socket (ipc://, on the stack's host: the writers', and each proxy's door for
// scanners on that host) speaks ZeroMQ's PLAIN, the client handing over its secret key where
// no one can overhear it, and pays for no encryption. A ZAP handler in each server process
// admits the client keys the stack has issued, by either proof, and tells the server each
// peer's name and role. A client holds a credential file (as a kubeconfig):
// the manager's endpoint, the stack's public key, its own key pair and its role.
//
//   auto store = KeyStore::Open("data/security");            // creates the stack's keys once
//   auto cred = (*store)->Issue("scope-3", Role::kScanner, "tcp://10.0.0.5:7400");
//   WriteCredential("scope-3.credential", *cred);
//   auto zap = JoinStack("data/security");                   // in every server process
//   UseCredential(*ReadCredential("scope-3.credential"), "scope-3.credential");  // a client
//
// Keys are Z85 text (40 characters). Files holding secret keys are written 0600.
//
// The security folder of a stack (DATA/security, mode 0700):
//   server.key        the stack's CURVE key pair, shared by its server processes
//   clients.json      every credential issued: name, role, public key, revoked
//   stack.credential  the stack's own processes' client key (role admin)
//   admin.credential  what `tessera up` names on its ready line
//   http.token        the gateway's bearer token
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status/status.h"

namespace tessera::security {

/// What a peer may do: admins everything (close, stitch, issue credentials); scanners open,
/// push and close their scans; viewers read; workers take tasks and read.
enum class Role { kAdmin, kScanner, kViewer, kWorker };
std::string_view RoleName(Role role);
/// INVALID_ARGUMENT naming the known roles.
Result<Role> ParseRole(std::string_view name);

struct KeyPair {
  std::string public_key, secret_key;  ///< Z85, 40 characters each
};
KeyPair GenerateKeyPair();

inline constexpr const char* kStackCredentialFile = "stack.credential";
inline constexpr const char* kAdminCredentialFile = "admin.credential";
inline constexpr const char* kHttpTokenFile = "http.token";

/// What a client needs to reach a stack: `tessera credential new` writes one.
struct Credential {
  std::string name;
  Role role = Role::kViewer;
  std::string endpoint;       ///< the manager's
  std::string server_key;     ///< the stack's public key
  KeyPair keys;               ///< the client's own
};
/// Written atomically, mode 0600.
Status WriteCredential(const std::string& path, const Credential& credential);
/// NOT_FOUND for a missing file, INVALID_ARGUMENT naming the file for one that is not a
/// credential (bad JSON, unknown role, keys that are not 40 Z85 characters).
Result<Credential> ReadCredential(const std::string& path);

/// A peer the ZAP handler admitted: its credential's name and role.
struct Peer {
  std::string name;
  Role role = Role::kViewer;
};

/// One entry of clients.json.
struct Issued {
  std::string name;
  Role role = Role::kViewer;
  bool revoked = false;
};

/// The stack's keys and the client keys it issued, in one folder (see above), owned by the
/// manager. Thread-compatible; other processes read the files.
class KeyStore {
 public:
  /// Opens `dir`, creating it (mode 0700), the stack's key pair, its own credential and the
  /// HTTP token the first time.
  static Result<std::unique_ptr<KeyStore>> Open(const std::string& dir);
  ~KeyStore();

  const KeyPair& server_keys() const;
  /// A new credential for `name` (unique: ALREADY_EXISTS otherwise), stored at once.
  Result<Credential> Issue(const std::string& name, Role role, const std::string& endpoint);
  /// `name`'s credential written to `path` for `endpoint`: issued the first time; later its
  /// keys are kept and the endpoint brought up to date (a stack restarted on another port).
  Result<Credential> Ensure(const std::string& name, Role role, const std::string& endpoint,
                            const std::string& path);
  std::vector<Issued> List() const;
  /// Refuses `name`'s key from now on (the ZAP handlers reload the file). NOT_FOUND if unknown.
  Status Revoke(const std::string& name);
  /// The peer with this public key, unless unknown or revoked.
  std::optional<Peer> Lookup(std::string_view public_key) const;

 private:
  struct Impl;
  explicit KeyStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The stack's server key pair from `dir` (read-only, for every server process).
Result<KeyPair> ReadServerKeys(const std::string& dir);
/// The gateway's bearer token from `dir`.
Result<std::string> ReadHttpToken(const std::string& dir);

/// ZeroMQ's ZAP handler for this process (inproc://zeromq.zap.01): admits CURVE clients whose
/// key, and PLAIN clients whose secret key's public half, is in `dir`'s clients.json and not
/// revoked (the file is read again when it changes),
/// and attaches the peer's name as User-Id, its role as the "Role" property and its key as the
/// "Key" property of every message it sends. Keys revoked after a peer connected are refused
/// from its next request on (wire::SetAdmission). Stops when destroyed.
class ZapHandler {
 public:
  static Result<std::unique_ptr<ZapHandler>> Start(const std::string& dir);
  ~ZapHandler();
  /// Handshakes refused so far (unknown or revoked keys).
  uint64_t refused() const;

 private:
  struct Impl;
  explicit ZapHandler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Makes this process one of the stack's servers: its tcp:// binds are CURVE servers with the
/// stack's key, it connects with the stack's own credential, and the returned ZAP handler
/// admits the keys the stack issued. Call once at start-up, before any socket is made; keep
/// the handler for the life of the process. NOT_FOUND naming `dir` when it holds no stack.
Result<std::unique_ptr<ZapHandler>> JoinStack(const std::string& dir);

/// Makes every connection of this process a CURVE client holding `credential` (read from
/// `source`, which errors name).
void UseCredential(const Credential& credential, const std::string& source);

}  // namespace tessera::security
