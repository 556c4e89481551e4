// The `patroni` section of agent.yaml (agent/patroni_config.h), read through ParseAgentConfig.
#include "agent/patroni_config.h"

#include <fstream>
#include <sstream>
#include <string>

#include "agent/agent_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kBase[] = R"yaml(
agent_id: db1
controller:
  address: controller.example.com:7443
  insecure: true
data_directory: /var/lib/postgresql/15/main
)yaml";

absl::StatusOr<AgentConfig> Parse(const std::string& patroni_section) {
  return ParseAgentConfig(std::string(kBase) + patroni_section, "agent.yaml");
}

TEST(PatroniConfigTest, AnAgentWithoutTheSectionIsNotInPatroniMode) {
  absl::StatusOr<AgentConfig> config = Parse("");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->patroni.has_value());
}

TEST(PatroniConfigTest, SystemdIsTheDefaultControlWithPatroniServiceAsUnit) {
  absl::StatusOr<AgentConfig> config = Parse(R"yaml(
patroni:
  config_file: /etc/patroni/patroni.yml
  rest_api: {address: 10.0.0.5:8008}
)yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->patroni.has_value());
  const PatroniConfig& patroni = *config->patroni;
  EXPECT_EQ(patroni.config_file, "/etc/patroni/patroni.yml");
  EXPECT_EQ(patroni.dcs, "etcd3");
  EXPECT_EQ(patroni.rest_api_host, "10.0.0.5");
  EXPECT_EQ(patroni.rest_api_port, 8008);
  EXPECT_EQ(patroni.RestApiAddress(), "10.0.0.5:8008");
  EXPECT_EQ(patroni.request_timeout, absl::Seconds(5));
  EXPECT_EQ(patroni.control, PatroniConfig::Control::kSystemd);
  EXPECT_EQ(patroni.unit, "patroni.service");
  EXPECT_EQ(patroni.systemctl, "/usr/bin/systemctl");
  EXPECT_TRUE(patroni.rest_api_username.empty());
}

TEST(PatroniConfigTest, ReadsEveryKeyOfTheCommandMethod) {
  absl::StatusOr<AgentConfig> config = Parse(R"yaml(
patroni:
  config_file: /srv/patroni/patroni.yml
  dcs: etcd3
  rest_api:
    address: "[::1]:8009"
    username: patroni
    password_file: /etc/pghaul/patroni-rest
    timeout: 750ms
  control:
    method: command
    command: [/usr/bin/patroni, /srv/patroni/patroni.yml]
    log_file: /var/log/patroni.log
)yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const PatroniConfig& patroni = *config->patroni;
  EXPECT_EQ(patroni.rest_api_host, "::1");
  EXPECT_EQ(patroni.rest_api_port, 8009);
  EXPECT_EQ(patroni.RestApiAddress(), "[::1]:8009");
  EXPECT_EQ(patroni.rest_api_username, "patroni");
  EXPECT_EQ(patroni.rest_api_password_file, "/etc/pghaul/patroni-rest");
  EXPECT_EQ(patroni.request_timeout, absl::Milliseconds(750));
  EXPECT_EQ(patroni.control, PatroniConfig::Control::kCommand);
  EXPECT_THAT(patroni.command, ElementsAre("/usr/bin/patroni", "/srv/patroni/patroni.yml"));
  EXPECT_EQ(patroni.log_file, "/var/log/patroni.log");
}

TEST(PatroniConfigTest, RequiresConfigFileAndRestApiAddress) {
  absl::StatusOr<AgentConfig> config = Parse("patroni: {}\n");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("missing required key 'patroni.config_file'"));
  EXPECT_THAT(config.status().message(),
              HasSubstr("missing required key 'patroni.rest_api.address'"));
}

TEST(PatroniConfigTest, RefusesTheEtcdV2DcsWithTheReason) {
  absl::StatusOr<AgentConfig> config = Parse(R"yaml(
patroni:
  config_file: /etc/patroni/patroni.yml
  dcs: etcd
  rest_api: {address: 127.0.0.1:8008}
)yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("key 'patroni.dcs'"));
  EXPECT_THAT(config.status().message(), HasSubstr("etcd3"));
}

TEST(PatroniConfigTest, RefusesBadValuesNamingTheirKeys) {
  absl::StatusOr<AgentConfig> config = Parse(R"yaml(
patroni:
  config_file: patroni.yml
  dcs: consul
  rest_api: {address: "localhost", timeout: 2m}
  control: {method: supervisord, unit: "-bad"}
)yaml");
  ASSERT_FALSE(config.ok());
  const std::string message(config.status().message());
  EXPECT_THAT(message, HasSubstr("key 'patroni.config_file'"));
  EXPECT_THAT(message, HasSubstr("key 'patroni.dcs'"));
  EXPECT_THAT(message, HasSubstr("key 'patroni.rest_api.address'"));
  EXPECT_THAT(message, HasSubstr("key 'patroni.rest_api.timeout'"));
  EXPECT_THAT(message, HasSubstr("key 'patroni.control.method'"));
  EXPECT_THAT(message, HasSubstr("key 'patroni.control.unit'"));
}

TEST(PatroniConfigTest, UsernameAndPasswordFileGoTogether) {
  absl::StatusOr<AgentConfig> config = Parse(R"yaml(
patroni:
  config_file: /etc/patroni/patroni.yml
  rest_api: {address: 127.0.0.1:8008, username: patroni}
)yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("patroni.rest_api.password_file"));
  config = Parse(R"yaml(
patroni:
  config_file: /etc/patroni/patroni.yml
  rest_api: {address: 127.0.0.1:8008, password_file: /etc/pw}
)yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("patroni.rest_api.username"));
}

TEST(PatroniConfigTest, TheCommandMethodNeedsAnAbsoluteArgvAndALogFile) {
  absl::StatusOr<AgentConfig> config = Parse(R"yaml(
patroni:
  config_file: /etc/patroni/patroni.yml
  rest_api: {address: 127.0.0.1:8008}
  control: {method: command}
)yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("key 'patroni.control.command'"));
  EXPECT_THAT(config.status().message(), HasSubstr("key 'patroni.control.log_file'"));
  config = Parse(R"yaml(
patroni:
  config_file: /etc/patroni/patroni.yml
  rest_api: {address: 127.0.0.1:8008}
  control: {method: command, command: [patroni, x.yml], log_file: /tmp/p.log}
)yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("absolute path"));
}

TEST(PatroniConfigTest, RefusesKeysOfTheOtherMethod) {
  absl::StatusOr<AgentConfig> config = Parse(R"yaml(
patroni:
  config_file: /etc/patroni/patroni.yml
  rest_api: {address: 127.0.0.1:8008}
  control: {method: systemd, command: [/usr/bin/patroni], log_file: /tmp/p.log}
)yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("only for method command"));
  config = Parse(R"yaml(
patroni:
  config_file: /etc/patroni/patroni.yml
  rest_api: {address: 127.0.0.1:8008}
  control: {method: command, command: [/usr/bin/patroni], log_file: /tmp/p.log,
            unit: patroni.service}
)yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("only for method systemd"));
}

TEST(PatroniConfigTest, RefusesUnknownKeysInsideTheSection) {
  absl::StatusOr<AgentConfig> config = Parse(R"yaml(
patroni:
  config_file: /etc/patroni/patroni.yml
  rest_api: {address: 127.0.0.1:8008, adress: x}
)yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("unknown key 'patroni.rest_api.adress'"));
}

// The YAML block after "<!-- example: <name> " in docs/<doc>, so documented examples parse.
std::string DocumentedExample(const std::string& doc, const std::string& name) {
  std::string file = __FILE__;
  std::string path = file.substr(0, file.rfind("tests/unit/")) + "docs/" + doc;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string markdown = text.str();
  size_t marker = markdown.find("<!-- example: " + name + " ");
  EXPECT_NE(marker, std::string::npos) << "no example '" << name << "' in " << path;
  if (marker == std::string::npos) return "";
  size_t start = markdown.find("```yaml\n", marker);
  size_t end = markdown.find("```\n", start + 8);
  if (start == std::string::npos || end == std::string::npos) return "";
  return markdown.substr(start + 8, end - start - 8);
}

TEST(PatroniConfigTest, TheDocumentedExamplesParse) {
  absl::StatusOr<AgentConfig> systemd =
      Parse(DocumentedExample("configuration.md", "patroni section"));
  ASSERT_TRUE(systemd.ok()) << systemd.status();
  ASSERT_TRUE(systemd->patroni.has_value());
  EXPECT_EQ(systemd->patroni->control, PatroniConfig::Control::kSystemd);
  EXPECT_EQ(systemd->patroni->rest_api_username, "patroni");
  absl::StatusOr<AgentConfig> command =
      Parse(DocumentedExample("patroni.md", "patroni command method"));
  ASSERT_TRUE(command.ok()) << command.status();
  ASSERT_TRUE(command->patroni.has_value());
  EXPECT_EQ(command->patroni->control, PatroniConfig::Control::kCommand);
  EXPECT_EQ(command->patroni->log_file, "/var/log/patroni/patroni.log");
}

// ---- patroni.yml itself (ParsePatroniFileSettings) ----

TEST(PatroniFileSettingsTest, ReadsTheUsernamesAndPgHbaOfACharmStyleConfig) {
  absl::StatusOr<PatroniFileSettings> settings = ParsePatroniFileSettings(R"yaml(
scope: newdb
bootstrap:
  dcs:
    postgresql:
      pg_hba: [host all all 0.0.0.0/0 md5]
postgresql:
  authentication:
    superuser: {username: operator, password: op-secret}
    replication: {username: replication, password: repl-secret}
    rewind:
      username: rewind
      password: rewind-secret
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 scram-sha-256
)yaml");
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->superuser, "operator");
  EXPECT_EQ(settings->replication, "replication");
  EXPECT_EQ(settings->rewind, "rewind");
  // The local pg_hba wins over the bootstrap one.
  EXPECT_THAT(settings->pg_hba,
              ElementsAre("local all all trust", "host all all 127.0.0.1/32 scram-sha-256"));
  // The passwords, for the restore only, and where the cluster lives in the DCS.
  EXPECT_EQ(settings->superuser_password, "op-secret");
  EXPECT_EQ(settings->replication_password, "repl-secret");
  EXPECT_EQ(settings->rewind_password, "rewind-secret");
  EXPECT_EQ(settings->scope, "newdb");
  EXPECT_EQ(settings->ClusterPrefix(), "/service/newdb/");
  EXPECT_TRUE(settings->etcd3_hosts.empty());
}

TEST(PatroniFileSettingsTest, ReadsTheEtcd3HostsAndNamespace) {
  absl::StatusOr<PatroniFileSettings> list = ParsePatroniFileSettings(R"yaml(
scope: db
namespace: /pg/
etcd3:
  hosts: [10.0.0.1:2379, "10.0.0.2:2379"]
)yaml");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(list->etcd3_hosts, ElementsAre("10.0.0.1:2379", "10.0.0.2:2379"));
  EXPECT_EQ(list->ClusterPrefix(), "/pg/db/");
  EXPECT_TRUE(list->etcd3_unsupported.empty());
  EXPECT_EQ(list->superuser_password, std::nullopt);

  // A comma-separated string, a single host, namespace without slashes (Patroni's default is
  // "service"), and what the agent cannot do with etcd itself.
  absl::StatusOr<PatroniFileSettings> text = ParsePatroniFileSettings(
      "scope: db\nnamespace: svc\netcd3: {hosts: 'a:1, b:2', host: 'c:3', protocol: https, "
      "username: u, password: p}");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(text->etcd3_hosts, ElementsAre("c:3", "a:1", "b:2"));
  EXPECT_EQ(text->ClusterPrefix(), "/svc/db/");
  EXPECT_THAT(text->etcd3_unsupported, ElementsAre("etcd3.protocol https", "etcd3.username"));
}

TEST(PatroniFileSettingsTest, UnderstandsPatronisOlderLayoutAndDefaults) {
  // No authentication section: postgresql.superuser / replication, pg_hba from bootstrap.dcs.
  absl::StatusOr<PatroniFileSettings> old = ParsePatroniFileSettings(R"yaml(
bootstrap:
  dcs:
    postgresql:
      pg_hba: ["host replication repl 10.0.0.0/8 md5"]
postgresql:
  superuser: {username: admin, password: x}
  replication: {username: repl, password: y}
)yaml");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->superuser, "admin");
  EXPECT_EQ(old->replication, "repl");
  EXPECT_EQ(old->rewind, "");
  EXPECT_THAT(old->pg_hba, ElementsAre("host replication repl 10.0.0.0/8 md5"));

  // pg_rewind stands in for a missing superuser; nothing at all is fine too.
  absl::StatusOr<PatroniFileSettings> rewind = ParsePatroniFileSettings(
      "postgresql: {authentication: {replication: {username: r}}, pg_rewind: {username: pr}}");
  ASSERT_TRUE(rewind.ok()) << rewind.status();
  EXPECT_EQ(rewind->superuser, "pr");
  absl::StatusOr<PatroniFileSettings> empty = ParsePatroniFileSettings("scope: x");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->superuser, "");
  EXPECT_TRUE(empty->pg_hba.empty());
}

TEST(PatroniFileSettingsTest, RefusesWhatIsNotAPatroniConfigWithoutQuotingPasswords) {
  for (const char* text :
       {"[1, 2]", "postgresql: {authentication: {superuser: operator}}",
        "postgresql: {pg_hba: local all all trust}", "postgresql: {pg_hba: [[a, b]]}",
        "postgresql: {authentication: {superuser: {username: [a]}}}",
        "postgresql: {authentication: {superuser: {password: 'p4ss"}) {
    absl::StatusOr<PatroniFileSettings> settings = ParsePatroniFileSettings(text);
    EXPECT_TRUE(absl::IsInvalidArgument(settings.status())) << text << ": " << settings.status();
    EXPECT_THAT(settings.status().message(), ::testing::Not(HasSubstr("p4ss")));
  }
}

TEST(PatroniFileSettingsTest, AMissingFileIsNamed) {
  absl::StatusOr<PatroniFileSettings> settings =
      ReadPatroniFileSettings("/nonexistent/pghaul/patroni.yml");
  EXPECT_FALSE(settings.ok());
  EXPECT_THAT(settings.status().message(), HasSubstr("/nonexistent/pghaul/patroni.yml"));
}

}  // namespace
}  // namespace pghaul::agent
