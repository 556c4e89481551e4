#include "controller/plan.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::controller {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// The repository root, found from this file's path (CMake compiles sources by absolute path).
std::string RepoRoot() {
  std::string here = __FILE__;
  return here.substr(0, here.rfind("/tests/unit/"));
}

std::string ReadRepoFile(const std::string& relative) {
  std::ifstream file(RepoRoot() + "/" + relative);
  EXPECT_TRUE(file.good()) << "cannot open " << RepoRoot() << "/" << relative;
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The YAML block that follows "<!-- example: <name> " in docs/plan.md.
std::string DocExample(const std::string& name) {
  std::string markdown = ReadRepoFile("docs/plan.md");
  size_t marker = markdown.find("<!-- example: " + name + " ");
  if (marker == std::string::npos) return "(no example " + name + " in docs/plan.md)";
  size_t start = markdown.find("```yaml\n", marker);
  if (start == std::string::npos) return "(no yaml block after example " + name + ")";
  start += 8;
  size_t end = markdown.find("```", start);
  return markdown.substr(start, end - start);
}

// The smallest valid plan; tests add or replace keys in it.
constexpr char kMinimal[] = R"(name: m1
source: {agent: legacy-db1}
target: {agent: new-db1, data_directory: /var/lib/postgresql/15/main}
stanza: legacy
repository:
  posix: {path: /mnt/pgbackrest}
)";

std::string WithRepository(const std::string& repository) {
  return absl::StrCat(R"(name: m1
source: {agent: legacy-db1}
target: {agent: new-db1, data_directory: /var/lib/postgresql/15/main}
stanza: legacy
repository:
)",
                      repository);
}

constexpr char kS3Repository[] = R"(  s3:
    endpoint: s3.eu-west-1.amazonaws.com
    bucket: pgbackrest
    region: eu-west-1
    path: /legacy
    key_from: {env: PGHAUL_S3_KEY}
    secret_from: {env: PGHAUL_S3_SECRET}
)";

std::string ErrorOf(const std::string& yaml) {
  absl::StatusOr<Plan> plan = ParsePlan(yaml, "plan.yaml");
  EXPECT_FALSE(plan.ok()) << "the plan was accepted:\n" << yaml;
  if (plan.ok()) return "";
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(plan.status().message());
}

// ---- The examples ----

TEST(PlanExamplesTest, PosixExampleParsesWithItsValues) {
  absl::StatusOr<Plan> plan =
      ParsePlan(ReadRepoFile("deploy/examples/plan-posix.yaml"), "plan-posix.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->name, "legacy-to-new");
  EXPECT_EQ(plan->source_agent, "legacy-db1");
  EXPECT_EQ(plan->target_agent, "new-db1");
  EXPECT_EQ(plan->target_data_directory, "/var/lib/postgresql/15/main");
  EXPECT_FALSE(plan->target_allow_overwrite);
  EXPECT_EQ(plan->stanza, "legacy");
  EXPECT_EQ(plan->repository.kind, RepositoryKind::kPosix);
  EXPECT_EQ(plan->repository.posix.path, "/mnt/pgbackrest");
  EXPECT_EQ(plan->repository.retention_full, 2);
  EXPECT_EQ(plan->repository.cipher_type, "none");
  EXPECT_EQ(plan->backup.process_max, 2);
  EXPECT_EQ(plan->backup.compress_type, "lz4");
  EXPECT_EQ(plan->backup.type, "full");
  EXPECT_FALSE(plan->source_restart_allowed);
  EXPECT_EQ(plan->fence, FenceMethod::kReadOnly);
  ASSERT_TRUE(plan->window.has_value());
  EXPECT_EQ(plan->window->start_minute, 60);
  EXPECT_EQ(plan->window->end_minute, 300);
  EXPECT_EQ(plan->window->timezone, "UTC");
  EXPECT_EQ(plan->cutover.max_lag_bytes, 64u << 20);
  EXPECT_EQ(plan->cutover.max_downtime, absl::Seconds(30));
  EXPECT_TRUE(plan->cutover.verify_checksums);
  EXPECT_THAT(plan->checks, ::testing::ElementsAre("/etc/pghaul/checks/orders.sql"));
}

TEST(PlanExamplesTest, S3ExampleParsesWithItsValues) {
  absl::StatusOr<Plan> plan = ParsePlan(ReadRepoFile("deploy/examples/plan-s3.yaml"), "s3");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->repository.kind, RepositoryKind::kS3);
  const S3RepositoryPlan& s3 = plan->repository.s3;
  EXPECT_EQ(s3.endpoint, "s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(s3.port, 443);
  EXPECT_EQ(s3.bucket, "pgbackrest");
  EXPECT_EQ(s3.region, "eu-west-1");
  EXPECT_EQ(s3.uri_style, "host");
  EXPECT_EQ(s3.path, "/legacy");
  EXPECT_TRUE(s3.verify_tls);
  EXPECT_EQ(s3.ca_file, "");
  EXPECT_EQ(s3.key_from.env, "PGHAUL_S3_KEY");
  EXPECT_EQ(s3.key_from.plan_key, "repository.s3.key_from");
  EXPECT_EQ(s3.secret_from.file, "/etc/pghaul/secrets.yaml");
  EXPECT_EQ(s3.secret_from.file_key, "s3_key_secret");
  EXPECT_EQ(plan->repository.cipher_type, "aes-256-cbc");
  ASSERT_TRUE(plan->repository.cipher_passphrase_from.has_value());
  EXPECT_EQ(plan->repository.cipher_passphrase_from->env, "PGHAUL_CIPHER_PASS");
  EXPECT_EQ(plan->backup.compress_type, "zst");
  EXPECT_TRUE(plan->source_restart_allowed);
  EXPECT_EQ(plan->fence, FenceMethod::kStop);
  EXPECT_FALSE(plan->window.has_value());
  EXPECT_EQ(plan->cutover.max_lag_bytes, 64u << 20);
  EXPECT_EQ(plan->cutover.max_downtime, absl::Minutes(1));
  EXPECT_EQ(plan->checks.size(), 2u);
}

TEST(PlanExamplesTest, RepoHostExampleParsesWithItsValues) {
  absl::StatusOr<Plan> plan =
      ParsePlan(ReadRepoFile("deploy/examples/plan-repo-host.yaml"), "repo-host");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->repository.kind, RepositoryKind::kRepoHost);
  const RepoHostPlan& host = plan->repository.repo_host;
  EXPECT_EQ(host.host, "backup.example.internal");
  EXPECT_EQ(host.port, 8432);
  EXPECT_EQ(host.path, "/var/lib/pgbackrest");
  EXPECT_EQ(host.ca_file, "/etc/pghaul/tls/ca.crt");
  EXPECT_EQ(host.cert_file, "/etc/pghaul/tls/db.crt");
  EXPECT_EQ(host.key_file, "/etc/pghaul/tls/db.key");
  ASSERT_TRUE(plan->window.has_value());
  EXPECT_EQ(plan->window->start_minute, 22 * 60);
  EXPECT_EQ(plan->window->end_minute, 4 * 60);
  EXPECT_EQ(plan->window->timezone, "Europe/Berlin");
  EXPECT_FALSE(plan->cutover.verify_checksums);
  EXPECT_TRUE(plan->checks.empty());
}

TEST(PlanExamplesTest, DocsShowExactlyTheExampleFiles) {
  for (const std::string name : {"plan-posix.yaml", "plan-s3.yaml", "plan-repo-host.yaml"}) {
    EXPECT_EQ(DocExample(name), ReadRepoFile("deploy/examples/" + name))
        << "docs/plan.md and deploy/examples/" << name << " differ";
  }
}

TEST(PlanExamplesTest, DocsSmallerExamplesParse) {
  absl::StatusOr<Plan> minimal = ParsePlan(DocExample("minimal plan"), "docs: minimal plan");
  ASSERT_TRUE(minimal.ok()) << minimal.status();
  EXPECT_TRUE(minimal->target_allow_overwrite);
  EXPECT_FALSE(minimal->window.has_value());

  absl::StatusOr<Plan> self_hosted =
      ParsePlan(WithRepository(DocExample("s3 self-hosted")), "docs: s3 self-hosted");
  ASSERT_TRUE(self_hosted.ok()) << self_hosted.status();
  EXPECT_EQ(self_hosted->repository.s3.endpoint, "10.200.0.13");
  EXPECT_EQ(self_hosted->repository.s3.uri_style, "path");
  EXPECT_EQ(self_hosted->repository.s3.ca_file, "/etc/pghaul/s3-ca.crt");
}

TEST(PlanExamplesTest, LoadPlanReadsAFileAndNamesAMissingOne) {
  absl::StatusOr<Plan> plan = LoadPlan(RepoRoot() + "/deploy/examples/plan-posix.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->name, "legacy-to-new");

  absl::StatusOr<Plan> missing = LoadPlan("/nonexistent/pghaul/plan.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/pghaul/plan.yaml"));
}

// ---- Defaults ----

TEST(PlanTest, MinimalPlanTakesTheDocumentedDefaults) {
  absl::StatusOr<Plan> plan = ParsePlan(kMinimal, "plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->target_allow_overwrite);
  EXPECT_EQ(plan->repository.retention_full, 2);
  EXPECT_EQ(plan->repository.cipher_type, "none");
  EXPECT_FALSE(plan->repository.cipher_passphrase_from.has_value());
  EXPECT_EQ(plan->backup.process_max, 1);
  EXPECT_EQ(plan->backup.compress_type, "lz4");
  EXPECT_EQ(plan->backup.type, "full");
  EXPECT_FALSE(plan->source_restart_allowed);
  EXPECT_EQ(plan->fence, FenceMethod::kReadOnly);
  EXPECT_FALSE(plan->window.has_value());
  EXPECT_EQ(plan->cutover.max_lag_bytes, 64u << 20);
  EXPECT_EQ(plan->cutover.max_downtime, absl::Seconds(30));
  EXPECT_TRUE(plan->cutover.verify_checksums);
  EXPECT_TRUE(plan->checks.empty());
}

TEST(PlanTest, NewStanzaDefaultsToTheStanzaWithNewAppendedAndReachesTheTarget) {
  absl::StatusOr<Plan> plan = ParsePlan(kMinimal, "plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->cutover.new_stanza, plan->stanza + "-new");
  EXPECT_EQ(MakeConfigureTask(*plan, v1::Secrets()).new_stanza(), plan->stanza + "-new");

  absl::StatusOr<Plan> named =
      ParsePlan(absl::StrCat(kMinimal, "cutover: {new_stanza: after-move}\n"), "plan.yaml");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->cutover.new_stanza, "after-move");
}

TEST(PlanTest, NewStanzaThatIsTheSourcesStanzaOrNoStanzaIsRefused) {
  absl::StatusOr<Plan> plan = ParsePlan(kMinimal, "plan.yaml");
  ASSERT_TRUE(plan.ok());
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "cutover: {new_stanza: ", plan->stanza, "}\n")),
              HasSubstr("key 'cutover.new_stanza': names the migration's stanza"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "cutover: {new_stanza: 'a b'}\n")),
              HasSubstr("cutover.new_stanza"));
}

TEST(PlanTest, S3DefaultsToPort443HostStyleAndVerifiedTls) {
  absl::StatusOr<Plan> plan = ParsePlan(WithRepository(kS3Repository), "plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->repository.s3.port, 443);
  EXPECT_EQ(plan->repository.s3.uri_style, "host");
  EXPECT_TRUE(plan->repository.s3.verify_tls);
}

TEST(PlanTest, RepoHostDefaultsToPort8432) {
  absl::StatusOr<Plan> plan = ParsePlan(WithRepository(R"(  repo_host:
    host: backup.example.internal
    path: /var/lib/pgbackrest
    cert_file: /etc/pghaul/db.crt
    key_file: /etc/pghaul/db.key
)"),
                                        "plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->repository.repo_host.port, 8432);
  EXPECT_EQ(plan->repository.repo_host.ca_file, "");
}

// ---- Refusals, one per class ----

TEST(PlanTest, UnknownKeyIsRefusedWithTheClosestKnownKey) {
  std::string yaml = WithRepository(absl::StrReplaceAll(kS3Repository, {{"bucket:", "bukcet:"}}));
  std::string error = ErrorOf(yaml);
  EXPECT_THAT(error, HasSubstr("unknown key 'repository.s3.bukcet' (did you mean 'bucket'?"));
  EXPECT_THAT(error, HasSubstr("missing required key 'repository.s3.bucket'"));
}

TEST(PlanTest, UnknownTopLevelKeySuggestsWithinEditDistanceTwo) {
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "fense: stop\n")),
              HasSubstr("unknown key 'fense' (did you mean 'fence'?"));
  // Two edits: one deletion and one substitution.
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "chekc: []\n")),
              HasSubstr("unknown key 'chekc' (did you mean 'checks'?"));
}

TEST(PlanTest, UnknownKeyFarFromEveryKnownKeyHasNoSuggestion) {
  std::string error = ErrorOf(absl::StrCat(kMinimal, "colour: blue\n"));
  EXPECT_THAT(error, HasSubstr("unknown key 'colour' (known keys: name, source"));
  EXPECT_THAT(error, Not(HasSubstr("did you mean")));
}

TEST(PlanTest, MissingRequiredKeysAreEachNamed) {
  std::string error = ErrorOf(R"(name: m1
source: {agent: legacy-db1}
target: {agent: new-db1}
)");
  EXPECT_THAT(error, HasSubstr("missing required key 'target.data_directory'"));
  EXPECT_THAT(error, HasSubstr("missing required key 'stanza'"));
  EXPECT_THAT(error, HasSubstr("missing required key 'repository'"));
  EXPECT_THAT(error, HasSubstr("3 problems"));
}

TEST(PlanTest, WrongTypeNamesTheKeyAndWhatWasExpected) {
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "backup: {process_max: two}\n")),
              HasSubstr("key 'backup.process_max': expected an integer from 1 to 64, got \"two\""));
  EXPECT_THAT(ErrorOf(absl::StrReplaceAll(kMinimal,
                                          {{"source: {agent: legacy-db1}", "source: legacy-db1"}})),
              HasSubstr("key 'source': expected a mapping"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "source_restart_allowed: yes\n")),
              HasSubstr("key 'source_restart_allowed': expected true or false"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "checks: /etc/pghaul/checks/orders.sql\n")),
              HasSubstr("key 'checks': expected a list of absolute paths"));
}

TEST(PlanTest, BadEnumValueListsTheChoices) {
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "fence: soft\n")),
              HasSubstr("key 'fence': expected one of: read-only, stop, got \"soft\""));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "backup: {compress_type: xz}\n")),
              HasSubstr("key 'backup.compress_type': expected one of: none, gz, lz4, zst, bz2"));
  EXPECT_THAT(ErrorOf(WithRepository(absl::StrCat(kS3Repository, "    uri_style: virtual\n"))),
              HasSubstr("key 'repository.s3.uri_style': expected one of: host, path"));
}

TEST(PlanTest, TwoRepositoryKindsAreRefused) {
  std::string error =
      ErrorOf(WithRepository(absl::StrCat("  posix: {path: /mnt/pgbackrest}\n", kS3Repository)));
  EXPECT_THAT(error, HasSubstr("key 'repository': expected exactly one of posix, s3 or repo_host, "
                               "found posix and s3"));
}

TEST(PlanTest, RepositoryWithoutAKindIsRefused) {
  EXPECT_THAT(ErrorOf(WithRepository("  retention_full: 2\n")),
              HasSubstr("key 'repository': expected exactly one of posix, s3 or repo_host, "
                        "found none"));
}

TEST(PlanTest, SameAgentAsSourceAndTargetIsRefused) {
  EXPECT_THAT(ErrorOf(absl::StrReplaceAll(kMinimal, {{"agent: new-db1", "agent: legacy-db1"}})),
              HasSubstr("key 'target.agent': names the same agent as source.agent"));
}

TEST(PlanTest, InvalidNamesAreRefusedWithTheirGrammar) {
  EXPECT_THAT(ErrorOf(absl::StrReplaceAll(kMinimal, {{"name: m1", "name: Legacy_To_New"}})),
              HasSubstr("key 'name': expected a migration name"));
  EXPECT_THAT(ErrorOf(absl::StrReplaceAll(kMinimal, {{"stanza: legacy", "stanza: \"a b\""}})),
              HasSubstr("key 'stanza': expected a stanza name"));
  EXPECT_THAT(ErrorOf(absl::StrReplaceAll(kMinimal, {{"agent: new-db1", "agent: New_DB"}})),
              HasSubstr("key 'target.agent': expected an agent id"));
}

TEST(PlanTest, InlineSecretIsRefusedWithoutEchoingIt) {
  std::string yaml = WithRepository(absl::StrCat(kS3Repository, "    secret: hunter2-s3cr3t\n"));
  std::string error = ErrorOf(yaml);
  EXPECT_THAT(error, HasSubstr("key 'repository.s3.secret': secrets are not read from the plan: "
                               "use key_from/secret_from/passphrase_from with env or file"));
  EXPECT_THAT(error, Not(HasSubstr("hunter2")));

  for (const std::string name : {"key", "passphrase", "password"}) {
    std::string nested = absl::StrCat(kMinimal, "cutover:\n  ", name, ": hunter2\n");
    std::string message = ErrorOf(nested);
    EXPECT_THAT(message, AllOf(HasSubstr(absl::StrCat("key 'cutover.", name, "'")),
                               HasSubstr("secrets are not read from the plan")));
    EXPECT_THAT(message, Not(HasSubstr("hunter2")));
  }
}

TEST(PlanTest, SecretWrittenInPlaceOfItsSourceIsNotEchoed) {
  std::string yaml =
      WithRepository(absl::StrReplaceAll(kS3Repository, {{"{env: PGHAUL_S3_KEY}", "AKIAHUNTER2"}}));
  std::string error = ErrorOf(yaml);
  EXPECT_THAT(error, HasSubstr("key 'repository.s3.key_from': expected {env: NAME} or "
                               "{file: PATH, key: NAME}"));
  EXPECT_THAT(error, Not(HasSubstr("AKIAHUNTER2")));

  // The secret in place of the variable's name.
  error = ErrorOf(WithRepository(
      absl::StrReplaceAll(kS3Repository, {{"PGHAUL_S3_KEY", "\"wJalr/K7MDENG+bPxRfi\""}})));
  EXPECT_THAT(error, HasSubstr("key 'repository.s3.key_from.env': expected the name of an "
                               "environment variable"));
  EXPECT_THAT(error, Not(HasSubstr("wJalr")));
}

TEST(PlanTest, KeyInsideAFileSecretSourceIsTheEntryNameNotASecret) {
  absl::StatusOr<Plan> plan =
      ParsePlan(WithRepository(absl::StrReplaceAll(
                    kS3Repository,
                    {{"{env: PGHAUL_S3_KEY}", "{file: /etc/pghaul/secrets.yaml, key: s3_key}"}})),
                "plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->repository.s3.key_from.file, "/etc/pghaul/secrets.yaml");
  EXPECT_EQ(plan->repository.s3.key_from.file_key, "s3_key");
}

TEST(PlanTest, SecretSourceMustBeEitherEnvOrFile) {
  EXPECT_THAT(ErrorOf(WithRepository(absl::StrReplaceAll(
                  kS3Repository,
                  {{"{env: PGHAUL_S3_KEY}", "{env: A, file: /etc/pghaul/secrets.yaml, key: k}"}}))),
              HasSubstr("key 'repository.s3.key_from': give either env or file, not both"));
  EXPECT_THAT(ErrorOf(WithRepository(absl::StrReplaceAll(
                  kS3Repository, {{"{env: PGHAUL_S3_KEY}", "{file: /etc/pghaul/secrets.yaml}"}}))),
              HasSubstr("missing required key 'repository.s3.key_from.key'"));
}

TEST(PlanTest, S3WithoutCredentialSourcesIsRefused) {
  std::string repository =
      absl::StrReplaceAll(kS3Repository, {{"    key_from: {env: PGHAUL_S3_KEY}\n", ""},
                                          {"    secret_from: {env: PGHAUL_S3_SECRET}\n", ""}});
  std::string error = ErrorOf(WithRepository(repository));
  EXPECT_THAT(error, HasSubstr("missing required key 'repository.s3.key_from'"));
  EXPECT_THAT(error, HasSubstr("missing required key 'repository.s3.secret_from'"));
}

TEST(PlanTest, CipherNeedsAPassphraseSourceExactlyWhenEncrypting) {
  EXPECT_THAT(ErrorOf(WithRepository("  posix: {path: /mnt/r}\n  cipher: {type: aes-256-cbc}\n")),
              HasSubstr("missing required key 'repository.cipher.passphrase_from'"));
  EXPECT_THAT(
      ErrorOf(WithRepository(
          "  posix: {path: /mnt/r}\n  cipher: {type: none, passphrase_from: {env: PASS}}\n")),
      HasSubstr("key 'repository.cipher.passphrase_from': is only used with type aes-256-cbc"));
}

TEST(PlanTest, CaFileWithoutTlsVerificationIsRefused) {
  EXPECT_THAT(ErrorOf(WithRepository(absl::StrCat(
                  kS3Repository, "    verify_tls: false\n    ca_file: /etc/pghaul/ca.crt\n"))),
              HasSubstr("key 'repository.s3.ca_file': is set while verify_tls is false"));
}

TEST(PlanTest, RepoHostGivenAsAnIpAddressIsRefused) {
  EXPECT_THAT(ErrorOf(WithRepository(R"(  repo_host:
    host: 10.200.0.13
    path: /var/lib/pgbackrest
    cert_file: /etc/pghaul/db.crt
    key_file: /etc/pghaul/db.key
)")),
              HasSubstr("key 'repository.repo_host.host': expected a DNS name, not an IP address"));
}

TEST(PlanTest, BadDurationNamesTheKey) {
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "cutover: {max_downtime: 30}\n")),
              HasSubstr("key 'cutover.max_downtime': expected a duration from 1s to 1h"));
}

TEST(PlanTest, BadSizeNamesTheKeyAndTheProblem) {
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "cutover: {max_lag: 16mb}\n")),
              AllOf(HasSubstr("key 'cutover.max_lag': expected a size"),
                    HasSubstr("unknown unit \"mb\""), HasSubstr("got \"16mb\"")));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "cutover: {max_lag: 1.5GB}\n")),
              HasSubstr("key 'cutover.max_lag': expected a size"));
}

TEST(PlanTest, RelativeOrUnnormalizedPathsAreRefused) {
  EXPECT_THAT(
      ErrorOf(absl::StrReplaceAll(kMinimal, {{"data_directory: /var", "data_directory: var"}})),
      HasSubstr("key 'target.data_directory': expected an absolute path"));
  EXPECT_THAT(ErrorOf(absl::StrReplaceAll(kMinimal, {{"/mnt/pgbackrest", "/mnt/../etc"}})),
              HasSubstr("key 'repository.posix.path': expected an absolute path"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "checks: [/etc/pghaul/a.sql, checks/b.sql]\n")),
              HasSubstr("key 'checks[1]': expected an absolute path"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "checks: [/etc/pghaul/a.sql, /etc/pghaul/a.sql]\n")),
              HasSubstr("key 'checks[1]': lists \"/etc/pghaul/a.sql\" a second time"));
}

TEST(PlanTest, ListOfChecksIsReadAndOtherProblemsStillReported) {
  // `checks` is read around ConfigReader (which has no lists): make sure that neither hides nor
  // adds a problem.
  std::string error =
      ErrorOf(absl::StrCat(kMinimal, "checks:\n  - /etc/pghaul/a.sql\nfence: soft\n"));
  EXPECT_THAT(error, HasSubstr("plan.yaml: key 'fence': expected one of"));
  EXPECT_THAT(error, Not(HasSubstr("checks")));
  error = ErrorOf(
      absl::StrCat(kMinimal, "checks:\n  - /etc/pghaul/a.sql\nfence: soft\nbackup: {type: x}\n"));
  EXPECT_THAT(error, HasSubstr("plan.yaml: 2 problems: key 'backup.type'"));
  EXPECT_THAT(error, HasSubstr("; key 'fence'"));
  EXPECT_THAT(error, Not(HasSubstr("checks")));
}

TEST(PlanTest, BadWindowTimesAreRefused) {
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "window: {start: \"25:00\", end: \"05:00\"}\n")),
              HasSubstr("key 'window.start': expected a time of day as \"HH:MM\""));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "window: {start: \"01:00\", end: \"5:00\"}\n")),
              HasSubstr("key 'window.end': expected a time of day"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "window: {start: \"01:00\", end: \"01:00\"}\n")),
              HasSubstr("key 'window.end': equals window.start"));
  EXPECT_THAT(ErrorOf(absl::StrCat(kMinimal, "window: {start: \"01:00\"}\n")),
              HasSubstr("missing required key 'window.end'"));
  EXPECT_THAT(
      ErrorOf(absl::StrCat(kMinimal,
                           "window: {start: \"01:00\", end: \"02:00\", timezone: Mars/Olympus}\n")),
      HasSubstr("key 'window.timezone': expected a time zone"));
}

TEST(PlanTest, WindowContainsTimesBetweenStartAndEndIncludingAcrossMidnight) {
  absl::StatusOr<Plan> plan =
      ParsePlan(absl::StrCat(kMinimal, "window: {start: \"22:00\", end: \"04:00\"}\n"), "p");
  ASSERT_TRUE(plan.ok()) << plan.status();
  const WindowPlan& window = *plan->window;
  auto at = [](int hour, int minute) {
    return absl::FromCivil(absl::CivilMinute(2026, 3, 1, hour, minute), absl::UTCTimeZone());
  };
  EXPECT_TRUE(window.Contains(at(22, 0)));
  EXPECT_TRUE(window.Contains(at(23, 59)));
  EXPECT_TRUE(window.Contains(at(0, 0)));
  EXPECT_TRUE(window.Contains(at(3, 59)));
  EXPECT_FALSE(window.Contains(at(4, 0)));
  EXPECT_FALSE(window.Contains(at(12, 0)));
  EXPECT_FALSE(window.Contains(at(21, 59)));

  plan = ParsePlan(absl::StrCat(kMinimal, "window: {start: \"01:00\", end: \"05:00\"}\n"), "p");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->window->Contains(at(1, 0)));
  EXPECT_FALSE(plan->window->Contains(at(5, 0)));
  EXPECT_FALSE(plan->window->Contains(at(0, 59)));
}

TEST(PlanTest, WindowIsReadInItsTimeZone) {
  absl::StatusOr<Plan> plan = ParsePlan(
      absl::StrCat(kMinimal, "window: {start: \"01:00\", end: \"05:00\", timezone: Asia/Tokyo}\n"),
      "p");
  ASSERT_TRUE(plan.ok()) << plan.status();
  // 17:30 UTC is 02:30 in Tokyo (UTC+9, no daylight saving time).
  absl::Time utc_1730 = absl::FromCivil(absl::CivilMinute(2026, 3, 1, 17, 30), absl::UTCTimeZone());
  EXPECT_TRUE(plan->window->Contains(utc_1730));
  EXPECT_FALSE(plan->window->Contains(utc_1730 + absl::Hours(8)));
}

TEST(PlanTest, EveryProblemIsReportedAtOnce) {
  std::string error = ErrorOf(R"(name: m1
source: {agent: same}
target: {agent: same, data_directory: relative}
stanza: legacy
repository: {posix: {path: /mnt/r}}
fence: soft
)");
  EXPECT_THAT(error, HasSubstr("3 problems"));
  EXPECT_THAT(error, HasSubstr("'target.agent'"));
  EXPECT_THAT(error, HasSubstr("'target.data_directory'"));
  EXPECT_THAT(error, HasSubstr("'fence'"));
}

// ---- Sizes ----

TEST(ParseByteSizeTest, AcceptsUnitsInMultiplesOf1024) {
  EXPECT_EQ(ParseByteSize("0B").value(), 0u);
  EXPECT_EQ(ParseByteSize("512B").value(), 512u);
  EXPECT_EQ(ParseByteSize("8kB").value(), 8192u);
  EXPECT_EQ(ParseByteSize("16MB").value(), 16u << 20);
  EXPECT_EQ(ParseByteSize("16 MB").value(), 16u << 20);
  EXPECT_EQ(ParseByteSize("16MiB").value(), 16u << 20);
  EXPECT_EQ(ParseByteSize("1GiB").value(), 1u << 30);
  EXPECT_EQ(ParseByteSize("2TB").value(), uint64_t{2} << 40);
}

TEST(ParseByteSizeTest, RefusesMissingUnitsFractionsAndOverflowSayingWhy) {
  EXPECT_THAT(ParseByteSize("16").status().message(), HasSubstr("the unit is missing"));
  EXPECT_THAT(ParseByteSize("MB").status().message(), HasSubstr("expected a size"));
  EXPECT_THAT(ParseByteSize("").status().message(), HasSubstr("expected a size"));
  EXPECT_THAT(ParseByteSize("1.5GB").status().message(), HasSubstr("unknown unit \".5GB\""));
  EXPECT_THAT(ParseByteSize("16mb").status().message(), HasSubstr("case-sensitive"));
  EXPECT_THAT(ParseByteSize("-1MB").status().message(), HasSubstr("expected a size"));
  EXPECT_THAT(ParseByteSize("99999999TB").status().message(), HasSubstr("too large"));
  EXPECT_THAT(ParseByteSize("99999999999999999999B").status().message(), HasSubstr("too large"));
}

// ---- Secrets ----

// A fresh directory under the test's temporary directory, removed at the end of the test.
class SecretsFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string base = ::testing::TempDir();  // "/tmp/", with its slash
    if (!base.empty() && base.back() == '/') base.pop_back();
    std::string pattern = base + "/plan_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string WriteSecrets(const std::string& text, mode_t mode) {
    std::string path = dir_ + "/secrets.yaml";
    std::ofstream(path) << text;
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }

  static Plan S3PlanWithFile(const std::string& path) {
    absl::StatusOr<Plan> plan = ParsePlan(
        WithRepository(absl::StrCat(
            kS3Repository, "  cipher:\n    type: aes-256-cbc\n    passphrase_from: {file: ", path,
            ", key: cipher}\n")),
        "plan.yaml");
    EXPECT_TRUE(plan.ok()) << plan.status();
    return plan.ok() ? *plan : Plan{};
  }

  std::string dir_;
};

std::function<const char*(const char*)> FakeEnv(std::map<std::string, std::string> values) {
  return [values = std::move(values)](const char* name) -> const char* {
    auto it = values.find(name);
    return it == values.end() ? nullptr : it->second.c_str();
  };
}

TEST_F(SecretsFileTest, ResolvesFromEnvironmentAndSecretsFile) {
  std::string path = WriteSecrets("cipher: \"pass phrase: 1\"\nother: x\n", 0600);
  Plan plan = S3PlanWithFile(path);
  absl::StatusOr<v1::Secrets> secrets = ResolveSecrets(
      plan, FakeEnv({{"PGHAUL_S3_KEY", "AKIAKEY"}, {"PGHAUL_S3_SECRET", "s3-secret"}}));
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  EXPECT_EQ(secrets->s3_key(), "AKIAKEY");
  EXPECT_EQ(secrets->s3_key_secret(), "s3-secret");
  EXPECT_EQ(secrets->cipher_pass(), "pass phrase: 1");
}

TEST_F(SecretsFileTest, MissingEnvironmentVariableIsNamed) {
  Plan plan = S3PlanWithFile(WriteSecrets("cipher: c\n", 0600));
  absl::StatusOr<v1::Secrets> secrets = ResolveSecrets(plan, FakeEnv({{"PGHAUL_S3_KEY", "k"}}));
  ASSERT_FALSE(secrets.ok());
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(secrets.status().message(),
              HasSubstr("repository.s3.secret_from.env: environment variable PGHAUL_S3_SECRET "
                        "is not set"));

  secrets = ResolveSecrets(plan, FakeEnv({{"PGHAUL_S3_KEY", ""}, {"PGHAUL_S3_SECRET", "s"}}));
  ASSERT_FALSE(secrets.ok());
  EXPECT_THAT(secrets.status().message(), HasSubstr("PGHAUL_S3_KEY is empty"));
}

TEST_F(SecretsFileTest, GroupOrWorldAccessibleSecretsFileIsRefusedWithAChmodHint) {
  std::string path = WriteSecrets("cipher: topsecret\n", 0644);
  absl::StatusOr<v1::Secrets> secrets = ResolveSecrets(
      S3PlanWithFile(path), FakeEnv({{"PGHAUL_S3_KEY", "k"}, {"PGHAUL_S3_SECRET", "s"}}));
  ASSERT_FALSE(secrets.ok());
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(secrets.status().message(),
              AllOf(HasSubstr("repository.cipher.passphrase_from.file"), HasSubstr("mode 0644"),
                    HasSubstr("chmod 600 " + path)));
  EXPECT_THAT(secrets.status().message(), Not(HasSubstr("topsecret")));

  ASSERT_EQ(chmod(path.c_str(), 0620), 0);  // group-writable is refused too
  EXPECT_FALSE(ResolveSecrets(S3PlanWithFile(path),
                              FakeEnv({{"PGHAUL_S3_KEY", "k"}, {"PGHAUL_S3_SECRET", "s"}}))
                   .ok());
}

TEST_F(SecretsFileTest, MissingFileOrEntryIsNamedAndContentsNeverShown) {
  auto env = FakeEnv({{"PGHAUL_S3_KEY", "k"}, {"PGHAUL_S3_SECRET", "s"}});
  absl::StatusOr<v1::Secrets> secrets = ResolveSecrets(S3PlanWithFile(dir_ + "/absent.yaml"), env);
  ASSERT_FALSE(secrets.ok());
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(secrets.status().message(), HasSubstr(dir_ + "/absent.yaml"));

  std::string path = WriteSecrets("s3_key: topsecret\n", 0600);
  secrets = ResolveSecrets(S3PlanWithFile(path), env);
  ASSERT_FALSE(secrets.ok());
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(secrets.status().message(),
              HasSubstr("repository.cipher.passphrase_from.key: secrets file " + path +
                        " has no entry 'cipher'"));
  EXPECT_THAT(secrets.status().message(), Not(HasSubstr("topsecret")));

  // A file holding just the secret (not a mapping): ConfigReader would quote it, pghaul must not.
  WriteSecrets("topsecret\n", 0600);
  secrets = ResolveSecrets(S3PlanWithFile(path), env);
  ASSERT_FALSE(secrets.ok());
  EXPECT_EQ(secrets.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(secrets.status().message(), HasSubstr("is not a YAML mapping of names to strings"));
  EXPECT_THAT(secrets.status().message(), Not(HasSubstr("topsecret")));

  WriteSecrets("cipher: [topsecret]\n", 0600);
  secrets = ResolveSecrets(S3PlanWithFile(path), env);
  ASSERT_FALSE(secrets.ok());
  EXPECT_THAT(secrets.status().message(), HasSubstr("entry 'cipher' of secrets file"));
  EXPECT_THAT(secrets.status().message(), Not(HasSubstr("topsecret")));
}

TEST(ResolveSecretsTest, PosixPlanWithoutCipherNeedsNoSecrets) {
  absl::StatusOr<Plan> plan = ParsePlan(kMinimal, "plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  absl::StatusOr<v1::Secrets> secrets = ResolveSecrets(*plan, FakeEnv({}));
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  EXPECT_EQ(secrets->ByteSizeLong(), 0u);
}

// ---- The task ----

TEST(MakeConfigureTaskTest, CarriesTheS3RepositoryAndTheSecrets) {
  absl::StatusOr<Plan> plan = ParsePlan(ReadRepoFile("deploy/examples/plan-s3.yaml"), "s3");
  ASSERT_TRUE(plan.ok()) << plan.status();
  v1::Secrets secrets;
  secrets.set_s3_key("k");
  secrets.set_s3_key_secret("s");
  secrets.set_cipher_pass("p");
  v1::ConfigurePgBackRest task = MakeConfigureTask(*plan, secrets);
  EXPECT_EQ(task.migration_id(), "orders-eu-west");
  EXPECT_EQ(task.stanza(), "orders");
  ASSERT_TRUE(task.repository().has_s3());
  EXPECT_EQ(task.repository().s3().endpoint(), "s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(task.repository().s3().port(), 443u);
  EXPECT_EQ(task.repository().s3().bucket(), "pgbackrest");
  EXPECT_EQ(task.repository().s3().region(), "eu-west-1");
  EXPECT_EQ(task.repository().s3().uri_style(), "host");
  EXPECT_FALSE(task.repository().s3().skip_tls_verify());
  EXPECT_EQ(task.repository().path(), "/legacy");
  EXPECT_EQ(task.repository().retention_full(), 2u);
  EXPECT_EQ(task.repository().cipher_type(), "aes-256-cbc");
  EXPECT_EQ(task.secrets().s3_key(), "k");
  EXPECT_EQ(task.secrets().s3_key_secret(), "s");
  EXPECT_EQ(task.secrets().cipher_pass(), "p");
  EXPECT_EQ(task.process_max(), 2u);
  EXPECT_EQ(task.compress_type(), "zst");
  EXPECT_FALSE(task.archive_async());  // pgBackRest's own default: the fastest last segment
}

TEST(MakeConfigureTaskTest, ArchiveAsyncIsOffUnlessThePlanTurnsItOn) {
  absl::StatusOr<Plan> plan =
      ParsePlan(WithRepository("  posix: {path: /mnt/pgbackrest}\n  archive_async: true\n"),
                "plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(MakeConfigureTask(*plan, v1::Secrets()).archive_async());
  plan = ParsePlan(kMinimal, "plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(MakeConfigureTask(*plan, v1::Secrets()).archive_async());
  absl::StatusOr<Plan> wrong =
      ParsePlan(WithRepository("  posix: {path: /mnt/pgbackrest}\n  archive_async: sometimes\n"),
                "plan.yaml");
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("archive_async"));
}

TEST(MakeConfigureTaskTest, PosixPathIsTheRepositoryPathAndRepoHostKeepsItsFiles) {
  absl::StatusOr<Plan> plan = ParsePlan(kMinimal, "plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  v1::ConfigurePgBackRest task = MakeConfigureTask(*plan, v1::Secrets());
  ASSERT_TRUE(task.repository().has_posix());
  EXPECT_EQ(task.repository().posix().path(), "/mnt/pgbackrest");
  EXPECT_EQ(task.repository().path(), "/mnt/pgbackrest");
  EXPECT_EQ(task.repository().cipher_type(), "none");
  EXPECT_FALSE(task.has_secrets() && task.secrets().ByteSizeLong() > 0);

  plan = ParsePlan(ReadRepoFile("deploy/examples/plan-repo-host.yaml"), "repo-host");
  ASSERT_TRUE(plan.ok()) << plan.status();
  task = MakeConfigureTask(*plan, v1::Secrets());
  ASSERT_TRUE(task.repository().has_host());
  EXPECT_EQ(task.repository().host().host(), "backup.example.internal");
  EXPECT_EQ(task.repository().host().port(), 8432u);
  EXPECT_EQ(task.repository().host().ca_file(), "/etc/pghaul/tls/ca.crt");
  EXPECT_EQ(task.repository().host().cert_file(), "/etc/pghaul/tls/db.crt");
  EXPECT_EQ(task.repository().host().key_file(), "/etc/pghaul/tls/db.key");
  EXPECT_EQ(task.repository().path(), "/var/lib/pgbackrest");
}

}  // namespace
}  // namespace pghaul::controller
