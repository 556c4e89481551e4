#include "common/config_reader.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A small schema in the style of the real config files.
struct Settings {
  std::string name;
  std::string mode = "fast";
  bool enabled = false;
  int port = 5432;
  absl::Duration interval = absl::Seconds(2);
  std::string socket_dir = "/var/run/postgresql";
};

absl::Status ReadSettings(const std::string& yaml, Settings* settings) {
  absl::StatusOr<ConfigReader> root = ConfigReader::Parse(yaml, "test.yaml");
  if (!root.ok()) return root.status();
  const StringRule absolute = AbsolutePathRule();
  root->String("name", &settings->name, kRequired);
  root->OneOf("mode", &settings->mode, {"fast", "slow"});
  root->Bool("enabled", &settings->enabled);
  root->Duration("interval", &settings->interval, absl::Milliseconds(100), absl::Seconds(60));
  ConfigReader postgres = root->Section("postgres");
  postgres.String("socket_dir", &settings->socket_dir, kOptional, &absolute);
  postgres.Int("port", &settings->port, 1, 65535);
  std::string user;
  postgres.String("user", &user);
  return root->Finish();
}

TEST(ConfigReaderTest, ReadsTypedValuesFromNestedSections) {
  Settings settings;
  absl::Status status = ReadSettings(R"yaml(
name: db1
mode: slow
enabled: TRUE
interval: 1500ms
postgres:
  socket_dir: /tmp/sockets
  port: 6543
)yaml",
                                     &settings);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(settings.name, "db1");
  EXPECT_EQ(settings.mode, "slow");
  EXPECT_TRUE(settings.enabled);
  EXPECT_EQ(settings.interval, absl::Milliseconds(1500));
  EXPECT_EQ(settings.socket_dir, "/tmp/sockets");
  EXPECT_EQ(settings.port, 6543);
}

TEST(ConfigReaderTest, AbsentOptionalKeysAndEmptySectionsKeepTheDefaults) {
  Settings settings;
  absl::Status status = ReadSettings("name: db1\npostgres:\n", &settings);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(settings.mode, "fast");
  EXPECT_FALSE(settings.enabled);
  EXPECT_EQ(settings.port, 5432);
  EXPECT_EQ(settings.interval, absl::Seconds(2));
  EXPECT_EQ(settings.socket_dir, "/var/run/postgresql");
}

TEST(ConfigReaderTest, NamesTheKeyTheRangeAndTheValueOfABadInteger) {
  Settings settings;
  absl::Status status = ReadSettings("name: x\npostgres:\n  port: abc\n", &settings);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "test.yaml: key 'postgres.port': expected an integer from 1 to 65535, got \"abc\" "
            "at line 3");

  status = ReadSettings("name: x\npostgres:\n  port: 70000\n", &settings);
  EXPECT_THAT(status.message(), HasSubstr("key 'postgres.port': expected an integer from 1 to "
                                          "65535, got \"70000\""));
  EXPECT_EQ(settings.port, 5432);
}

TEST(ConfigReaderTest, ListsTheKnownKeysForAnUnknownOne) {
  Settings settings;
  absl::Status status = ReadSettings("name: x\npostgres:\n  sockt_dir: /tmp\n", &settings);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "test.yaml: unknown key 'postgres.sockt_dir' (known keys: socket_dir, port, user) "
            "at line 3");
}

TEST(ConfigReaderTest, NamesAMissingRequiredKeyWithItsFullPath) {
  absl::StatusOr<ConfigReader> root = ConfigReader::Parse("other: 1\n", "test.yaml");
  ASSERT_TRUE(root.ok());
  std::string name;
  std::string address;
  root->String("name", &name, kRequired);
  root->String("other", &name);
  root->Section("controller").String("address", &address, kRequired);
  absl::Status status = root->Finish();
  EXPECT_EQ(status.message(),
            "test.yaml: 2 problems: missing required key 'name'; missing required key "
            "'controller.address'");
}

TEST(ConfigReaderTest, ReportsEveryProblemAtOnceUnknownKeysFirst) {
  Settings settings;
  absl::Status status =
      ReadSettings("nmae: x\nmode: medium\nenabled: maybe\ninterval: 5 seconds\n", &settings);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              StartsWith("test.yaml: 5 problems: unknown key 'nmae' (known "
                         "keys: name, mode, enabled, interval, postgres)"));
  EXPECT_THAT(status.message(), HasSubstr("missing required key 'name'"));
  EXPECT_THAT(status.message(),
              HasSubstr("key 'mode': expected one of: fast, slow, got \"medium\" at line 2"));
  EXPECT_THAT(status.message(),
              HasSubstr("key 'enabled': expected true or false, got \"maybe\" at line 3"));
  EXPECT_THAT(status.message(),
              HasSubstr("key 'interval': expected a duration from 100ms to 1m, such as \"2s\" "
                        "or \"500ms\", got \"5 seconds\" at line 4"));
}

TEST(ConfigReaderTest, RefusesDurationsOutsideTheRange) {
  Settings settings;
  absl::Status status = ReadSettings("name: x\ninterval: 10ms\n", &settings);
  EXPECT_THAT(status.message(), HasSubstr("key 'interval': expected a duration from 100ms to 1m"));
  status = ReadSettings("name: x\ninterval: inf\n", &settings);
  EXPECT_THAT(status.message(), HasSubstr("got \"inf\""));
}

TEST(ConfigReaderTest, SaysWhatKindOfValueWasFoundInsteadOfAScalar) {
  Settings settings;
  absl::Status status = ReadSettings("name:\n  first: a\nmode: [fast]\nenabled:\n", &settings);
  EXPECT_THAT(status.message(), HasSubstr("key 'name': expected a string, got a mapping"));
  EXPECT_THAT(status.message(), HasSubstr("key 'mode': expected one of: fast, slow, got a list"));
  EXPECT_THAT(status.message(), HasSubstr("key 'enabled': expected true or false, got nothing"));
}

TEST(ConfigReaderTest, RefusesASectionThatIsNotAMapping) {
  Settings settings;
  absl::Status status = ReadSettings("name: x\npostgres: yes\n", &settings);
  EXPECT_THAT(status.message(),
              HasSubstr("key 'postgres': expected a mapping of keys to values, got \"yes\""));
}

TEST(ConfigReaderTest, AppliesStringRules) {
  Settings settings;
  absl::Status status = ReadSettings("name: x\npostgres:\n  socket_dir: run/pg\n", &settings);
  EXPECT_THAT(status.message(), HasSubstr("key 'postgres.socket_dir': expected an absolute path, "
                                          "got \"run/pg\""));
}

TEST(ConfigReaderTest, ReportsARepeatedKey) {
  Settings settings;
  absl::Status status = ReadSettings("name: x\nname: y\n", &settings);
  EXPECT_THAT(status.message(), HasSubstr("key 'name' appears more than once at line 2"));
}

TEST(ConfigReaderTest, EscapesControlBytesInQuotedValues) {
  Settings settings;
  absl::Status status = ReadSettings("name: x\nmode: \"a\\x01z\"\n", &settings);
  EXPECT_THAT(std::string(status.message()), HasSubstr("got \"a\\x01z\""));
}

TEST(ConfigReaderTest, ReportsYamlSyntaxErrorsWithLineAndColumn) {
  absl::StatusOr<ConfigReader> root = ConfigReader::Parse("name: x\nmode: [fast\n", "test.yaml");
  EXPECT_EQ(root.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(root.status().message()), StartsWith("test.yaml: line "));
  EXPECT_THAT(root.status().message(), HasSubstr("invalid YAML"));
}

TEST(ConfigReaderTest, RefusesATopLevelThatIsNotAMapping) {
  absl::StatusOr<ConfigReader> root = ConfigReader::Parse("- a\n- b\n", "test.yaml");
  EXPECT_EQ(root.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(root.status().message(), HasSubstr("expected a mapping of keys to values at the "
                                                 "top level, got a list"));
}

TEST(ConfigReaderTest, EmptyDocumentOnlyLacksRequiredKeys) {
  Settings settings;
  absl::Status status = ReadSettings("# nothing yet\n", &settings);
  EXPECT_EQ(status.message(), "test.yaml: missing required key 'name'");
}

TEST(ConfigReaderTest, AddErrorNamesTheKeyPathAndLine) {
  absl::StatusOr<ConfigReader> root =
      ConfigReader::Parse("reconnect:\n  initial: 5s\n", "test.yaml");
  ASSERT_TRUE(root.ok());
  absl::Duration initial;
  ConfigReader reconnect = root->Section("reconnect");
  reconnect.Duration("initial", &initial, absl::ZeroDuration(), absl::Hours(1));
  reconnect.AddError("initial", "must not be longer than reconnect.max");
  EXPECT_EQ(reconnect.PathOf("initial"), "reconnect.initial");
  EXPECT_EQ(root->Finish().message(),
            "test.yaml: key 'reconnect.initial': must not be longer than reconnect.max at line 2");
}

TEST(ConfigReaderTest, TypedLookupsSayWhetherTheyRecordedAnError) {
  absl::StatusOr<ConfigReader> root = ConfigReader::Parse("a: 1\nb: x\n", "test.yaml");
  ASSERT_TRUE(root.ok());
  int value = 0;
  EXPECT_TRUE(root->Int("a", &value, 0, 10));
  EXPECT_FALSE(root->Int("b", &value, 0, 10));
  EXPECT_TRUE(root->Int("c", &value, 0, 10));              // optional and absent
  EXPECT_FALSE(root->Int("d", &value, 0, 10, kRequired));  // required and absent
  EXPECT_TRUE(root->Has("a"));
  EXPECT_FALSE(root->Has("c"));
  EXPECT_EQ(value, 1);
}

TEST(ConfigReaderTest, ReadsAListOfStringsInEitherYamlStyle) {
  absl::StatusOr<ConfigReader> root =
      ConfigReader::Parse("flow: [a, \"b c\"]\nblock:\n  - /x\n  - /y\nempty: []\n", "test.yaml");
  ASSERT_TRUE(root.ok());
  std::vector<std::string> flow, block, empty = {"default"}, absent = {"default"};
  const StringRule absolute = AbsolutePathRule();
  EXPECT_TRUE(root->StringList("flow", &flow));
  EXPECT_TRUE(root->StringList("block", &block, kRequired, &absolute));
  EXPECT_TRUE(root->StringList("empty", &empty));
  EXPECT_TRUE(root->StringList("absent", &absent));
  EXPECT_TRUE(root->Finish().ok());
  EXPECT_EQ(flow, (std::vector<std::string>{"a", "b c"}));
  EXPECT_EQ(block, (std::vector<std::string>{"/x", "/y"}));
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(absent, std::vector<std::string>{"default"});
}

TEST(ConfigReaderTest, NamesTheBadElementOfAList) {
  absl::StatusOr<ConfigReader> root =
      ConfigReader::Parse("paths:\n  - /ok\n  - relative\nword: x\n", "test.yaml");
  ASSERT_TRUE(root.ok());
  std::vector<std::string> paths = {"default"}, word;
  const StringRule absolute = AbsolutePathRule();
  EXPECT_FALSE(root->StringList("paths", &paths, kOptional, &absolute));
  EXPECT_FALSE(root->StringList("word", &word));
  EXPECT_EQ(paths, std::vector<std::string>{"default"});  // untouched on error
  EXPECT_EQ(root->Finish().message(),
            "test.yaml: 2 problems: key 'paths[1]': expected an absolute path, got \"relative\" "
            "at line 3; key 'word': expected a list of strings, got \"x\" at line 4");
}

TEST(ConfigReaderTest, HostPortAcceptsNamesIpv4AndBracketedIpv6) {
  EXPECT_TRUE(IsHostPort("controller.example.com:7443", false));
  EXPECT_TRUE(IsHostPort("10.0.0.1:1", false));
  EXPECT_TRUE(IsHostPort("[::1]:65535", false));
  EXPECT_TRUE(IsHostPort("[fe80::1:2]:7443", false));
  EXPECT_TRUE(IsHostPort("127.0.0.1:0", /*allow_port_zero=*/true));

  EXPECT_FALSE(IsHostPort("127.0.0.1:0", false));
  EXPECT_FALSE(IsHostPort("controller", false));
  EXPECT_FALSE(IsHostPort(":7443", false));
  EXPECT_FALSE(IsHostPort("host:", false));
  EXPECT_FALSE(IsHostPort("host:65536", false));
  EXPECT_FALSE(IsHostPort("host:-1", false));
  EXPECT_FALSE(IsHostPort("host:+80", false));
  EXPECT_FALSE(IsHostPort("::1:7443", false));
  EXPECT_FALSE(IsHostPort("[::1:7443", false));
  EXPECT_FALSE(IsHostPort("[nonsense]:7443", false));
  EXPECT_FALSE(IsHostPort("host name:80", false));
  EXPECT_THAT(HostPortRule(false).expectation, Not(HasSubstr("from 0")));
}

}  // namespace
}  // namespace pghaul
