// `pghaul task ...` and `pghaul agents show --tasks` end to end: the whole CLI against a real gRPC
// server in this process whose Migrations service answers the task RPCs from canned data. Waiting
// is tested by a sleep that advances a FakeClock, so no test sleeps.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cli/app.h"
#include "cli/commands_tasks.h"
#include "common/clock.h"
#include "common/task_names.h"
#include "common/time_proto.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "pghaul/v1/migrations.grpc.pb.h"

namespace pghaul::cli {
namespace {

using ::testing::AllOf;
using ::testing::Each;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::Le;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

// One answer of GetTask: the task's next state, or an error.
struct Step {
  grpc::Status status = grpc::Status::OK;
  std::string state;
  std::optional<v1::Progress> progress;
  std::optional<v1::TaskResult> result;
};

Step Running(double percent) {
  Step step;
  step.state = "running";
  v1::Progress progress;
  progress.set_percent(percent);
  progress.set_bytes_total(uint64_t{4} << 30);
  progress.set_bytes_per_second(120.0 * 1024 * 1024);
  progress.set_eta_seconds(80);
  step.progress = progress;
  return step;
}

Step Ended(v1::TaskResult::State state, absl::string_view message) {
  Step step;
  step.state = state == v1::TaskResult::SUCCEEDED ? "succeeded" : "failed";
  v1::TaskResult result;
  result.set_state(state);
  result.set_message(std::string(message));
  step.result = result;
  return step;
}

Step Unavailable() {
  Step step;
  step.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting");
  return step;
}

// A Migrations service that journals tasks in memory. Each GetTask moves a task one step along
// the script set by the test; the last step holds.
class FakeTaskMigrations final : public v1::Migrations::CallbackService {
 public:
  grpc::ServerUnaryReactor* SubmitTask(grpc::CallbackServerContext* context,
                                       const v1::SubmitTaskRequest* request,
                                       v1::TaskInfo* response) override {
    absl::MutexLock lock(&mu_);
    submitted_.push_back(*request);
    auto agent = online_.find(request->agent_id());
    if (agent == online_.end()) {
      return Finish(context, grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown agent"));
    }
    const std::string& id = request->task().task_id();
    if (!tasks_.contains(id)) {
      v1::TaskInfo info;
      info.set_task_id(id);
      info.set_agent_id(request->agent_id());
      info.set_op(DescribeOperation(request->task()));
      info.set_state("pending");
      *info.mutable_created_at() = ToProto(kNow);
      tasks_[id] = info;
      order_.push_back(id);
    }
    *response = tasks_[id];
    return Finish(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* GetTask(grpc::CallbackServerContext* context,
                                    const v1::GetTaskRequest* request,
                                    v1::TaskInfo* response) override {
    absl::MutexLock lock(&mu_);
    get_requests_.push_back(*request);
    auto it = tasks_.find(request->task_id());
    if (it == tasks_.end()) return Finish(context, NotFound(request->task_id()));
    if (!script_.empty()) {
      size_t& next = next_step_[request->task_id()];
      const Step& step = script_[std::min(next, script_.size() - 1)];
      ++next;
      if (!step.status.ok()) return Finish(context, step.status);
      Apply(step, it->second);
    }
    *response = it->second;
    return Finish(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext* context,
                                      const v1::ListTasksRequest* request,
                                      v1::ListTasksResponse* response) override {
    absl::MutexLock lock(&mu_);
    list_requests_.push_back(*request);
    for (auto id = order_.rbegin(); id != order_.rend(); ++id) {
      const v1::TaskInfo& task = tasks_[*id];
      if (request->agent_id().empty() || task.agent_id() == request->agent_id()) {
        *response->add_tasks() = task;
      }
    }
    return Finish(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* CancelTask(grpc::CallbackServerContext* context,
                                       const v1::CancelTaskRequest* request,
                                       v1::TaskInfo* response) override {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(request->task_id());
    if (it == tasks_.end()) return Finish(context, NotFound(request->task_id()));
    *response = it->second;
    if (response->has_result()) return Finish(context, grpc::Status::OK);
    if (!online_[response->agent_id()]) {
      return Finish(context, grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                          absl::StrCat("agent ", response->agent_id(),
                                                       " is offline; cancel again when it is "
                                                       "back")));
    }
    cancelled_.push_back(request->task_id());
    return Finish(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* GetAgent(grpc::CallbackServerContext* context,
                                     const v1::GetAgentRequest* request,
                                     v1::AgentInfo* response) override {
    absl::MutexLock lock(&mu_);
    auto agent = online_.find(request->agent_id());
    if (agent == online_.end()) {
      return Finish(context, grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown agent"));
    }
    response->set_agent_id(request->agent_id());
    response->set_online(agent->second);
    return Finish(context, grpc::Status::OK);
  }

  void AddAgent(const std::string& id, bool online) {
    absl::MutexLock lock(&mu_);
    online_[id] = online;
  }
  // A task as if submitted earlier, in the given state.
  void AddTask(const std::string& id, const std::string& agent, const Step& state,
               absl::Duration age) {
    absl::MutexLock lock(&mu_);
    v1::TaskInfo info;
    info.set_task_id(id);
    info.set_agent_id(agent);
    info.set_op("pgbackrest backup");
    *info.mutable_created_at() = ToProto(kNow - age);
    Apply(state, info);
    v1::TaskEvent* event = info.add_recent_events();
    event->set_seq(1);
    *event->mutable_time() = info.created_at();
    event->mutable_log()->set_stream("stderr");
    event->mutable_log()->set_text("P00   INFO: backup command begin 2.45");
    info.set_events_received(1);
    info.set_last_seq(1);
    tasks_[id] = info;
    order_.push_back(id);
  }
  void SetScript(std::vector<Step> script) {
    absl::MutexLock lock(&mu_);
    script_ = std::move(script);
  }

  std::vector<v1::SubmitTaskRequest> submitted() {
    absl::MutexLock lock(&mu_);
    return submitted_;
  }
  std::vector<v1::GetTaskRequest> get_requests() {
    absl::MutexLock lock(&mu_);
    return get_requests_;
  }
  std::vector<v1::ListTasksRequest> list_requests() {
    absl::MutexLock lock(&mu_);
    return list_requests_;
  }
  std::vector<std::string> cancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }

 private:
  static grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                          const grpc::Status& status) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }
  static grpc::Status NotFound(const std::string& id) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("no task '", id, "' is known"));
  }
  static void Apply(const Step& step, v1::TaskInfo& info) {
    if (!step.state.empty()) info.set_state(step.state);
    if (step.progress.has_value()) *info.mutable_progress() = *step.progress;
    if (step.result.has_value()) {
      *info.mutable_result() = *step.result;
      *info.mutable_finished_at() = ToProto(FromProto(info.created_at()) + absl::Seconds(2));
    }
  }

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, bool> online_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, v1::TaskInfo> tasks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);  // oldest first
  std::vector<Step> script_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, size_t> next_step_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::SubmitTaskRequest> submitted_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::GetTaskRequest> get_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ListTasksRequest> list_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> cancelled_ ABSL_GUARDED_BY(mu_);
};

// A gRPC server on 127.0.0.1 with a port the kernel picked, offering `service`.
class TestServer {
 public:
  explicit TestServer(grpc::Service* service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
  }
  ~TestServer() { server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5))); }

  bool started() const { return server_ != nullptr && port_ > 0; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// An address on which nothing listens: a port the kernel handed out, then closed again.
std::string UnusedLoopbackAddress() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  close(fd);
  return absl::StrCat("127.0.0.1:", ntohs(address.sin_port));
}

class TasksCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.started());
    service_.AddAgent("legacy-db1", /*online=*/true);
    service_.AddAgent("new-db2", /*online=*/false);
    context_.clock = &clock_;
    context_.sleep = [this](absl::Duration d) {
      sleeps_.push_back(d);
      clock_.Advance(d);
    };
    context_.in = &in_;
  }
  void TearDown() override {
    if (!task_file_.empty()) unlink(task_file_.c_str());
  }

  // Runs the whole CLI, as `pghaul --controller <server> args...`.
  int Run(std::vector<std::string> args, std::string address = "") {
    std::vector<std::string> argv = {"pghaul", "--insecure", "--controller",
                                     address.empty() ? server_.address() : address};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<const char*> pointers;
    for (const std::string& arg : argv) pointers.push_back(arg.c_str());
    out_.str("");
    err_.str("");
    return RunPghaul(static_cast<int>(pointers.size()), pointers.data(), out_, err_, context_);
  }

  std::string WriteTaskFile(absl::string_view json) {
    char path[] = "/tmp/pghaul_cli_task_XXXXXX";
    int fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    close(fd);
    task_file_ = path;
    std::ofstream(task_file_) << json;
    return task_file_;
  }

  v1::SubmitTaskRequest OnlySubmission() {
    std::vector<v1::SubmitTaskRequest> submitted = service_.submitted();
    EXPECT_THAT(submitted, SizeIs(1));
    return submitted.empty() ? v1::SubmitTaskRequest() : submitted[0];
  }

  FakeTaskMigrations service_;
  TestServer server_{&service_};
  FakeClock clock_{kNow};
  std::vector<absl::Duration> sleeps_;
  std::istringstream in_;
  RunContext context_;
  std::ostringstream out_;
  std::ostringstream err_;
  std::string task_file_;
};

TEST_F(TasksCliTest, SubmitInlineJsonSendsTheTaskAndPrintsItsInfo) {
  EXPECT_EQ(
      Run({"task", "submit", "legacy-db1", "--json", R"({"sql":{"query":"CURRENT_WAL_LSN"}})"}), 0);
  EXPECT_EQ(err_.str(), "");
  v1::SubmitTaskRequest submitted = OnlySubmission();
  EXPECT_EQ(submitted.agent_id(), "legacy-db1");
  EXPECT_EQ(submitted.task().sql().query(), v1::SqlQuery::CURRENT_WAL_LSN);
  // No --id: pghaul makes one, so that a lost answer can be looked up and retried safely.
  EXPECT_THAT(submitted.task().task_id(), MatchesRegex("[0-9a-f]{32}"));
  EXPECT_THAT(out_.str(),
              StartsWith(absl::StrCat("Task\n  ID:        ", submitted.task().task_id(), "\n")));
  EXPECT_THAT(out_.str(), HasSubstr("  Operation: sql CURRENT_WAL_LSN\n  State:     pending\n"));
  EXPECT_THAT(sleeps_, SizeIs(0));
}

TEST_F(TasksCliTest, SubmitFromFileAcceptsCamelCaseAndPrintsJson) {
  std::string file = WriteTaskFile(R"({"pgbackrest":{"migrationId":"m1","info":{}}})");
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--file", file, "--id", "info-1", "-o", "json"}),
            0);
  v1::SubmitTaskRequest submitted = OnlySubmission();
  EXPECT_EQ(submitted.task().task_id(), "info-1");
  EXPECT_EQ(submitted.task().pgbackrest().migration_id(), "m1");
  EXPECT_TRUE(submitted.task().pgbackrest().has_info());
  EXPECT_THAT(out_.str(), StartsWith("{\"task_id\":\"info-1\",\"agent_id\":\"legacy-db1\","
                                     "\"op\":\"pgbackrest info\",\"state\":\"pending\","));
  std::string json = out_.str();
  EXPECT_EQ(std::count(json.begin(), json.end(), '\n'), 1);
}

TEST_F(TasksCliTest, SubmitFromStandardInputPassesSecretsOnButNeverPrintsThem) {
  in_.str(R"({"configure_pgbackrest":{"migration_id":"m1","stanza":"main",
             "secrets":{"cipher_pass":"hunter2"}}})");
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--file", "-"}), 0);
  EXPECT_EQ(OnlySubmission().task().configure_pgbackrest().secrets().cipher_pass(), "hunter2");
  EXPECT_THAT(out_.str(), HasSubstr("configure-pgbackrest"));
  EXPECT_THAT(out_.str() + err_.str(), Not(HasSubstr("hunter2")));
}

TEST_F(TasksCliTest, BadJsonIsADataErrorNamingTheProblemAndSubmitsNothing) {
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--json", R"({"sql":{"querry":2}})"}), 65);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(),
            "pghaul: the task in --json is not a valid pghaul.v1.Task in JSON: (sql) querry: "
            "Cannot find field.\n");
  EXPECT_THAT(service_.submitted(), SizeIs(0));
}

TEST_F(TasksCliTest, BadJsonWithSecretsIsNotQuotedInTheError) {
  std::string file =
      WriteTaskFile(R"({"configure_pgbackrest":{"secrets":{"s3_key_secret":"hunter2" "oops"}}})");
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--file", file}), 65);
  EXPECT_THAT(err_.str(), HasSubstr(absl::StrCat("the task in file ", file, " is not a valid")));
  EXPECT_THAT(err_.str(), Not(HasSubstr("hunter2")));
}

TEST_F(TasksCliTest, IdFlagContradictingTheTasksOwnIdIsADataError) {
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--id", "a", "--json",
                 R"({"taskId":"b","gatherFacts":{}})"}),
            65);
  EXPECT_THAT(err_.str(), HasSubstr("--id a contradicts the task's own task_id 'b'"));
  EXPECT_THAT(service_.submitted(), SizeIs(0));
}

TEST_F(TasksCliTest, SubmitToAnUnknownAgentSaysWhatToRun) {
  EXPECT_EQ(Run({"task", "submit", "db9", "--json", R"({"gatherFacts":{}})"}), 65);
  EXPECT_EQ(err_.str(),
            "pghaul: no agent 'db9' is registered; `pghaul agents` lists the known ones\n");
}

TEST_F(TasksCliTest, SubmitToAnUnreachableControllerExits69) {
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--wait", "--json", R"({"gatherFacts":{}})"},
                UnusedLoopbackAddress()),
            69);
  EXPECT_THAT(err_.str(), StartsWith("pghaul: cannot reach the controller at 127.0.0.1:"));
  EXPECT_THAT(sleeps_, SizeIs(0));
}

TEST_F(TasksCliTest, WaitPollsUntilSuccessAndExits0) {
  Step done = Ended(v1::TaskResult::SUCCEEDED, "");
  (*done.result->mutable_values())["lsn"] = "0/3000060";
  service_.SetScript({Running(10), Running(45), Running(90), done});
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--wait", "--json",
                 R"({"sql":{"query":"CURRENT_WAL_LSN"}})"}),
            0);
  EXPECT_EQ(err_.str(), "") << "stderr is not a terminal here: no progress";
  EXPECT_THAT(out_.str(), HasSubstr("  State:     succeeded\n"));
  EXPECT_THAT(out_.str(), HasSubstr("Values\n  lsn:       0/3000060\n"));
  EXPECT_THAT(service_.get_requests(), SizeIs(4));
  EXPECT_THAT(sleeps_, SizeIs(4));
  EXPECT_THAT(sleeps_, Each(AllOf(Ge(absl::Milliseconds(200)), Le(absl::Milliseconds(500)))));
}

TEST_F(TasksCliTest, WaitForAFailedTaskExits1WithItsMessage) {
  service_.SetScript({Running(50), Ended(v1::TaskResult::FAILED,
                                         "pgbackrest exited 56: [056]: unable to find stanza")});
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--id", "info-2", "--wait", "--json",
                 R"({"pgbackrest":{"migrationId":"m1","info":{}}})"}),
            1);
  EXPECT_EQ(err_.str(),
            "pghaul: task info-2 (pgbackrest info) on agent legacy-db1 failed: pgbackrest exited "
            "56: [056]: unable to find stanza\n");
  EXPECT_THAT(out_.str(), HasSubstr("Result\n  State:     failed\n"));
}

TEST_F(TasksCliTest, WaitForARefusedOrCancelledTaskExits1) {
  service_.SetScript({Ended(v1::TaskResult::REFUSED, "timeout_seconds too large")});
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--id", "r1", "--wait", "-o", "json", "--json",
                 R"({"sql":{"query":"CHECKPOINT"}})"}),
            1);
  EXPECT_THAT(err_.str(), HasSubstr("was refused by the agent (nothing ran): timeout_seconds"));
  EXPECT_THAT(out_.str(), HasSubstr("\"state\":\"REFUSED\""));

  service_.SetScript({Ended(v1::TaskResult::CANCELLED, "cancelled by request")});
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--id", "c1", "--wait", "--json",
                 R"({"sql":{"query":"CHECKPOINT"}})"}),
            1);
  EXPECT_THAT(err_.str(), HasSubstr("task c1 (sql CHECKPOINT) on agent legacy-db1 was cancelled"));
}

TEST_F(TasksCliTest, WaitDrawsProgressOnATerminalAndErasesIt) {
  context_.err_terminal_columns = 200;
  service_.SetScript({Running(45), Ended(v1::TaskResult::SUCCEEDED, "")});
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--id", "b1", "--wait", "--json",
                 R"({"pgbackrest":{"migrationId":"m1","backup":{"type":"full"}}})"}),
            0);
  std::string err = err_.str();
  EXPECT_THAT(err, HasSubstr("\r\x1b[Ktask b1 (pgbackrest backup on legacy-db1): pending"));
  EXPECT_THAT(err, HasSubstr("\r\x1b[Ktask b1 (pgbackrest backup on legacy-db1): running 45% "
                             "120 MiB/s ETA 1m20s, "));
  EXPECT_THAT(err, ::testing::EndsWith("\r\x1b[K")) << "the status line is left behind";
  EXPECT_THAT(out_.str(), Not(HasSubstr("\x1b")));
}

TEST_F(TasksCliTest, WaitThatRunsOutOfTimeExits75AndTheTaskGoesOn) {
  service_.SetScript({Running(10)});
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--id", "slow", "--wait", "--timeout", "5s",
                 "--json", R"({"sql":{"query":"CHECKPOINT"}})"}),
            75);
  EXPECT_EQ(err_.str(),
            "pghaul: task slow (sql CHECKPOINT) on agent legacy-db1 is still running after 5s "
            "(the --timeout of --wait); it goes on: `pghaul task show slow` follows it, "
            "`pghaul task cancel slow` stops it\n");
  EXPECT_THAT(out_.str(), HasSubstr("State:     running"));
  EXPECT_EQ(clock_.Now() - kNow, absl::Seconds(5));
  EXPECT_THAT(service_.cancelled(), SizeIs(0));
}

TEST_F(TasksCliTest, WaitRidesOutABriefControllerOutage) {
  service_.SetScript(
      {Running(10), Unavailable(), Unavailable(), Ended(v1::TaskResult::SUCCEEDED, "")});
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--wait", "--json", R"({"gatherFacts":{}})"}), 0);
  EXPECT_THAT(service_.get_requests(), SizeIs(4));
}

TEST_F(TasksCliTest, WaitGivesUpWhenTheControllerStaysAway) {
  service_.SetScript({Unavailable()});
  EXPECT_EQ(Run({"task", "submit", "legacy-db1", "--id", "t1", "--wait", "--json",
                 R"({"gatherFacts":{}})"}),
            69);
  EXPECT_THAT(err_.str(), HasSubstr("is unavailable (restarting)"));
  EXPECT_THAT(err_.str(), HasSubstr("; task t1 goes on without this pghaul: `pghaul task show "
                                    "t1` once the controller answers again\n"));
  EXPECT_GE(clock_.Now() - kNow, kPollFailureGrace);
  EXPECT_LT(clock_.Now() - kNow, kPollFailureGrace + absl::Seconds(1));
}

TEST_F(TasksCliTest, ShowPrintsTheTaskWithItsEvents) {
  service_.AddTask("b7", "legacy-db1", Running(45), absl::Minutes(3));
  EXPECT_EQ(Run({"task", "show", "b7", "--events", "5"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("  Progress:  45% (0 B of 4.0 GiB) 120 MiB/s ETA 1m20s\n"));
  EXPECT_THAT(out_.str(), HasSubstr("Recent events (last 1 of 1, times UTC)\n  22:10:20   #1   "
                                    "stderr   P00   INFO: backup command begin 2.45\n"));
  ASSERT_THAT(service_.get_requests(), SizeIs(1));
  EXPECT_EQ(service_.get_requests()[0].recent_events(), 5u);
}

TEST_F(TasksCliTest, ShowJsonIsTheTaskInfo) {
  service_.AddTask("b7", "legacy-db1", Ended(v1::TaskResult::SUCCEEDED, "done"), absl::Hours(1));
  EXPECT_EQ(Run({"task", "show", "b7", "-o", "json"}), 0);
  EXPECT_THAT(out_.str(), StartsWith("{\"task_id\":\"b7\",\"agent_id\":\"legacy-db1\","));
  EXPECT_THAT(out_.str(), HasSubstr("\"result\":{\"state\":\"SUCCEEDED\",\"message\":\"done\","));
  EXPECT_THAT(out_.str(), HasSubstr("\"recent_events\":[{\"task_id\":\"\",\"seq\":\"1\","));
  EXPECT_EQ(service_.get_requests()[0].recent_events(), kDefaultRecentEvents);
}

TEST_F(TasksCliTest, ShowOfAnUnknownIdIsADataErrorThatSaysWhatToRun) {
  EXPECT_EQ(Run({"task", "show", "nope"}), 65);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(),
            "pghaul: no task 'nope' is known to the controller; `pghaul task list` lists the "
            "recent ones\n");
}

TEST_F(TasksCliTest, ShowOfAMalformedIdFailsBeforeAsking) {
  EXPECT_EQ(Run({"task", "show", "../etc"}), 65);
  EXPECT_THAT(err_.str(), StartsWith("pghaul: '../etc' is not a task id: task id must be"));
  EXPECT_THAT(service_.get_requests(), SizeIs(0));
}

TEST_F(TasksCliTest, CancelAsksTheAgentAndSaysHowToFollowUp) {
  service_.AddTask("b7", "legacy-db1", Running(45), absl::Minutes(3));
  EXPECT_EQ(Run({"task", "cancel", "b7"}), 0);
  EXPECT_EQ(service_.cancelled(), std::vector<std::string>{"b7"});
  EXPECT_EQ(out_.str(),
            "Asked agent legacy-db1 to cancel task b7 (pgbackrest backup). It ends as cancelled "
            "once the agent has stopped it; `pghaul task show b7` tells.\n");
}

TEST_F(TasksCliTest, CancelOfAFinishedTaskSaysThereIsNothingToCancel) {
  service_.AddTask("b7", "legacy-db1", Ended(v1::TaskResult::SUCCEEDED, ""), absl::Minutes(3));
  EXPECT_EQ(Run({"task", "cancel", "b7"}), 0);
  EXPECT_EQ(out_.str(), "Task b7 had already finished (succeeded); nothing to cancel.\n");
  EXPECT_THAT(service_.cancelled(), SizeIs(0));
}

TEST_F(TasksCliTest, CancelOnAnOfflineAgentExits69WithTheControllersReason) {
  service_.AddTask("b8", "new-db2", Running(5), absl::Minutes(3));
  EXPECT_EQ(Run({"task", "cancel", "b8"}), 69);
  EXPECT_EQ(err_.str(),
            "pghaul: the controller could not pass the cancel on: agent new-db2 is offline; "
            "cancel again when it is back\n");
}

TEST_F(TasksCliTest, CancelOfAnUnknownIdExits65) {
  EXPECT_EQ(Run({"task", "cancel", "nope"}), 65);
  EXPECT_THAT(err_.str(), HasSubstr("no task 'nope' is known to the controller"));
}

TEST_F(TasksCliTest, ListShowsEveryAgentsTasksWithAnAgentColumn) {
  service_.AddTask("old", "new-db2", Ended(v1::TaskResult::FAILED, "no space"), absl::Hours(2));
  service_.AddTask("new", "legacy-db1", Running(45), absl::Seconds(30));
  EXPECT_EQ(Run({"task", "list"}), 0);
  EXPECT_EQ(out_.str(),
            "TASK   AGENT        OPERATION           STATE     PROGRESS                  STARTED   "
            "DURATION   MESSAGE\n"
            "new    legacy-db1   pgbackrest backup   running   45% 120 MiB/s ETA 1m20s   30s ago   "
            "30s        -\n"
            "old    new-db2      pgbackrest backup   failed    -                         2h ago    "
            "2s         no space\n");
  ASSERT_THAT(service_.list_requests(), SizeIs(1));
  EXPECT_EQ(service_.list_requests()[0].agent_id(), "");
  EXPECT_EQ(service_.list_requests()[0].limit(), 20u);
}

TEST_F(TasksCliTest, ListForOneAgentPassesTheFilterAndLimit) {
  service_.AddTask("old", "new-db2", Ended(v1::TaskResult::FAILED, "no space"), absl::Hours(2));
  EXPECT_EQ(Run({"tasks", "list", "--agent", "new-db2", "--limit", "5"}), 0);
  EXPECT_THAT(out_.str(), StartsWith("TASK   OPERATION           STATE"));
  EXPECT_EQ(service_.list_requests()[0].agent_id(), "new-db2");
  EXPECT_EQ(service_.list_requests()[0].limit(), 5u);
  EXPECT_EQ(Run({"task", "list", "--agent", "legacy-db1"}), 0);
  EXPECT_EQ(out_.str(),
            "No tasks for agent 'legacy-db1'. (`pghaul agents` lists the agent ids.)\n");
}

TEST_F(TasksCliTest, ListJsonIsTheListTasksResponse) {
  EXPECT_EQ(Run({"task", "list", "-o", "json"}), 0);
  EXPECT_EQ(out_.str(), "{\"tasks\":[]}\n");
  service_.AddTask("t1", "legacy-db1", Running(1), absl::Seconds(1));
  EXPECT_EQ(Run({"task", "list", "-o", "json"}), 0);
  EXPECT_THAT(out_.str(), StartsWith("{\"tasks\":[{\"task_id\":\"t1\","));
}

TEST_F(TasksCliTest, AgentsShowWithTasksAppendsTheTaskTable) {
  service_.AddTask("b7", "legacy-db1", Running(45), absl::Minutes(3));
  EXPECT_EQ(Run({"agents", "show", "legacy-db1", "--tasks"}), 0);
  EXPECT_THAT(out_.str(), StartsWith("Agent\n  ID:"));
  EXPECT_THAT(out_.str(),
              HasSubstr("\nRecent tasks (newest first)\n"
                        "  TASK   OPERATION           STATE     PROGRESS                  STARTED  "
                        " DURATION   MESSAGE\n"
                        "  b7     pgbackrest backup   running   45% 120 MiB/s ETA 1m20s   3m ago   "
                        " 3m         -\n"));
  EXPECT_EQ(service_.list_requests()[0].agent_id(), "legacy-db1");
  EXPECT_EQ(service_.list_requests()[0].limit(), 10u);
}

TEST_F(TasksCliTest, AgentsShowWithTasksAsJsonNestsBoth) {
  service_.AddTask("b7", "legacy-db1", Running(45), absl::Minutes(3));
  EXPECT_EQ(Run({"agents", "show", "legacy-db1", "--tasks", "--limit", "3", "-o", "json"}), 0);
  EXPECT_THAT(out_.str(), StartsWith("{\"agent\":{\"agent_id\":\"legacy-db1\",\"online\":true,"));
  EXPECT_THAT(out_.str(), HasSubstr("},\"tasks\":[{\"task_id\":\"b7\","));
  EXPECT_THAT(out_.str(), ::testing::EndsWith("}]}\n"));
  EXPECT_EQ(service_.list_requests()[0].limit(), 3u);
}

TEST_F(TasksCliTest, AgentsShowWithoutTasksDoesNotAskForThem) {
  EXPECT_EQ(Run({"agents", "show", "legacy-db1", "-o", "json"}), 0);
  EXPECT_THAT(out_.str(), StartsWith("{\"agent_id\":\"legacy-db1\""));
  EXPECT_THAT(service_.list_requests(), SizeIs(0));
}

}  // namespace
}  // namespace pghaul::cli
