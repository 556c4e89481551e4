// Reading the task of `pghaul task submit` (cli/task_input.h): protobuf JSON, its error messages,
// and that a text mentioning secrets is never quoted back.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "cli/task_input.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ParseTaskJsonTest, AcceptsProtoAndCamelCaseFieldNames) {
  absl::StatusOr<v1::Task> camel = ParseTaskJson(
      R"({"pgbackrest":{"migrationId":"m1","info":{}},"timeoutSeconds":30})", "--json");
  ASSERT_TRUE(camel.ok()) << camel.status();
  EXPECT_EQ(camel->pgbackrest().migration_id(), "m1");
  EXPECT_TRUE(camel->pgbackrest().has_info());
  EXPECT_EQ(camel->timeout_seconds(), 30u);

  absl::StatusOr<v1::Task> snake =
      ParseTaskJson(R"({"task_id":"t-1","sql":{"query":"CURRENT_WAL_LSN"}})", "--json");
  ASSERT_TRUE(snake.ok()) << snake.status();
  EXPECT_EQ(snake->task_id(), "t-1");
  EXPECT_EQ(snake->sql().query(), v1::SqlQuery::CURRENT_WAL_LSN);
}

TEST(ParseTaskJsonTest, UnknownFieldIsAnErrorNamingIt) {
  absl::Status status = ParseTaskJson(R"({"sqll":{}})", "--json").status();
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_EQ(status.message(),
            "the task in --json is not a valid pghaul.v1.Task in JSON: sqll: Cannot find field.");
}

TEST(ParseTaskJsonTest, BadEnumValueNamesTheFieldAndTheValue) {
  absl::Status status = ParseTaskJson(R"({"sql":{"query":"NOPE"}})", "file t.json").status();
  EXPECT_THAT(status.message(), HasSubstr("the task in file t.json is not a valid"));
  EXPECT_THAT(status.message(), HasSubstr("(sql.query): invalid value \"NOPE\""));
}

TEST(ParseTaskJsonTest, SyntaxErrorMarksWhereItIsOnOneLine) {
  absl::Status status = ParseTaskJson(R"({"sql":{}}x)", "--json").status();
  EXPECT_THAT(status.message(),
              HasSubstr("Parsing terminated before end of input. (at: {\"sql\":{}}<HERE>x)"));
  EXPECT_THAT(status.message(), Not(HasSubstr("\n")));
}

TEST(ParseTaskJsonTest, TaskWithoutAnOperationIsRefusedHere) {
  absl::Status status = ParseTaskJson(R"({"taskId":"t1"})", "--json").status();
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_THAT(status.message(), HasSubstr("names no operation; give one of gather_facts"));
  EXPECT_THAT(ParseTaskJson("  \n", "--json").status().message(), HasSubstr("is empty"));
}

TEST(ParseTaskJsonTest, ErrorsNeverQuoteATextThatMentionsSecrets) {
  // Each of these would otherwise show "hunter2": in the excerpt under a syntax error, or as
  // the "invalid value".
  for (const char* json : {
           R"({"configure_pgbackrest":{"secrets":{"s3_key":"hunter2" "x"}}})",
           R"({"configure_pgbackrest":{"secrets":{"cipher_pass":["hunter2"]}},"bogus":1})",
           R"({"configure_pgbackrest":{"secrets":"hunter2"}})",
           R"({"configure_pgbackrest":{"\u0073ecrets":{"s3_key":"hunter2" "x"}}})",
       }) {
    absl::Status status = ParseTaskJson(json, "--json").status();
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << json;
    EXPECT_THAT(status.message(), Not(HasSubstr("hunter2"))) << json;
    EXPECT_THAT(status.message(), HasSubstr("none of it is quoted")) << json;
  }
}

TEST(ParseTaskJsonTest, SecretsArriveInTheTask) {
  absl::StatusOr<v1::Task> task = ParseTaskJson(
      R"({"configure_pgbackrest":{"migration_id":"m1","secrets":{"cipherPass":"hunter2"}}})",
      "--json");
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->configure_pgbackrest().secrets().cipher_pass(), "hunter2");
}

TEST(DescribeJsonErrorTest, RedactingDropsTheExcerptAndTheValue) {
  EXPECT_EQ(DescribeJsonError("Expected , or } after key:value pair.\nabc\" \"x\n    ^", true),
            "Expected , or } after key:value pair.");
  EXPECT_EQ(DescribeJsonError("(a.b): invalid value 12345 for type TYPE_STRING", true),
            "(a.b): invalid value (not shown) for type TYPE_STRING");
  EXPECT_EQ(DescribeJsonError("(a.b): invalid value 12345 for type TYPE_STRING", false),
            "(a.b): invalid value 12345 for type TYPE_STRING");
}

class LoadTaskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pghaul_cli_task_input_XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    unlink(Path("task.json").c_str());
    rmdir(dir_.c_str());
  }
  std::string Path(absl::string_view name) const { return absl::StrCat(dir_, "/", name); }

  std::string dir_;
};

TEST_F(LoadTaskTest, ReadsAFile) {
  std::ofstream(Path("task.json")) << R"({"sql":{"query":"SWITCH_WAL"}})";
  absl::StatusOr<v1::Task> task = LoadTask(Path("task.json"), std::nullopt, nullptr);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->sql().query(), v1::SqlQuery::SWITCH_WAL);
}

TEST_F(LoadTaskTest, ErrorsNameTheFile) {
  std::ofstream(Path("task.json")) << R"({"sql":)";
  EXPECT_THAT(LoadTask(Path("task.json"), std::nullopt, nullptr).status().message(),
              HasSubstr(absl::StrCat("the task in file ", Path("task.json"), " is not a valid")));
  absl::Status missing = LoadTask(Path("missing.json"), std::nullopt, nullptr).status();
  EXPECT_TRUE(absl::IsInvalidArgument(missing));
  EXPECT_THAT(missing.message(), HasSubstr("cannot use the task file: cannot open '"));
  EXPECT_THAT(missing.message(), HasSubstr("missing.json"));
}

TEST_F(LoadTaskTest, DashReadsStandardInput) {
  std::istringstream in(R"({"gatherFacts":{}})");
  absl::StatusOr<v1::Task> task = LoadTask(std::string("-"), std::nullopt, &in);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_TRUE(task->has_gather_facts());
  EXPECT_FALSE(LoadTask(std::string("-"), std::nullopt, nullptr).ok());
}

TEST_F(LoadTaskTest, TooLargeInputIsRefused) {
  std::istringstream in(std::string(kMaxTaskJsonBytes + 10, ' ') + "{}");
  absl::Status status = LoadTask(std::string("-"), std::nullopt, &in).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_THAT(status.message(), HasSubstr("a task is at most"));
}

TEST_F(LoadTaskTest, ParsesInlineJson) {
  absl::StatusOr<v1::Task> task =
      LoadTask(std::nullopt, std::string(R"({"service":{"action":"STATUS"}})"), nullptr);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->service().action(), v1::ServiceAction::STATUS);
}

TEST_F(LoadTaskTest, SecretsOnTheCommandLineAreRefusedWithoutQuotingThem) {
  absl::Status status =
      LoadTask(std::nullopt,
               std::string(R"({"configurePgbackrest":{"secrets":{"s3KeySecret":"hunter2"}}})"),
               nullptr)
          .status();
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_THAT(status.message(), HasSubstr("secrets are not accepted on the command line"));
  EXPECT_THAT(status.message(), Not(HasSubstr("hunter2")));
  // The same task from a file is fine.
  std::ofstream(Path("task.json"))
      << R"({"configurePgbackrest":{"secrets":{"s3KeySecret":"hunter2"}}})";
  EXPECT_TRUE(LoadTask(Path("task.json"), std::nullopt, nullptr).ok());
}

}  // namespace
}  // namespace pghaul::cli
