#include "common/security/security.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/wire/wire.h"

namespace tessera::security {
namespace {

std::string Dir(const std::string& tag) {
  const auto d = std::filesystem::path(::testing::TempDir()) / ("security_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  return d.string();
}

TEST(SecurityTest, TheStoreKeepsItsKeysAndIssuesUniqueCredentials) {
  const std::string dir = Dir("store");
  KeyPair server;
  {
    auto store = KeyStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    server = (*store)->server_keys();
    auto a = (*store)->Issue("scope-1", Role::kScanner, "tcp://h:7400");
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(a->server_key, server.public_key);
    EXPECT_EQ((*store)->Issue("scope-1", Role::kViewer, "").status().code(), StatusCode::kAlreadyExists);
    EXPECT_EQ((*store)->Issue("a b", Role::kViewer, "").status().code(), StatusCode::kInvalidArgument);
  }
  struct stat st{};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((dir + "/server.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = KeyStore::Open(dir);  // the same stack after a restart: the same key
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->server_keys().public_key, server.public_key);
  EXPECT_EQ((*again)->Revoke("nobody").code(), StatusCode::kNotFound);
}

TEST(SecurityTest, EnsureKeepsACredentialAcrossRestartsAndReissuesARevokedOne) {
  const std::string dir = Dir("ensure");
  auto store = KeyStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const std::string path = dir + "/admin.credential";
  auto first = (*store)->Ensure("admin", Role::kAdmin, "tcp://h:1", path);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto again = (*store)->Ensure("admin", Role::kAdmin, "tcp://h:2", path);  // restarted on another port
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->keys.public_key, first->keys.public_key);
  EXPECT_EQ(ReadCredential(path)->endpoint, "tcp://h:2");
  ASSERT_TRUE((*store)->Revoke("admin").ok());
  auto fresh = (*store)->Ensure("admin", Role::kAdmin, "tcp://h:2", path);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_NE(fresh->keys.public_key, first->keys.public_key);
  EXPECT_FALSE((*store)->Lookup(first->keys.public_key).has_value()) << "the revoked key stays refused";
  EXPECT_TRUE((*store)->Lookup(fresh->keys.public_key).has_value());
  EXPECT_TRUE(ReadHttpToken(dir).ok()) << "the store made the HTTP token";
  EXPECT_TRUE(ReadCredential(dir + "/stack.credential").ok()) << "and the stack's own credential";
}

TEST(SecurityTest, CredentialFilesRoundTripPrivatelyAndBadOnesNameTheFile) {
  const std::string dir = Dir("cred");
  std::filesystem::create_directories(dir);
  const Credential c{"viewer-7", Role::kViewer, "tcp://10.0.0.1:7400", GenerateKeyPair().public_key,
                     GenerateKeyPair()};
  const std::string path = dir + "/v.credential";
  ASSERT_TRUE(WriteCredential(path, c).ok());
  struct stat st{};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = ReadCredential(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->name, "viewer-7");
  EXPECT_EQ(back->role, Role::kViewer);
  EXPECT_EQ(back->keys.secret_key, c.keys.secret_key);
  EXPECT_EQ(ReadCredential(dir + "/missing").status().code(), StatusCode::kNotFound);
  const std::string bad = dir + "/bad.credential";
  std::ofstream(bad) << R"({"tessera_credential": 1, "name": "x", "role": "root"})";
  auto refused = ReadCredential(bad);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find(bad), std::string::npos) << refused.status().ToString();
}

// A CURVE server with the ZAP handler in this process, and clients with or without a key the
// stack issued.
class CurveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = Dir("curve");
    auto store = KeyStore::Open(dir_);
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    auto zap = ZapHandler::Start(dir_);
    ASSERT_TRUE(zap.ok()) << zap.status().ToString();
    zap_ = std::move(*zap);
    wire::SetSecurity({.server_public = store_->server_keys().public_key,
                       .server_secret = store_->server_keys().secret_key});
    endpoint_ = *wire::Bind(server_, "tcp://127.0.0.1:0");
    wire::SetSecurity({});
  }
  void TearDown() override { wire::SetSecurity({}); }

  // Sends "hello" with `keys` and returns the role the server saw, or nullopt if it saw nothing.
  std::optional<std::string> Hello(const KeyPair& keys, const std::string& server_key) {
    wire::SetSecurity({.client_public = keys.public_key, .client_secret = keys.secret_key, .server_key = server_key});
    zmq::socket_t client = wire::MakeSocket(zmq::socket_type::dealer);
    EXPECT_TRUE(wire::Connect(client, endpoint_).ok());
    client.send(zmq::str_buffer("hello"), zmq::send_flags::none);
    auto in = wire::Receive(server_, 1000, /*router=*/true);
    if (!in) return std::nullopt;
    return wire::PeerRole(in->header);
  }

  std::string dir_, endpoint_;
  std::unique_ptr<KeyStore> store_;
  std::unique_ptr<ZapHandler> zap_;
  zmq::socket_t server_ = wire::MakeSocket(zmq::socket_type::router);
};

TEST_F(CurveTest, AnIssuedKeyIsAdmittedWithItsRole) {
  auto cred = store_->Issue("scope", Role::kScanner, endpoint_);
  ASSERT_TRUE(cred.ok());
  EXPECT_EQ(Hello(cred->keys, cred->server_key), "scanner");
}

TEST_F(CurveTest, UnknownRevokedAndForeignKeysAreRefused) {
  EXPECT_EQ(Hello(GenerateKeyPair(), store_->server_keys().public_key), std::nullopt) << "a key never issued";
  auto cred = store_->Issue("gone", Role::kAdmin, endpoint_);
  ASSERT_TRUE(cred.ok());
  ASSERT_TRUE(store_->Revoke("gone").ok());
  EXPECT_EQ(Hello(cred->keys, cred->server_key), std::nullopt) << "a revoked key";
  // A credential of another stack: the server's key does not match, no handshake completes.
  auto other = KeyStore::Open(Dir("other"));
  ASSERT_TRUE(other.ok());
  auto foreign = (*other)->Issue("elsewhere", Role::kAdmin, endpoint_);
  ASSERT_TRUE(foreign.ok());
  EXPECT_EQ(Hello(foreign->keys, foreign->server_key), std::nullopt) << "another stack's credential";
  EXPECT_GE(zap_->refused(), 2u);
  // Plain TCP to a CURVE endpoint gets nowhere either.
  EXPECT_EQ(Hello({}, ""), std::nullopt);
}

}  // namespace
}  // namespace tessera::security
