#include "agent/agent_config.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libpq-fe.h"

namespace pghaul::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kMinimal[] = R"yaml(
agent_id: db1
controller:
  address: controller.example.com:7443
  insecure: true
data_directory: /var/lib/postgresql/15/main
)yaml";

constexpr char kFull[] = R"yaml(
agent_id: legacy-db.01_a
controller:
  address: "[2001:db8::5]:7443"
  insecure: true
postgres:
  socket_dir: /run/pg
  port: 5433
  user: pghaul
  database: ops
data_directory: /srv/pg/15/main
pgbackrest:
  binary: /opt/pgbackrest/bin/pgbackrest
state_dir: /srv/pghaul-agent
service:
  method: pg_ctlcluster
  pg_ctl: /opt/pg/bin/pg_ctl
  pg_ctlcluster: /opt/pg/bin/pg_ctlcluster
  cluster_version: 15
  cluster_name: legacy
  systemctl: /bin/systemctl
  unit: postgresql@15-legacy.service
  log_file: /var/log/postgresql/pghaul.log
  pg_ctl_options: ["-p 5433", "-k /run/pg"]
  run_as_prefix:
    - /usr/sbin/runuser
    - -u
    - postgres
    - --
facts_interval: 1m
reconnect:
  initial: 250ms
  max: 1m
log:
  level: debug
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
  absl::StatusOr<AgentConfig> config = ParseAgentConfig(yaml, "agent.yaml");
  EXPECT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

// Replaces the line starting with `prefix` (after indentation) in kMinimal.
std::string MinimalWith(const std::string& from, const std::string& to) {
  std::string yaml = kMinimal;
  size_t at = yaml.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return yaml.replace(at, from.size(), to);
}

TEST(AgentConfigTest, ReadsEveryKeyOfAFullConfig) {
  absl::StatusOr<AgentConfig> config = ParseAgentConfig(kFull, "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->agent_id, "legacy-db.01_a");
  EXPECT_EQ(config->controller_address, "[2001:db8::5]:7443");
  EXPECT_TRUE(config->controller_insecure);
  EXPECT_EQ(config->postgres.socket_dir, "/run/pg");
  EXPECT_EQ(config->postgres.port, 5433);
  EXPECT_EQ(config->postgres.user, "pghaul");
  EXPECT_EQ(config->postgres.database, "ops");
  EXPECT_EQ(config->data_directory, "/srv/pg/15/main");
  EXPECT_EQ(config->pgbackrest_binary, "/opt/pgbackrest/bin/pgbackrest");
  EXPECT_EQ(config->state_dir, "/srv/pghaul-agent");
  EXPECT_EQ(config->service.method, ServiceControlConfig::Method::kPgCtlCluster);
  EXPECT_EQ(config->service.pg_ctl, "/opt/pg/bin/pg_ctl");
  EXPECT_EQ(config->service.pg_ctlcluster, "/opt/pg/bin/pg_ctlcluster");
  EXPECT_EQ(config->service.cluster_version, "15");
  EXPECT_EQ(config->service.cluster_name, "legacy");
  EXPECT_EQ(config->service.systemctl, "/bin/systemctl");
  EXPECT_EQ(config->service.unit, "postgresql@15-legacy.service");
  EXPECT_EQ(config->service.log_file, "/var/log/postgresql/pghaul.log");
  EXPECT_THAT(config->service.pg_ctl_options, ElementsAre("-p 5433", "-k /run/pg"));
  EXPECT_THAT(config->service.run_as_prefix,
              ElementsAre("/usr/sbin/runuser", "-u", "postgres", "--"));
  EXPECT_EQ(config->service.data_directory, "/srv/pg/15/main");
  EXPECT_EQ(config->facts_interval, absl::Minutes(1));
  EXPECT_EQ(config->reconnect_initial, absl::Milliseconds(250));
  EXPECT_EQ(config->reconnect_max, absl::Minutes(1));
  EXPECT_EQ(config->log_level, "debug");
  EXPECT_EQ(config->log_format, "text");
}

TEST(AgentConfigTest, OmittedKeysTakeTheDocumentedDefaults) {
  absl::StatusOr<AgentConfig> config = ParseAgentConfig(kMinimal, "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->postgres.socket_dir, "/var/run/postgresql");
  EXPECT_EQ(config->postgres.port, 5432);
  EXPECT_EQ(config->postgres.user, "postgres");
  EXPECT_EQ(config->postgres.database, "postgres");
  EXPECT_EQ(config->pgbackrest_binary, "/usr/bin/pgbackrest");
  EXPECT_EQ(config->state_dir, "/var/lib/pghaul-agent");
  const ServiceControlConfig defaults;
  EXPECT_EQ(config->service.method, ServiceControlConfig::Method::kPgCtl);
  EXPECT_EQ(config->service.pg_ctl, defaults.pg_ctl);
  EXPECT_EQ(config->service.unit, defaults.unit);
  EXPECT_TRUE(config->service.pg_ctl_options.empty());
  EXPECT_TRUE(config->service.run_as_prefix.empty());
  EXPECT_EQ(config->service.data_directory, "/var/lib/postgresql/15/main");
  EXPECT_EQ(config->facts_interval, absl::Seconds(30));
  EXPECT_EQ(config->reconnect_initial, absl::Seconds(1));
  EXPECT_EQ(config->reconnect_max, absl::Seconds(30));
  EXPECT_EQ(config->log_level, "info");
  EXPECT_EQ(config->log_format, "json");
  EXPECT_EQ(config->checks_user, "");  // application checks refused
}

TEST(AgentConfigTest, ReadsTheApplicationChecksRole) {
  absl::StatusOr<AgentConfig> config = ParseAgentConfig(
      std::string(kMinimal) + "application_checks: {user: pghaul_checks}\n", "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->checks_user, "pghaul_checks");
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "application_checks: {user: \"a\\nb\"}\n"),
              HasSubstr("key 'application_checks.user': expected a PostgreSQL role name"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "application_checks: {role: x}\n"),
              HasSubstr("unknown key 'application_checks.role'"));
}

TEST(AgentConfigTest, ReadsTheTlsFilesAndServerNameInsteadOfInsecure) {
  absl::StatusOr<AgentConfig> config = ParseAgentConfig(
      MinimalWith("  insecure: true\n",
                  "  tls:\n    ca: /etc/pghaul/tls/ca.crt\n    cert: /etc/pghaul/tls/db1.crt\n"
                  "    key: /etc/pghaul/tls/db1.key\n    server_name: ctl.example.com\n"),
      "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->controller_insecure);
  EXPECT_EQ(config->controller_tls.ca, "/etc/pghaul/tls/ca.crt");
  EXPECT_EQ(config->controller_tls.cert, "/etc/pghaul/tls/db1.crt");
  EXPECT_EQ(config->controller_tls.key, "/etc/pghaul/tls/db1.key");
  EXPECT_EQ(config->controller_tls_server_name, "ctl.example.com");
}

TEST(AgentConfigTest, RefusesToLoadWithNeitherTlsNorInsecure) {
  std::string message = ErrorOf(MinimalWith("  insecure: true\n", ""));
  EXPECT_THAT(message, HasSubstr("key 'controller.tls': missing: set controller.tls.ca, "
                                 "controller.tls.cert and controller.tls.key"));
  EXPECT_THAT(message, HasSubstr("'controller.insecure: true'"));

  message = ErrorOf(MinimalWith("insecure: true", "insecure: false"));
  EXPECT_THAT(message, HasSubstr("key 'controller.tls': missing"));

  // A value that is not a boolean gets the boolean error only.
  message = ErrorOf(MinimalWith("insecure: true", "insecure: sure"));
  EXPECT_THAT(message, HasSubstr("key 'controller.insecure': expected true or false"));
  EXPECT_THAT(message, testing::Not(HasSubstr("tls")));
}

TEST(AgentConfigTest, RefusesTlsTogetherWithInsecureAndIncompleteOrRelativeTlsFiles) {
  EXPECT_THAT(ErrorOf(MinimalWith("  insecure: true\n",
                                  "  insecure: true\n  tls: {ca: /a, cert: /b, key: /c}\n")),
              HasSubstr("key 'controller.insecure': is true while 'controller.tls' is set: "
                        "choose one"));
  std::string message =
      ErrorOf(MinimalWith("  insecure: true\n", "  tls: {ca: ca.crt, cert: /b}\n"));
  EXPECT_THAT(message, HasSubstr("key 'controller.tls.ca': expected an absolute path"));
  EXPECT_THAT(message, HasSubstr("missing required key 'controller.tls.key'"));
  EXPECT_THAT(ErrorOf(MinimalWith("  insecure: true\n",
                                  "  tls: {ca: /a, cert: /b, key: /c, server_name: \"a b\"}\n")),
              HasSubstr("key 'controller.tls.server_name': expected a DNS name or IPv4 address"));
}

TEST(AgentConfigTest, NamesEachMissingRequiredKey) {
  std::string message = ErrorOf("controller:\n  insecure: true\n");
  EXPECT_THAT(message, HasSubstr("missing required key 'agent_id'"));
  EXPECT_THAT(message, HasSubstr("missing required key 'controller.address'"));
  EXPECT_THAT(message, HasSubstr("missing required key 'data_directory'"));
}

TEST(AgentConfigTest, RefusesAnAgentIdOutsideTheAllowedCharacters) {
  std::string message = ErrorOf(MinimalWith("agent_id: db1", "agent_id: DB_1"));
  EXPECT_THAT(message, HasSubstr("key 'agent_id': expected 1 to 63 characters of a-z, 0-9"));
  EXPECT_THAT(message, HasSubstr("got \"DB_1\""));
  EXPECT_THAT(ErrorOf(MinimalWith("agent_id: db1", "agent_id: -db1")), HasSubstr("'agent_id'"));
  EXPECT_THAT(ErrorOf(MinimalWith("agent_id: db1", "agent_id: " + std::string(64, 'a'))),
              HasSubstr("'agent_id'"));
}

TEST(AgentConfigTest, ReadsRunAsAndRefusesRootOrABadName) {
  absl::StatusOr<AgentConfig> config =
      ParseAgentConfig(std::string(kMinimal) + "run_as: postgres\n", "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->run_as, "postgres");
  EXPECT_EQ(ParseAgentConfig(kMinimal, "agent.yaml")->run_as, "");
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "run_as: root\n"),
              HasSubstr("key 'run_as': expected an OS user name other than root"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "run_as: \"pg;rm\"\n"), HasSubstr("'run_as'"));
}

TEST(AgentConfigTest, RefusesAControllerAddressWithoutAValidPort) {
  EXPECT_THAT(ErrorOf(MinimalWith("controller.example.com:7443", "controller.example.com")),
              HasSubstr("key 'controller.address': expected host:port with a port from 1 to "
                        "65535"));
  EXPECT_THAT(ErrorOf(MinimalWith("controller.example.com:7443", "controller.example.com:0")),
              HasSubstr("key 'controller.address'"));
}

TEST(AgentConfigTest, RefusesABadPortAndRelativePaths) {
  std::string yaml = std::string(kMinimal) + "postgres:\n  port: abc\n  socket_dir: run\n" +
                     "pgbackrest:\n  binary: pgbackrest\nstate_dir: state\n";
  std::string message = ErrorOf(yaml);
  EXPECT_THAT(message, HasSubstr("key 'postgres.port': expected an integer from 1 to 65535, got "
                                 "\"abc\""));
  EXPECT_THAT(message, HasSubstr("key 'postgres.socket_dir': expected an absolute path"));
  EXPECT_THAT(message, HasSubstr("key 'pgbackrest.binary': expected an absolute path"));
  EXPECT_THAT(message, HasSubstr("key 'state_dir': expected an absolute path"));
  EXPECT_THAT(ErrorOf(MinimalWith("/var/lib/postgresql/15/main", "main")),
              HasSubstr("key 'data_directory': expected an absolute path, got \"main\""));
}

TEST(AgentConfigTest, RefusesAnUnknownKeyAndListsTheKnownOnes) {
  std::string message = ErrorOf(std::string(kMinimal) + "postgres:\n  sockt_dir: /run/pg\n");
  EXPECT_THAT(message, HasSubstr("unknown key 'postgres.sockt_dir' (known keys: socket_dir, "
                                 "port, user, database)"));
}

TEST(AgentConfigTest, RefusesAnInitialReconnectDelayLongerThanTheMaximum) {
  std::string message = ErrorOf(std::string(kMinimal) + "reconnect:\n  initial: 1m\n  max: 10s\n");
  EXPECT_THAT(message, HasSubstr("key 'reconnect.initial': must not be longer than "
                                 "reconnect.max (1m > 10s)"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "facts_interval: 2\n"),
              HasSubstr("key 'facts_interval': expected a duration from 1s to 24h"));
}

TEST(AgentConfigTest, RefusesAnUnknownLogLevelOrFormat) {
  std::string message = ErrorOf(std::string(kMinimal) + "log:\n  level: verbose\n  format: xml\n");
  EXPECT_THAT(message, HasSubstr("key 'log.level': expected one of: trace, debug, info, warn, "
                                 "error, off, got \"verbose\""));
  EXPECT_THAT(message, HasSubstr("key 'log.format': expected one of: text, json, got \"xml\""));
}

TEST(AgentConfigTest, RefusesAServiceSectionTheAgentCouldNotActOn) {
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "service:\n  method: init.d\n"),
              HasSubstr("key 'service.method': expected one of: pg_ctl, pg_ctlcluster, systemd, "
                        "got \"init.d\""));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "service:\n  pg_ctl_options: -p 5433\n"),
              HasSubstr("key 'service.pg_ctl_options': expected a list of strings, got "
                        "\"-p 5433\""));
  EXPECT_THAT(
      ErrorOf(std::string(kMinimal) + "service:\n  run_as_prefix: [/usr/sbin/runuser, {a: 1}]\n"),
      HasSubstr("key 'service.run_as_prefix[1]': expected a string, got a mapping"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "service:\n  log_file: pg.log\n"),
              HasSubstr("key 'service.log_file': expected an absolute path"));

  // What only service control itself knows is checked by it, at load time.
  std::string message =
      ErrorOf(std::string(kMinimal) + "service:\n  method: systemd\n  unit: \"bad unit\"\n");
  EXPECT_THAT(message, HasSubstr("key 'service.method': cannot START the server with method "
                                 "systemd: unit \"bad unit\" is not a systemd unit name"));
  message = ErrorOf(std::string(kMinimal) +
                    "service:\n  pg_ctl_options: [\"-c archive_command='cp %p /x; rm -rf /'\"]\n");
  EXPECT_THAT(message, HasSubstr("key 'service.method': cannot START the server with method "
                                 "pg_ctl: "));
  EXPECT_THAT(message, HasSubstr("shell control character"));
  message = ErrorOf(std::string(kMinimal) +
                    "service:\n  method: pg_ctlcluster\n"
                    "  cluster_version: fifteen\n");
  EXPECT_THAT(message, HasSubstr("cluster_version must look like 15 or 9.6"));
}

TEST(AgentConfigTest, ConnInfoQuotesValuesSoLibpqReadsThemBack) {
  PostgresConnection conn;
  conn.socket_dir = "/tmp/it's a \\dir";
  conn.port = 5433;
  conn.user = "o'brien";
  conn.database = "db name=x";
  std::string conninfo = conn.ConnInfo();
  EXPECT_EQ(conninfo,
            "host='/tmp/it\\'s a \\\\dir' port=5433 user='o\\'brien' dbname='db name=x' "
            "connect_timeout=5 application_name=pghaul-agent");

  // libpq's own parser gives back exactly the values.
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  ASSERT_NE(options, nullptr) << (error != nullptr ? error : "");
  std::map<std::string, std::string> values;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) values[o->keyword] = o->val;
  }
  PQconninfoFree(options);
  EXPECT_EQ(values["host"], conn.socket_dir);
  EXPECT_EQ(values["port"], "5433");
  EXPECT_EQ(values["user"], conn.user);
  EXPECT_EQ(values["dbname"], conn.database);
  EXPECT_EQ(values["connect_timeout"], "5");
  EXPECT_EQ(values["application_name"], "pghaul-agent");

  EXPECT_THAT(conn.ConnInfoForDatabase("other"), HasSubstr(" dbname='other' "));
}

TEST(AgentConfigTest, LoadReadsTheFileAndNamesAMissingOne) {
  char dir_template[] = "/tmp/pghaul-agent-config-test.XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  // Removed however the test ends.
  std::unique_ptr<const std::string, void (*)(const std::string*)> cleanup(
      &dir, [](const std::string* d) {
        std::error_code ignored;
        std::filesystem::remove_all(*d, ignored);
      });
  const std::string path = dir + "/agent.yaml";
  std::ofstream(path) << kMinimal;
  absl::StatusOr<AgentConfig> config = LoadAgentConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->agent_id, "db1");

  std::ofstream(path) << "agent_id: [\n";
  config = LoadAgentConfig(path);
  EXPECT_THAT(config.status().message(), HasSubstr(path + ": line"));

  std::filesystem::remove_all(dir);
  config = LoadAgentConfig(path);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr(path));
}

TEST(AgentConfigTest, TheDocumentedExamplesAreValid) {
  for (const char* name : {"agent.yaml", "minimal agent.yaml"}) {
    std::string yaml = DocumentedExample(name);
    ASSERT_FALSE(yaml.empty()) << name;
    absl::StatusOr<AgentConfig> config = ParseAgentConfig(yaml, name);
    EXPECT_TRUE(config.ok()) << config.status();
  }
}

}  // namespace
}  // namespace pghaul::agent
