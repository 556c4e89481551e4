#include "controller/controller_config.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/access_tokens.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::controller {
namespace {

using ::testing::HasSubstr;

constexpr char kMinimal[] = "listen: 0.0.0.0:7443\ninsecure: true\n";

constexpr char kFull[] = R"yaml(
listen: "[::]:0"
insecure: true
controller_id: ctl-1.example
state_dir: /srv/pghaul
heartbeat_interval: 500ms
missed_heartbeats: 5
log:
  level: warn
  format: text
)yaml";

// The YAML block that follows "<!-- example: <name> " in docs/configuration.md, so the
// documented examples are checked against the parser.
std::string DocumentedExample(const std::string& name) {
  std::string file = __FILE__;
  std::string doc = file.substr(0, file.rfind("tests/unit/")) + "docs/configuration.md";
  std::ifstream in(doc);
  std::stringstream text;
  text << in.rdbuf();
  std::string markdown = text.str();
  size_t marker = markdown.find("<!-- example: " + name + " ");
  EXPECT_NE(marker, std::string::npos) << "no example '" << name << "' in " << doc;
  if (marker == std::string::npos) return "";
  size_t start = markdown.find("```yaml\n", marker);
  size_t end = markdown.find("```\n", start + 8);
  if (start == std::string::npos || end == std::string::npos) return "";
  return markdown.substr(start + 8, end - start - 8);
}

std::string ErrorOf(const std::string& yaml) {
  absl::StatusOr<ControllerConfig> config = ParseControllerConfig(yaml, "controller.yaml");
  EXPECT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

TEST(ControllerConfigTest, ReadsEveryKeyOfAFullConfig) {
  absl::StatusOr<ControllerConfig> config = ParseControllerConfig(kFull, "controller.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen_address, "[::]:0");
  EXPECT_TRUE(config->insecure);
  EXPECT_EQ(config->controller_id, "ctl-1.example");
  EXPECT_EQ(config->state_dir, "/srv/pghaul");
  EXPECT_EQ(config->heartbeat_interval, absl::Milliseconds(500));
  EXPECT_EQ(config->missed_heartbeats, 5);
  EXPECT_EQ(config->log_level, "warn");
  EXPECT_EQ(config->log_format, "text");
}

TEST(ControllerConfigTest, OmittedKeysTakeTheDocumentedDefaults) {
  absl::StatusOr<ControllerConfig> config = ParseControllerConfig(kMinimal, "controller.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  char hostname[HOST_NAME_MAX + 1] = {};
  ASSERT_EQ(gethostname(hostname, sizeof(hostname) - 1), 0);
  EXPECT_EQ(config->controller_id, hostname);
  EXPECT_EQ(config->state_dir, "/var/lib/pghaul");
  EXPECT_EQ(config->heartbeat_interval, absl::Seconds(2));
  EXPECT_EQ(config->missed_heartbeats, 3);
  EXPECT_EQ(config->log_level, "info");
  EXPECT_EQ(config->log_format, "json");
}

TEST(ControllerConfigTest, RefusesToLoadWithNeitherTlsNorInsecure) {
  std::string message = ErrorOf("listen: 0.0.0.0:7443\n");
  EXPECT_THAT(message, HasSubstr("key 'tls': missing: set tls.ca, tls.cert and tls.key"));
  EXPECT_THAT(message, HasSubstr("'insecure: true'"));
  EXPECT_THAT(ErrorOf("listen: 0.0.0.0:7443\ninsecure: false\n"), HasSubstr("key 'tls': missing"));
}

TEST(ControllerConfigTest, ReadsTheTlsFiles) {
  absl::StatusOr<ControllerConfig> config = ParseControllerConfig(
      "listen: 0.0.0.0:7443\ntls:\n  ca: /etc/pghaul/ca.crt\n  cert: /etc/pghaul/c.crt\n"
      "  key: /etc/pghaul/c.key\n",
      "controller.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->insecure);
  EXPECT_EQ(config->tls.ca, "/etc/pghaul/ca.crt");
  EXPECT_EQ(config->tls.cert, "/etc/pghaul/c.crt");
  EXPECT_EQ(config->tls.key, "/etc/pghaul/c.key");
}

TEST(ControllerConfigTest, RefusesTlsWithInsecureAndTlsServerName) {
  EXPECT_THAT(ErrorOf("listen: 0.0.0.0:7443\ninsecure: true\ntls: {ca: /a, cert: /b, key: /c}\n"),
              HasSubstr("key 'insecure': is true while 'tls' is set: choose one"));
  // server_name is the agent's setting: the controller does not dial anyone.
  EXPECT_THAT(ErrorOf("listen: 0.0.0.0:7443\ntls: {ca: /a, cert: /b, key: /c, server_name: x}\n"),
              HasSubstr("unknown key 'tls.server_name'"));
}

TEST(ControllerConfigTest, RequiresAListenAddressWithAPort) {
  EXPECT_THAT(ErrorOf("insecure: true\n"), HasSubstr("missing required key 'listen'"));
  EXPECT_THAT(ErrorOf("listen: 7443\ninsecure: true\n"),
              HasSubstr("key 'listen': expected host:port with a port from 0 to 65535"));
  EXPECT_THAT(ErrorOf("listen: localhost:99999\ninsecure: true\n"),
              HasSubstr("got \"localhost:99999\""));
}

TEST(ControllerConfigTest, RefusesHeartbeatSettingsOutsideTheirRanges) {
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "heartbeat_interval: 50ms\n"),
              HasSubstr("key 'heartbeat_interval': expected a duration from 100ms to 1m, such as "
                        "\"2s\" or \"500ms\", got \"50ms\""));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "heartbeat_interval: 2 s\n"),
              HasSubstr("key 'heartbeat_interval'"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "missed_heartbeats: 0\n"),
              HasSubstr("key 'missed_heartbeats': expected an integer from 1 to 100, got \"0\""));
}

TEST(ControllerConfigTest, RefusesABadControllerIdAndRelativeStateDir) {
  std::string message =
      ErrorOf(std::string(kMinimal) + "controller_id: \"ctl 1\"\nstate_dir: pghaul\n");
  EXPECT_THAT(message, HasSubstr("key 'controller_id': expected 1 to 255 characters"));
  EXPECT_THAT(message, HasSubstr("key 'state_dir': expected an absolute path, got \"pghaul\""));
}

TEST(ControllerConfigTest, RefusesAnUnknownKeyAndListsTheKnownOnes) {
  std::string message = ErrorOf(std::string(kMinimal) + "heartbeat: 2s\n");
  EXPECT_THAT(message, HasSubstr("unknown key 'heartbeat' (known keys: listen, insecure, tls, access, "
                                 "controller_id, state_dir, heartbeat_interval, "
                                 "missed_heartbeats, log)"));
}

TEST(ControllerConfigTest, LoadNamesAMissingFile) {
  char dir_template[] = "/tmp/pghaul-controller-config-test.XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  // Removed however the test ends.
  std::unique_ptr<const std::string, void (*)(const std::string*)> cleanup(
      &dir, [](const std::string* d) {
        std::error_code ignored;
        std::filesystem::remove_all(*d, ignored);
      });
  const std::string path = dir + "/controller.yaml";
  std::ofstream(path) << kFull;
  absl::StatusOr<ControllerConfig> config = LoadControllerConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->controller_id, "ctl-1.example");

  std::filesystem::remove_all(dir);
  config = LoadControllerConfig(path);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr(path));
}

TEST(ControllerConfigTest, TheDocumentedExamplesAreValid) {
  for (const char* name : {"controller.yaml", "minimal controller.yaml"}) {
    std::string yaml = DocumentedExample(name);
    ASSERT_FALSE(yaml.empty()) << name;
    absl::StatusOr<ControllerConfig> config = ParseControllerConfig(yaml, name);
    EXPECT_TRUE(config.ok()) << config.status();
  }
}

TEST(ControllerConfigTest, WithoutAnAccessSectionEveryCallerIsAdmin) {
  absl::StatusOr<ControllerConfig> config = ParseControllerConfig(kMinimal, "controller.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->access.configured);
  EXPECT_EQ(config->access.default_role, Role::kAdmin);
}

TEST(ControllerConfigTest, ReadsRolesAndTokens) {
  const std::string digest = AccessTokenDigest("pghaul_some-token-for-the-ci");
  absl::StatusOr<ControllerConfig> config = ParseControllerConfig(
      absl::StrCat(kMinimal, "access:\n  admin: [alice]\n  operator: [bob, carol]\n",
                   "  read_only: [dave]\n  tokens:\n    - \"ci operator ", digest, "\"\n"),
      "controller.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->access.configured);
  EXPECT_EQ(config->access.default_role, Role::kReadOnly);  // with a section: least privilege
  EXPECT_EQ(config->access.users.at("alice"), Role::kAdmin);
  EXPECT_EQ(config->access.users.at("carol"), Role::kOperator);
  EXPECT_EQ(config->access.users.at("dave"), Role::kReadOnly);
  ASSERT_EQ(config->access.tokens.size(), 1u);
  EXPECT_EQ(config->access.tokens[0].name, "ci");
  EXPECT_EQ(config->access.tokens[0].role, Role::kOperator);
  EXPECT_EQ(config->access.tokens[0].digest, digest);

  // Even an empty section means roles are in use.
  config = ParseControllerConfig(absl::StrCat(kMinimal, "access: {}\n"), "controller.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->access.configured);
  EXPECT_EQ(config->access.default_role, Role::kReadOnly);
}

TEST(ControllerConfigTest, RefusesAmbiguousOrMalformedAccess) {
  std::string error = ErrorOf(absl::StrCat(
      kMinimal,
      "access:\n  admin: [alice]\n  operator: [alice]\n  read_only: [carol, \"Bad Name\"]\n"
      "  default_role: root\n"
      "  tokens:\n    - \"ci admin sha256:abc\"\n    - \"x\"\n  superuser: [eve]\n"));
  EXPECT_THAT(error, HasSubstr("key 'access.admin': 'alice' is also listed under operator: give each user one "
                               "role"));
  EXPECT_THAT(error, HasSubstr("access.read_only[1]"));
  EXPECT_THAT(error, HasSubstr("access.default_role"));
  EXPECT_THAT(error, HasSubstr("access.tokens[0]': expected \"<name> <read-only|operator|admin> "
                               "sha256:<64 hex digits>\""));
  EXPECT_THAT(error, HasSubstr("access.tokens[1]"));
  EXPECT_THAT(error, HasSubstr("unknown key 'access.superuser'"));

  const std::string digest = AccessTokenDigest("pghaul_some-token-for-the-ci");
  error = ErrorOf(absl::StrCat(kMinimal, "access:\n  tokens:\n    - \"a admin ", digest,
                               "\"\n    - \"b read-only ", digest, "\"\n"));
  EXPECT_THAT(error, HasSubstr("the same token is listed for 'a' and 'b'"));
}

}  // namespace
}  // namespace pghaul::controller
