// The migration commands end to end: the whole CLI against a real gRPC server on 127.0.0.1:0 in
// this process, whose Migrations service plays a migration from a script the test writes.
// Following a migration is tested with a sleep that advances a FakeClock, so no test sleeps.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cli/app.h"
#include "cli/commands_migrations.h"
#include "cli/migration_follow.h"
#include "cli/migration_table.h"
#include "common/clock.h"
#include "common/time_proto.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "pghaul/v1/migrations.grpc.pb.h"

namespace pghaul::cli {
namespace {

using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);  // 2023-11-14 22:13:20 UTC

// One answer of GetMigration: an error, or a change to the migration (new events, a new state)
// before it answers.
struct Step {
  grpc::Status status = grpc::Status::OK;
  std::function<void(v1::MigrationInfo&)> change;
};

void AddEvent(v1::MigrationInfo& migration, const std::string& phase, const std::string& text,
              const std::string& level = "info") {
  v1::MigrationEvent* event = migration.add_events();
  event->set_seq(migration.last_event_seq() + 1);
  *event->mutable_time() = ToProto(kNow + absl::Seconds(static_cast<int64_t>(event->seq())));
  event->set_phase(phase);
  event->set_level(level);
  event->set_text(text);
  migration.set_last_event_seq(event->seq());
}

void SetPhase(v1::MigrationInfo& migration, const std::string& name, const std::string& state) {
  for (v1::PhaseInfo& phase : *migration.mutable_phases()) {
    if (phase.name() == name) phase.set_state(state);
  }
}

Step Change(std::function<void(v1::MigrationInfo&)> change) {
  Step step;
  step.change = std::move(change);
  return step;
}

Step Event(std::string phase, std::string text) {
  return Change([phase, text](v1::MigrationInfo& m) { AddEvent(m, phase, text); });
}

Step Progress(double percent) {
  return Change([percent](v1::MigrationInfo& m) {
    m.mutable_progress()->set_percent(percent);
    m.mutable_progress()->set_bytes_total(uint64_t{4} << 30);
    m.mutable_progress()->set_bytes_done(
        static_cast<uint64_t>(percent / 100 * static_cast<double>(uint64_t{4} << 30)));
    m.mutable_progress()->set_bytes_per_second(120.0 * (1 << 20));
    m.mutable_progress()->set_eta_seconds(80);
  });
}

Step Ends(std::string state, std::string message) {
  return Change([state, message](v1::MigrationInfo& m) {
    m.set_state(state);
    m.set_message(message);
    m.clear_progress();
  });
}

Step Unavailable() {
  Step step;
  step.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting");
  return step;
}

// A Migrations service holding one migration, "m1", which each GetMigration moves one step
// along the script the test set (the last step holds) while the migration is running,
// scheduled or aborting. It records every request.
class FakeMigrations final : public v1::Migrations::CallbackService {
 public:
  FakeMigrations() { Reset(); }

  grpc::ServerUnaryReactor* ApplyPlan(grpc::CallbackServerContext* context,
                                      const v1::ApplyPlanRequest* request,
                                      v1::MigrationInfo* response) override {
    absl::MutexLock lock(&mu_);
    apply_requests_.push_back(*request);
    if (!apply_status_.ok()) return Finish(context, apply_status_);
    *response = migration_;
    return Finish(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ListMigrations(grpc::CallbackServerContext* context,
                                           const v1::ListMigrationsRequest* request,
                                           v1::ListMigrationsResponse* response) override {
    absl::MutexLock lock(&mu_);
    for (const v1::MigrationInfo& migration : listed_) *response->add_migrations() = migration;
    return Finish(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* GetMigration(grpc::CallbackServerContext* context,
                                         const v1::GetMigrationRequest* request,
                                         v1::MigrationInfo* response) override {
    absl::MutexLock lock(&mu_);
    get_requests_.push_back(*request);
    if (request->migration_id() != migration_.migration_id()) {
      return Finish(context, grpc::Status(grpc::StatusCode::NOT_FOUND, "no such migration"));
    }
    if (!script_.empty() && MigrationIsActive(migration_.state())) {
      const Step& step = script_[std::min(next_step_, script_.size() - 1)];
      ++next_step_;
      if (!step.status.ok()) return Finish(context, step.status);
      if (step.change) step.change(migration_);
    }
    // As the controller: the newest max_events (0: 50) of the events after events_after.
    *response = migration_;
    response->clear_events();
    std::vector<const v1::MigrationEvent*> newer;
    for (const v1::MigrationEvent& event : migration_.events()) {
      if (event.seq() > request->events_after()) newer.push_back(&event);
    }
    size_t max = request->max_events() == 0 ? 50 : request->max_events();
    size_t skip = newer.size() > max ? newer.size() - max : 0;
    for (size_t i = skip; i < newer.size(); ++i) *response->add_events() = *newer[i];
    return Finish(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* StartPhase(grpc::CallbackServerContext* context,
                                       const v1::StartPhaseRequest* request,
                                       v1::StartPhaseResponse* response) override {
    absl::MutexLock lock(&mu_);
    start_requests_.push_back(*request);
    if (!start_status_.ok()) return Finish(context, start_status_);
    if (request->migration_id() != migration_.migration_id()) {
      return Finish(context, grpc::Status(grpc::StatusCode::NOT_FOUND, "no such migration"));
    }
    if (request->dry_run()) {
      *response->mutable_planned() = planned_;
    } else {
      AddEvent(migration_, "", absl::StrCat("`", request->command(), "` requested"));
      migration_.set_state(request->has_not_before() ? "scheduled" : "running");
      if (request->has_not_before()) *migration_.mutable_not_before() = request->not_before();
      migration_.set_goal(request->until().empty() ? "finish" : request->until());
    }
    *response->mutable_migration() = migration_;
    return Finish(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* AbortMigration(grpc::CallbackServerContext* context,
                                           const v1::AbortMigrationRequest* request,
                                           v1::MigrationInfo* response) override {
    absl::MutexLock lock(&mu_);
    abort_requests_.push_back(*request);
    if (!abort_status_.ok()) return Finish(context, abort_status_);
    AddEvent(migration_, "", "abort requested");
    migration_.set_state("aborting");
    *response = migration_;
    return Finish(context, grpc::Status::OK);
  }

  void Reset() {
    absl::MutexLock lock(&mu_);
    migration_ = v1::MigrationInfo();
    migration_.set_migration_id("m1");
    migration_.set_source_agent("legacy-db1");
    migration_.set_target_agent("new-db2");
    migration_.set_stanza("main");
    migration_.set_repository("posix /var/lib/pghaul/repo");
    migration_.set_state("planned");
    for (absl::string_view name : kPhaseNames) {
      v1::PhaseInfo* phase = migration_.add_phases();
      phase->set_name(std::string(name));
      phase->set_state("pending");
    }
  }
  void Modify(const std::function<void(v1::MigrationInfo&)>& change) {
    absl::MutexLock lock(&mu_);
    change(migration_);
  }
  void SetScript(std::vector<Step> script) {
    absl::MutexLock lock(&mu_);
    script_ = std::move(script);
    next_step_ = 0;
  }
  void SetListed(std::vector<v1::MigrationInfo> listed) {
    absl::MutexLock lock(&mu_);
    listed_ = std::move(listed);
  }
  void SetPlanned(std::vector<v1::PlannedTask> planned) {
    absl::MutexLock lock(&mu_);
    planned_.Clear();
    for (v1::PlannedTask& task : planned) *planned_.Add() = std::move(task);
  }
  void SetApplyStatus(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    apply_status_ = std::move(status);
  }
  void SetStartStatus(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    start_status_ = std::move(status);
  }
  void SetAbortStatus(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    abort_status_ = std::move(status);
  }

  std::vector<v1::ApplyPlanRequest> apply_requests() {
    absl::MutexLock lock(&mu_);
    return apply_requests_;
  }
  std::vector<v1::GetMigrationRequest> get_requests() {
    absl::MutexLock lock(&mu_);
    return get_requests_;
  }
  std::vector<v1::StartPhaseRequest> start_requests() {
    absl::MutexLock lock(&mu_);
    return start_requests_;
  }
  std::vector<v1::AbortMigrationRequest> abort_requests() {
    absl::MutexLock lock(&mu_);
    return abort_requests_;
  }

 private:
  static grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                          const grpc::Status& status) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  absl::Mutex mu_;
  v1::MigrationInfo migration_ ABSL_GUARDED_BY(mu_);
  std::vector<Step> script_ ABSL_GUARDED_BY(mu_);
  size_t next_step_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::MigrationInfo> listed_ ABSL_GUARDED_BY(mu_);
  google::protobuf::RepeatedPtrField<v1::PlannedTask> planned_ ABSL_GUARDED_BY(mu_);
  grpc::Status apply_status_ ABSL_GUARDED_BY(mu_);
  grpc::Status start_status_ ABSL_GUARDED_BY(mu_);
  grpc::Status abort_status_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ApplyPlanRequest> apply_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::GetMigrationRequest> get_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::StartPhaseRequest> start_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::AbortMigrationRequest> abort_requests_ ABSL_GUARDED_BY(mu_);
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

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// "HH:MM:SS" of the event with sequence number `seq` (AddEvent's time) in the local zone, as
// the CLI prints it.
std::string LocalClockOfEvent(uint64_t seq) {
  return absl::FormatTime("%H:%M:%S", kNow + absl::Seconds(static_cast<int64_t>(seq)),
                          absl::LocalTimeZone());
}

class MigrationsCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.started());
    context_.clock = &clock_;
    context_.sleep = [this](absl::Duration d) {
      sleeps_.push_back(d);
      clock_.Advance(d);
    };
  }
  void TearDown() override {
    for (const std::string& file : files_) unlink(file.c_str());
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
    sleeps_.clear();
    return RunPghaul(static_cast<int>(pointers.size()), pointers.data(), out_, err_, context_);
  }

  std::string WriteFile(absl::string_view contents) {
    char path[] = "/tmp/pghaul_cli_migration_XXXXXX";
    int fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    close(fd);
    files_.push_back(path);
    std::ofstream(path) << contents;
    return path;
  }

  FakeMigrations service_;
  TestServer server_{&service_};
  FakeClock clock_{kNow};
  std::vector<absl::Duration> sleeps_;
  RunContext context_;
  std::ostringstream out_;
  std::ostringstream err_;
  std::vector<std::string> files_;
};

// --- plan apply ---------------------------------------------------------------------------

TEST_F(MigrationsCliTest, PlanApplySendsThePlanItsCheckFilesAndFlags) {
  std::string orders = WriteFile("SELECT count(*) FROM orders;\n");
  std::string users = WriteFile("SELECT max(id) FROM users;\n");
  std::string plan_text = absl::StrCat("name: m1\nsource: {agent: legacy-db1}\nchecks:\n  - ",
                                       orders, "\n  - ", users, "\n");
  std::string plan = WriteFile(plan_text);
  EXPECT_EQ(Run({"plan", "apply", plan, "--replace"}), 0);
  EXPECT_EQ(err_.str(), "");
  ASSERT_THAT(service_.apply_requests(), SizeIs(1));
  v1::ApplyPlanRequest sent = service_.apply_requests()[0];
  EXPECT_EQ(sent.plan_yaml(), plan_text);
  EXPECT_EQ(sent.source_name(), plan);
  EXPECT_FALSE(sent.dry_run());
  EXPECT_TRUE(sent.replace());
  ASSERT_THAT(sent.check_files(), SizeIs(2));
  EXPECT_EQ(sent.check_files().at(orders), "SELECT count(*) FROM orders;\n");
  EXPECT_EQ(sent.check_files().at(users), "SELECT max(id) FROM users;\n");
  EXPECT_EQ(out_.str(),
            "migration m1 planned again (the plan was replaced): source legacy-db1 -> target "
            "new-db2, stanza main, repository posix /var/lib/pghaul/repo; next: pghaul run m1\n");
}

TEST_F(MigrationsCliTest, PlanApplyConfirmsWhatWasPlannedAndWhatToRunNext) {
  std::string plan = WriteFile("name: m1\n");
  EXPECT_EQ(Run({"plan", "apply", plan}), 0);
  EXPECT_EQ(out_.str(),
            "migration m1 planned: source legacy-db1 -> target new-db2, stanza main, repository "
            "posix /var/lib/pghaul/repo; next: pghaul run m1\n");
  EXPECT_THAT(service_.apply_requests()[0].check_files(), SizeIs(0));
}

TEST_F(MigrationsCliTest, PlanApplyDryRunSaysNothingWasStored) {
  std::string plan = WriteFile("name: m1\n");
  EXPECT_EQ(Run({"plan", "apply", plan, "--dry-run"}), 0);
  EXPECT_TRUE(service_.apply_requests()[0].dry_run());
  EXPECT_FALSE(service_.apply_requests()[0].replace());
  EXPECT_THAT(out_.str(), StartsWith("plan valid, nothing stored (migration m1: source "
                                     "legacy-db1 -> target new-db2"));
}

TEST_F(MigrationsCliTest, PlanApplyOfAnUnreadableFileNamesItAndSendsNothing) {
  EXPECT_EQ(Run({"plan", "apply", "/nonexistent/plan.yaml"}), 65);
  EXPECT_EQ(err_.str(),
            "pghaul: cannot read the plan file: cannot open '/nonexistent/plan.yaml': No such "
            "file or directory\n");
  EXPECT_THAT(service_.apply_requests(), SizeIs(0));
}

TEST_F(MigrationsCliTest, PlanApplyWithAMissingCheckFileNamesItAndSendsNothing) {
  std::string plan = WriteFile("name: m1\nchecks: [/nonexistent/orders.sql]\n");
  EXPECT_EQ(Run({"plan", "apply", plan}), 65);
  EXPECT_THAT(err_.str(), StartsWith("pghaul: cannot read the check file /nonexistent/orders.sql "
                                     "that the plan's `checks` names: cannot open"));
  EXPECT_THAT(err_.str(), HasSubstr("nothing was sent to the controller"));
  EXPECT_THAT(service_.apply_requests(), SizeIs(0));
}

TEST_F(MigrationsCliTest, PlanApplyLeavesWhatIsNotAListOfPathsToTheController) {
  // Not YAML, and a relative path: the controller reports both with all other problems.
  std::string broken = WriteFile("name: [m1\n");
  EXPECT_EQ(Run({"plan", "apply", broken}), 0);
  std::string relative = WriteFile("checks: [checks/orders.sql]\n");
  EXPECT_EQ(Run({"plan", "apply", relative}), 0);
  ASSERT_THAT(service_.apply_requests(), SizeIs(2));
  EXPECT_THAT(service_.apply_requests()[0].check_files(), SizeIs(0));
  EXPECT_THAT(service_.apply_requests()[1].check_files(), SizeIs(0));
}

TEST_F(MigrationsCliTest, PlanRejectedByTheControllerIsPrintedLineByLineAndExits65) {
  service_.SetApplyStatus(grpc::Status(
      grpc::StatusCode::INVALID_ARGUMENT,
      "plan.yaml: 2 problems:\n  unknown key 'stanzza' (did you mean 'stanza'?) at line 3\n"
      "  key 'fence': expected one of: read-only, stop, got \"soft\" at line 9"));
  std::string plan = WriteFile("name: m1\n");
  EXPECT_EQ(Run({"plan", "apply", plan}), 65);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(),
            "pghaul: plan.yaml: 2 problems:\n  unknown key 'stanzza' (did you mean 'stanza'?) at "
            "line 3\n  key 'fence': expected one of: read-only, stop, got \"soft\" at line 9\n");
}

TEST_F(MigrationsCliTest, PlanApplyOfAnExistingMigrationSuggestsReplace) {
  service_.SetApplyStatus(
      grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "migration m1 already exists"));
  std::string plan = WriteFile("name: m1\n");
  EXPECT_EQ(Run({"plan", "apply", plan}), 65);
  EXPECT_EQ(err_.str(),
            "pghaul: migration m1 already exists; `pghaul plan apply FILE --replace` replaces the "
            "plan of a migration that has not started any phase\n");
}

TEST_F(MigrationsCliTest, PlanApplyJsonIsTheMigrationInfo) {
  std::string plan = WriteFile("name: m1\n");
  EXPECT_EQ(Run({"plan", "apply", plan, "-o", "json"}), 0);
  nlohmann::json json = nlohmann::json::parse(out_.str());
  EXPECT_EQ(json["migration_id"], "m1");
  EXPECT_EQ(json["state"], "planned");
}

TEST_F(MigrationsCliTest, PlanWithoutASubcommandOrFileIsAUsageError) {
  EXPECT_EQ(Run({"plan"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("plan needs a subcommand: apply"));
  EXPECT_EQ(Run({"plan", "apply"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("FILE is required"));
  EXPECT_THAT(service_.apply_requests(), SizeIs(0));
}

// --- migrations, status -------------------------------------------------------------------

TEST_F(MigrationsCliTest, MigrationsListsEachWithStatePhaseAgentsAndUpdate) {
  v1::MigrationInfo a;
  a.set_migration_id("legacy-to-new");
  a.set_state("running");
  a.set_phase("backup");
  a.set_source_agent("legacy-db1");
  a.set_target_agent("new-db2");
  *a.mutable_updated_at() = ToProto(kNow - absl::Seconds(3));
  v1::MigrationInfo b;
  b.set_migration_id("m2");
  b.set_state("planned");
  b.set_source_agent("old");
  b.set_target_agent("new");
  *b.mutable_updated_at() = ToProto(kNow - absl::Hours(2));
  service_.SetListed({a, b});
  EXPECT_EQ(Run({"migrations"}), 0);
  EXPECT_EQ(out_.str(),
            "MIGRATION       STATE     PHASE    SOURCE -> TARGET        UPDATED\n"
            "legacy-to-new   running   backup   legacy-db1 -> new-db2   3s ago\n"
            "m2              planned   -        old -> new              2h ago\n");

  EXPECT_EQ(Run({"migrations", "-o", "json"}), 0);
  nlohmann::json json = nlohmann::json::parse(out_.str());
  ASSERT_TRUE(json.is_array());
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[0]["migration_id"], "legacy-to-new");
  EXPECT_EQ(json[1]["state"], "planned");
}

TEST_F(MigrationsCliTest, NoMigrationsSaysHowToMakeOne) {
  EXPECT_EQ(Run({"migrations"}), 0);
  EXPECT_EQ(out_.str(), "No migrations: `pghaul plan apply FILE` creates one (docs/plan.md).\n");
  EXPECT_EQ(Run({"migrations", "-o", "json"}), 0);
  EXPECT_EQ(out_.str(), "[]\n");
}

TEST_F(MigrationsCliTest, StatusAsksForTheLast20EventsAndShowsTheReport) {
  service_.Modify([](v1::MigrationInfo& m) {
    m.set_state("failed");
    m.set_phase("preflight");
    m.set_message("preflight failed: fix the checks marked fail, then `pghaul run m1`");
    AddEvent(m, "preflight", "started");
  });
  EXPECT_EQ(Run({"status", "m1"}), 0);
  ASSERT_THAT(service_.get_requests(), SizeIs(1));
  EXPECT_EQ(service_.get_requests()[0].events_after(), 0u);
  EXPECT_EQ(service_.get_requests()[0].max_events(), 20u);
  EXPECT_THAT(out_.str(), StartsWith("Migration\n  ID:"));
  EXPECT_THAT(out_.str(),
              HasSubstr(absl::StrCat("\n  ", LocalClockOfEvent(1), "  preflight       started\n")));
  EXPECT_THAT(out_.str(),
              EndsWith("\npreflight failed: fix the checks marked fail, then `pghaul run m1`\n"));

  EXPECT_EQ(Run({"status", "m1", "-o", "json"}), 0);
  nlohmann::json json = nlohmann::json::parse(out_.str());
  EXPECT_EQ(json["state"], "failed");
  EXPECT_EQ(json["events"][0]["text"], "started");
}

TEST_F(MigrationsCliTest, StatusOfAnUnknownOrMalformedIdIsADataError) {
  EXPECT_EQ(Run({"status", "m9"}), 65);
  EXPECT_EQ(err_.str(),
            "pghaul: no migration 'm9' is known to the controller; `pghaul migrations` lists "
            "them\n");
  EXPECT_EQ(Run({"status", "Bad/Id"}), 65);
  EXPECT_THAT(err_.str(), StartsWith("pghaul: 'Bad/Id' is not a migration id"));
  EXPECT_THAT(service_.get_requests(), SizeIs(1));
}

// The report in a fixed zone, so every line can be checked.
TEST(MigrationStatusFormatTest, ShowsPhasesChecksVerifyBackupDowntimeAndEvents) {
  const absl::TimeZone zone = absl::FixedTimeZone(3600);
  v1::MigrationInfo m;
  m.set_migration_id("m1");
  m.set_state("running");
  m.set_phase("backup");
  m.set_goal("verify");
  m.set_source_agent("legacy-db1");
  m.set_target_agent("new-db2");
  m.set_stanza("main");
  m.set_repository("posix /repo");
  m.set_backup_label("20231114-221320F");
  m.set_backup_bytes(uint64_t{3} << 30);
  m.set_downtime_seconds(1.42);
  m.mutable_cutover_compare()->set_passed(true);
  m.mutable_cutover_compare()->set_objects_compared(40);
  m.mutable_cutover_compare()->set_objects_matching(40);
  m.set_new_stanza("main-new");
  m.set_new_stanza_backup_label("20231115-010000F");
  m.set_current_task_id("m1-backup-1");
  m.mutable_progress()->set_percent(45);
  m.mutable_progress()->set_bytes_total(uint64_t{4} << 30);
  m.mutable_progress()->set_bytes_per_second(120.0 * (1 << 20));
  m.mutable_progress()->set_eta_seconds(80);
  *m.mutable_created_at() = ToProto(kNow - absl::Hours(1));
  *m.mutable_updated_at() = ToProto(kNow - absl::Seconds(3));
  v1::PhaseInfo* preflight = m.add_phases();
  preflight->set_name("preflight");
  preflight->set_state("succeeded");
  preflight->set_attempt(2);
  *preflight->mutable_started_at() = ToProto(kNow - absl::Minutes(10));
  *preflight->mutable_finished_at() = ToProto(kNow - absl::Minutes(10) + absl::Seconds(4));
  v1::PhaseInfo* backup = m.add_phases();
  backup->set_name("backup");
  backup->set_state("running");
  backup->set_attempt(1);
  *backup->mutable_started_at() = ToProto(kNow - absl::Seconds(130));
  v1::PhaseInfo* restore = m.add_phases();
  restore->set_name("restore");
  restore->set_state("pending");
  v1::CheckResult* check = m.add_preflight();
  check->set_name("lc_collate");
  check->set_status("warn");
  check->set_source("en_US.UTF-8");
  check->set_target("C.UTF-8");
  check->set_fix("create the target cluster with the source's locale");
  v1::VerifyReport* verify = m.mutable_verify();
  verify->set_passed(false);
  verify->set_objects_compared(12);
  verify->set_objects_matching(11);
  v1::TableComparison* difference = verify->add_differences();
  difference->set_table("sales/public.orders");
  difference->set_status("mismatch");
  difference->set_source_rows(1000);
  difference->set_target_rows(999);
  difference->set_detail("checksums differ");
  AddEvent(m, "backup", "backup started on legacy-db1");
  AddEvent(m, "backup", "slow repository", "warn");
  m.set_message("backing up; then restore and verify");

  EXPECT_EQ(FormatMigrationStatus(m, kNow, zone),
            "Migration\n"
            "  ID:               m1\n"
            "  State:            running\n"
            "  Phase:            backup (running until verify)\n"
            "  Source -> target: legacy-db1 -> new-db2\n"
            "  Stanza:           main\n"
            "  Repository:       posix /repo\n"
            "  Backup:           20231114-221320F, 3.0 GiB\n"
            "  Downtime:         1.4s\n"
            "  Cutover compare:  passed (40 of 40 objects match, at the final LSN)\n"
            "  Target's stanza:  main-new, first full backup 20231115-010000F\n"
            "  Current task:     m1-backup-1 (`pghaul task show m1-backup-1`)\n"
            "  Progress:         45%  0 B / 4.0 GiB  120 MiB/s  ETA 1m20s\n"
            "  Created:          2023-11-14 22:13:20 +01 (1h ago)\n"
            "  Updated:          2023-11-14 23:13:17 +01 (3s ago)\n"
            "\n"
            "Phases (times Fixed/UTC+01:00:00)\n"
            "  PHASE       STATE       ATTEMPT   STARTED    DURATION       MESSAGE\n"
            "  preflight   succeeded   2         23:03:20   4s             -\n"
            "  backup      running     1         23:11:10   2m10s so far   -\n"
            "  restore     pending     -         -          -              -\n"
            "\n"
            "Preflight checks\n"
            "  CHECK        STATUS   SOURCE        TARGET    FIX\n"
            "  lc_collate   warn     en_US.UTF-8   C.UTF-8   create the target cluster with the "
            "source's locale\n"
            "\n"
            "Verify: FAILED (11 of 12 objects match)\n"
            "  OBJECT                STATUS     SOURCE ROWS   TARGET ROWS   DETAIL\n"
            "  sales/public.orders   mismatch   1000          999           checksums differ\n"
            "\n"
            "Recent events (times Fixed/UTC+01:00:00)\n"
            "  23:13:21  backup          backup started on legacy-db1\n"
            "  23:13:22  backup          warning: slow repository\n"
            "\n"
            "backing up; then restore and verify\n");
}

TEST(MigrationStatusFormatTest, EventTextFromHostsCannotForgeLines) {
  v1::MigrationEvent event;
  event.set_phase("restore");
  event.set_text("line one\n12:00:00  cutover  promoted\x1b[2J");
  EXPECT_EQ(FormatEventLine(event, absl::UTCTimeZone()),
            "--:--:--  restore         line one\\n12:00:00  cutover  promoted\\x1b[2J\n");
}

TEST(MigrationStatusFormatTest, PlannedTasksAreGroupedByAgentAsCompactJson) {
  v1::StartPhaseResponse response;
  auto add = [&response](const std::string& agent, const std::string& phase,
                         const std::string& description, const std::string& query) {
    v1::PlannedTask* planned = response.add_planned();
    planned->set_agent_id(agent);
    planned->set_phase(phase);
    planned->set_description(description);
    planned->mutable_task()->set_task_id(absl::StrCat("m1-", query));
    v1::SqlQuery::Query parsed = v1::SqlQuery::QUERY_UNSPECIFIED;
    EXPECT_TRUE(v1::SqlQuery::Query_Parse(query, &parsed));
    planned->mutable_task()->mutable_sql()->set_query(parsed);
  };
  add("legacy-db1", "cutover", "sql FENCE_READ_ONLY", "FENCE_READ_ONLY");
  add("new-db2", "cutover", "sql LAST_REPLAY_LSN", "LAST_REPLAY_LSN");
  add("legacy-db1", "cutover", "sql SWITCH_WAL", "SWITCH_WAL");
  absl::StatusOr<std::string> text = FormatPlannedTasks(response);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text,
            "agent legacy-db1 would run:\n"
            "  1. [cutover] sql FENCE_READ_ONLY "
            "{\"task_id\":\"m1-FENCE_READ_ONLY\",\"sql\":{\"query\":\"FENCE_READ_ONLY\"}}\n"
            "  2. [cutover] sql SWITCH_WAL "
            "{\"task_id\":\"m1-SWITCH_WAL\",\"sql\":{\"query\":\"SWITCH_WAL\"}}\n"
            "\n"
            "agent new-db2 would run:\n"
            "  1. [cutover] sql LAST_REPLAY_LSN "
            "{\"task_id\":\"m1-LAST_REPLAY_LSN\",\"sql\":{\"query\":\"LAST_REPLAY_LSN\"}}\n");
}

// --- watch --------------------------------------------------------------------------------

TEST_F(MigrationsCliTest, WatchPrintsEachEventOnceAndExits0WhenCompleted) {
  service_.Modify([](v1::MigrationInfo& m) {
    m.set_state("running");
    m.set_phase("backup");
    m.set_goal("finish");
    AddEvent(m, "preflight", "all 14 checks passed");
  });
  service_.SetScript({Event("backup", "backup started"), Step(), Event("backup", "backup done"),
                      Ends("completed", "target promoted; downtime 1.4s")});
  EXPECT_EQ(Run({"watch", "m1"}), 0);
  EXPECT_EQ(err_.str(), "");
  EXPECT_EQ(out_.str(),
            absl::StrCat(LocalClockOfEvent(1), "  preflight       all 14 checks passed\n",
                         LocalClockOfEvent(2), "  backup          backup started\n",
                         LocalClockOfEvent(3), "  backup          backup done\n",
                         "migration m1 completed: target promoted; downtime 1.4s\n"));
  std::vector<v1::GetMigrationRequest> requests = service_.get_requests();
  ASSERT_THAT(requests, SizeIs(4));
  EXPECT_EQ(requests[0].events_after(), 0u);
  EXPECT_EQ(requests[0].max_events(), 20u) << "the first poll shows the recent events";
  EXPECT_EQ(requests[1].events_after(), 2u);
  EXPECT_EQ(requests[2].events_after(), 2u);
  EXPECT_EQ(requests[3].events_after(), 3u);
  EXPECT_EQ(requests[3].max_events(), kFollowMaxEvents);
  EXPECT_THAT(sleeps_, SizeIs(3));
  EXPECT_THAT(sleeps_, Each(Eq(absl::Milliseconds(100))));  // the first 10 s: eager
}

TEST_F(MigrationsCliTest, WatchPollsEvery100MsForTenSecondsThenEvery500Ms) {
  service_.Modify([](v1::MigrationInfo& m) {
    m.set_state("running");
    m.set_phase("backup");
  });
  // 105 polls, the last one sees the end: 104 sleeps, 100 in the first 10 s, then 4 slow ones.
  std::vector<Step> script(104, Step());
  script.push_back(Ends("completed", ""));
  service_.SetScript(script);
  EXPECT_EQ(Run({"watch", "m1"}), 0);
  ASSERT_THAT(sleeps_, SizeIs(104));
  for (size_t i = 0; i < sleeps_.size(); ++i) {
    EXPECT_EQ(sleeps_[i], i < 100 ? absl::Milliseconds(100) : absl::Milliseconds(500)) << i;
  }
}

TEST_F(MigrationsCliTest, WatchOfAFailedMigrationExits1WithItsMessage) {
  service_.Modify([](v1::MigrationInfo& m) {
    m.set_state("running");
    m.set_phase("backup");
  });
  service_.SetScript({Step(), Ends("failed",
                                   "pgbackrest backup exited 82; see `pghaul task show "
                                   "m1-backup-1`")});
  EXPECT_EQ(Run({"watch", "m1"}), 1);
  EXPECT_EQ(err_.str(),
            "pghaul: migration m1 failed in phase backup: pgbackrest backup exited 82; see "
            "`pghaul task show m1-backup-1`\n");
}

TEST_F(MigrationsCliTest, WatchOfAnAbortedMigrationExits1) {
  service_.Modify([](v1::MigrationInfo& m) { m.set_state("aborting"); });
  service_.SetScript({Step(), Ends("aborted", "the source is back as it was")});
  EXPECT_EQ(Run({"watch", "m1"}), 1);
  EXPECT_EQ(err_.str(), "pghaul: migration m1 was aborted: the source is back as it was\n");
}

TEST_F(MigrationsCliTest, WatchExits0WhenTheGoalPhaseSucceeded) {
  service_.Modify([](v1::MigrationInfo& m) {
    m.set_state("running");
    m.set_phase("backup");
    m.set_goal("backup");
  });
  service_.SetScript({Change([](v1::MigrationInfo& m) {
    m.set_state("planned");
    SetPhase(m, "backup", "succeeded");
    m.set_message("next: pghaul restore m1");
  })});
  EXPECT_EQ(Run({"watch", "m1"}), 0);
  EXPECT_EQ(out_.str(), "migration m1: backup succeeded: next: pghaul restore m1\n");
}

TEST_F(MigrationsCliTest, WatchExits1WhenTheMigrationStoppedShortOfItsGoal) {
  service_.Modify([](v1::MigrationInfo& m) {
    m.set_state("planned");
    m.set_goal("verify");
    SetPhase(m, "verify", "pending");
  });
  EXPECT_EQ(Run({"watch", "m1"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("migration m1 stopped (planned) before verify succeeded"));
}

TEST_F(MigrationsCliTest, WatchOfAMigrationNeverStartedSaysSoAndExits0) {
  service_.Modify([](v1::MigrationInfo& m) { m.set_message("next: pghaul run m1"); });
  EXPECT_EQ(Run({"watch", "m1"}), 0);
  EXPECT_EQ(out_.str(), "migration m1 is planned, not running: next: pghaul run m1\n");
  EXPECT_THAT(sleeps_, SizeIs(0));
}

TEST_F(MigrationsCliTest, WatchDrawsAProgressBarOnATerminalAndErasesIt) {
  context_.err_terminal_columns = 100;
  service_.Modify([](v1::MigrationInfo& m) {
    m.set_state("running");
    m.set_phase("backup");
  });
  service_.SetScript({Progress(25), Progress(50), Ends("completed", "")});
  EXPECT_EQ(Run({"watch", "m1"}), 0);
  std::string err = err_.str();
  EXPECT_THAT(err, HasSubstr("\r\x1b[Kbackup  [##########------------------------------]   25%  "
                             "1.0 GiB / 4.0 GiB  120 MiB/s  ETA 1m20s"));
  EXPECT_THAT(err, HasSubstr("\r\x1b[Kbackup  [####################--------------------]   50%"));
  EXPECT_THAT(err, EndsWith("\r\x1b[K")) << "the bar is erased at the end";
  EXPECT_THAT(out_.str(), Not(HasSubstr("\x1b")));
  EXPECT_THAT(out_.str(), Not(HasSubstr("progress")));
}

TEST_F(MigrationsCliTest, WatchWithoutATerminalPrintsProgressAtMostEvery5Seconds) {
  service_.Modify([](v1::MigrationInfo& m) {
    m.set_state("running");
    m.set_phase("restore");
  });
  // 111 polls with progress: 100 ms apart for 10 s, then 500 ms apart (15 s in all), so lines
  // at 0 s, 5 s, 10 s and 15 s.
  std::vector<Step> script;
  for (int i = 0; i < 111; ++i) script.push_back(Progress(i * 0.5));
  script.push_back(Ends("completed", ""));
  service_.SetScript(script);
  EXPECT_EQ(Run({"watch", "m1"}), 0);
  std::vector<std::string> lines = Lines(out_.str());
  ASSERT_THAT(lines, SizeIs(5));
  std::string clock = absl::FormatTime("%H:%M:%S", kNow, absl::LocalTimeZone());
  EXPECT_EQ(lines[0], absl::StrCat(clock,
                                   "  restore         progress 0%  0 B / 4.0 GiB  "
                                   "120 MiB/s  ETA 1m20s"));
  EXPECT_THAT(lines[1], HasSubstr("  restore         progress 25%  1.0 GiB / 4.0 GiB"));
  EXPECT_THAT(lines[2], HasSubstr("  restore         progress 50%  2.0 GiB / 4.0 GiB"));
  EXPECT_THAT(lines[3], HasSubstr("  restore         progress 55%  2.2 GiB / 4.0 GiB"));
  EXPECT_EQ(lines[4], "migration m1 completed");
  EXPECT_EQ(err_.str(), "");
}

TEST_F(MigrationsCliTest, WatchJsonIsOneObjectPerEventThenTheMigrationInfo) {
  service_.Modify([](v1::MigrationInfo& m) {
    m.set_state("running");
    m.set_phase("verify");
    AddEvent(m, "verify", "comparing 12 tables");
  });
  service_.SetScript(
      {Progress(10), Event("verify", "all 12 tables match"), Ends("completed", "done")});
  EXPECT_EQ(Run({"watch", "m1", "-o", "json"}), 0);
  std::vector<std::string> lines = Lines(out_.str());
  ASSERT_THAT(lines, SizeIs(3));
  nlohmann::json first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["event"]["seq"], "1");
  EXPECT_EQ(first["event"]["text"], "comparing 12 tables");
  EXPECT_EQ(nlohmann::json::parse(lines[1])["event"]["text"], "all 12 tables match");
  nlohmann::json last = nlohmann::json::parse(lines[2]);
  EXPECT_EQ(last["migration_id"], "m1");
  EXPECT_EQ(last["state"], "completed");
}

TEST_F(MigrationsCliTest, WatchOfAnUnreachableControllerExits69AtOnce) {
  EXPECT_EQ(Run({"watch", "m1"}, UnusedLoopbackAddress()), 69);
  EXPECT_THAT(err_.str(), StartsWith("pghaul: cannot reach the controller at 127.0.0.1:"));
  EXPECT_THAT(sleeps_, SizeIs(0));
}

TEST_F(MigrationsCliTest, WatchOfAnUnknownMigrationExits65) {
  EXPECT_EQ(Run({"watch", "m9"}), 65);
  EXPECT_THAT(err_.str(), HasSubstr("no migration 'm9' is known to the controller"));
}

TEST_F(MigrationsCliTest, WatchRidesOutABriefControllerOutageAndSaysSo) {
  service_.Modify([](v1::MigrationInfo& m) { m.set_state("running"); });
  service_.SetScript({Event("backup", "one"), Unavailable(), Unavailable(), Event("backup", "two"),
                      Ends("completed", "")});
  EXPECT_EQ(Run({"watch", "m1"}), 0);
  EXPECT_THAT(err_.str(), HasSubstr("restarting"));
  EXPECT_THAT(err_.str(), HasSubstr("; retrying for up to 30s\n"));
  EXPECT_THAT(err_.str(), EndsWith("pghaul: the controller answers again\n"));
  EXPECT_THAT(out_.str(), HasSubstr("backup          one\n"));
  EXPECT_THAT(out_.str(), HasSubstr("backup          two\n"));
}

TEST_F(MigrationsCliTest, WatchGivesUpAfter30SecondsWithoutTheControllerAndExits69) {
  service_.Modify([](v1::MigrationInfo& m) { m.set_state("running"); });
  service_.SetScript({Step(), Unavailable()});
  EXPECT_EQ(Run({"watch", "m1"}), 69);
  EXPECT_THAT(err_.str(), HasSubstr("gave up after 30s. The migration goes on without this "
                                    "pghaul: `pghaul watch m1` once the controller answers "
                                    "again\n"));
  EXPECT_GE(clock_.Now() - kNow, kFollowOutageGrace);
  EXPECT_LT(clock_.Now() - kNow, kFollowOutageGrace + absl::Seconds(1));
}

// --- phase commands -----------------------------------------------------------------------

TEST_F(MigrationsCliTest, RunSendsItsFlagsAndFollowsUntilTheGoalSucceeded) {
  service_.Modify([](v1::MigrationInfo& m) { AddEvent(m, "plan", "plan applied"); });
  service_.SetScript({Event("preflight", "all checks passed"), Change([](v1::MigrationInfo& m) {
                        m.set_state("planned");
                        SetPhase(m, "verify", "succeeded");
                        m.set_message("next: pghaul cutover m1");
                      })});
  EXPECT_EQ(Run({"run", "m1", "--until", "verify", "--mode", "standby"}), 0);
  ASSERT_THAT(service_.start_requests(), SizeIs(1));
  v1::StartPhaseRequest sent = service_.start_requests()[0];
  EXPECT_EQ(sent.migration_id(), "m1");
  EXPECT_EQ(sent.command(), "run");
  EXPECT_EQ(sent.until(), "verify");
  EXPECT_EQ(sent.restore_mode(), "standby");
  EXPECT_FALSE(sent.dry_run());
  EXPECT_FALSE(sent.has_not_before());
  // The newest event is noted before the request, so that following prints all it caused.
  std::vector<v1::GetMigrationRequest> polls = service_.get_requests();
  ASSERT_THAT(polls, SizeIs(3));
  EXPECT_EQ(polls[0].max_events(), 1u);
  EXPECT_EQ(polls[1].events_after(), 1u);
  EXPECT_EQ(polls[2].events_after(), 3u);
  EXPECT_EQ(out_.str(),
            absl::StrCat("run (standby) until verify of migration m1 started; following it "
                         "(Ctrl-C stops following, not the migration)\n",
                         LocalClockOfEvent(2), "  -               `run` requested\n",
                         LocalClockOfEvent(3), "  preflight       all checks passed\n",
                         "migration m1: verify succeeded: next: pghaul cutover m1\n"));
}

TEST_F(MigrationsCliTest, PhaseCommandOfAMigrationThatFailsExits1) {
  service_.SetScript({Step(), Ends("failed", "restore refused: target.allow_overwrite is false")});
  EXPECT_EQ(Run({"restore", "m1"}), 1);
  EXPECT_EQ(err_.str(),
            "pghaul: migration m1 failed: restore refused: target.allow_overwrite is false\n");
  service_.Modify([](v1::MigrationInfo& m) { m.set_phase("restore"); });
  EXPECT_EQ(Run({"restore", "m1"}), 1);
  EXPECT_THAT(err_.str(), StartsWith("pghaul: migration m1 failed in phase restore: "));
}

TEST_F(MigrationsCliTest, EachPhaseCommandSendsItsName) {
  for (const std::string command : {"backup", "restore", "verify", "cutover"}) {
    EXPECT_EQ(Run({command, "m1", "--detach"}), 0) << command;
  }
  std::vector<std::string> sent;
  for (const v1::StartPhaseRequest& request : service_.start_requests()) {
    sent.push_back(request.command());
  }
  EXPECT_THAT(sent, ElementsAre("backup", "restore", "verify", "cutover"));
}

TEST_F(MigrationsCliTest, DetachReturnsOnceAcceptedAndSaysHowToFollow) {
  EXPECT_EQ(Run({"restore", "m1", "--mode", "rehearsal", "--set", "20231114-221320F", "--detach"}),
            0);
  v1::StartPhaseRequest sent = service_.start_requests()[0];
  EXPECT_EQ(sent.restore_mode(), "rehearsal");
  EXPECT_EQ(sent.set(), "20231114-221320F");
  EXPECT_EQ(out_.str(),
            "restore (rehearsal) of migration m1 started; `pghaul watch m1` follows it, `pghaul "
            "status m1` shows where it is.\n");
  EXPECT_THAT(service_.get_requests(), SizeIs(0));
  EXPECT_THAT(sleeps_, SizeIs(0));

  EXPECT_EQ(Run({"verify", "m1", "--detach", "-o", "json"}), 0);
  nlohmann::json json = nlohmann::json::parse(out_.str());
  EXPECT_EQ(json["migration"]["state"], "running");
}

TEST_F(MigrationsCliTest, BackupAtSendsTheNextLocalOccurrenceAsNotBefore) {
  EXPECT_EQ(Run({"backup", "m1", "--type", "incr", "--at", "02:00", "--detach"}), 0);
  v1::StartPhaseRequest sent = service_.start_requests()[0];
  EXPECT_EQ(sent.backup_type(), "incr");
  ASSERT_TRUE(sent.has_not_before());
  absl::Time at = FromProto(sent.not_before());
  EXPECT_GT(at, kNow);
  EXPECT_LE(at, kNow + absl::Hours(24));
  EXPECT_EQ(absl::FormatTime("%H:%M:%S", at, absl::LocalTimeZone()), "02:00:00");
  EXPECT_THAT(out_.str(), StartsWith("backup of migration m1 scheduled for "));
}

TEST(NextOccurrenceTest, IsTodayWhenStillAheadElseTomorrow) {
  const absl::TimeZone zone = absl::FixedTimeZone(-5 * 3600);
  auto at = [&zone](int day, int hour, int minute) {
    return absl::FromCivil(absl::CivilMinute(2023, 11, day, hour, minute), zone);
  };
  EXPECT_EQ(*NextOccurrence("02:00", at(14, 1, 30), zone), at(14, 2, 0));
  EXPECT_EQ(*NextOccurrence("02:00", at(14, 2, 0), zone), at(15, 2, 0)) << "now is not ahead";
  EXPECT_EQ(*NextOccurrence("02:00", at(14, 23, 59), zone), at(15, 2, 0));
  EXPECT_EQ(*NextOccurrence("0:05", at(30, 12, 0), zone),
            absl::FromCivil(absl::CivilMinute(2023, 12, 1, 0, 5), zone));
  EXPECT_EQ(*NextOccurrence("23:59", at(14, 0, 0), zone), at(14, 23, 59));
}

TEST(NextOccurrenceTest, RefusesWhatIsNotATimeOfDay) {
  for (const char* text : {"24:00", "12:60", "2", "02:0", "-1:00", "1:00pm", "", "02:00:00"}) {
    absl::StatusOr<absl::Time> parsed = NextOccurrence(text, kNow, absl::UTCTimeZone());
    EXPECT_TRUE(absl::IsInvalidArgument(parsed.status())) << text;
  }
  EXPECT_EQ(NextOccurrence("25:00", kNow, absl::UTCTimeZone()).status().message(),
            "expected a local time of day as HH:MM, 00:00 to 23:59, such as 02:00; got '25:00'");
}

TEST_F(MigrationsCliTest, BadFlagValuesAreUsageErrorsListingWhatIsAllowed) {
  EXPECT_EQ(Run({"backup", "m1", "--type", "differential"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("--type: must be one of full, diff, incr; got 'differential'"));
  EXPECT_EQ(Run({"restore", "m1", "--mode", "live"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("--mode: must be one of rehearsal, standby; got 'live'"));
  EXPECT_EQ(Run({"run", "m1", "--until", "promote"}), 64);
  EXPECT_THAT(err_.str(),
              HasSubstr("--until: must be one of preflight, prepare-source, backup, restore, "
                        "verify, cutover, finish; got 'promote'"));
  EXPECT_EQ(Run({"backup", "m1", "--at", "2am"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("--at: expected a local time of day as HH:MM"));
  EXPECT_EQ(Run({"restore", "m1", "--set", "latest"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("--set: backup label"));
  // Flags of other commands are not accepted.
  EXPECT_EQ(Run({"verify", "m1", "--type", "full"}), 64);
  EXPECT_EQ(Run({"backup"}), 64);
  EXPECT_THAT(err_.str(), HasSubstr("MIG is required"));
  EXPECT_THAT(service_.start_requests(), SizeIs(0));
}

TEST_F(MigrationsCliTest, DryRunListsWhatEachAgentWouldRunAndStartsNothing) {
  v1::PlannedTask planned;
  planned.set_agent_id("legacy-db1");
  planned.set_phase("backup");
  planned.set_description("pgbackrest backup");
  planned.mutable_task()->set_task_id("m1-backup-1");
  planned.mutable_task()->mutable_pgbackrest()->set_migration_id("m1");
  planned.mutable_task()->mutable_pgbackrest()->mutable_backup()->set_type("full");
  service_.SetPlanned({planned});
  EXPECT_EQ(Run({"backup", "m1", "--dry-run"}), 0);
  EXPECT_TRUE(service_.start_requests()[0].dry_run());
  EXPECT_EQ(out_.str(),
            "Dry run of backup for migration m1: nothing was started.\n\n"
            "agent legacy-db1 would run:\n"
            "  1. [backup] pgbackrest backup {\"task_id\":\"m1-backup-1\",\"pgbackrest\":{"
            "\"migration_id\":\"m1\",\"backup\":{\"type\":\"full\"}}}\n");
  EXPECT_THAT(service_.get_requests(), SizeIs(0)) << "a dry run is not followed";

  EXPECT_EQ(Run({"backup", "m1", "--dry-run", "-o", "json"}), 0);
  nlohmann::json json = nlohmann::json::parse(out_.str());
  EXPECT_EQ(json["planned"][0]["agent_id"], "legacy-db1");
  EXPECT_EQ(json["planned"][0]["task"]["pgbackrest"]["backup"]["type"], "full");
}

TEST_F(MigrationsCliTest, PhaseCommandRefusedByTheControllerExits65WithItsMessage) {
  service_.SetStartStatus(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                       "migration m1 has no backup yet; run `pghaul backup m1` "
                                       "first"));
  EXPECT_EQ(Run({"restore", "m1"}), 65);
  EXPECT_EQ(err_.str(), "pghaul: migration m1 has no backup yet; run `pghaul backup m1` first\n");
  EXPECT_THAT(service_.get_requests(), SizeIs(1)) << "noted the newest event, did not follow";
}

TEST_F(MigrationsCliTest, PhaseCommandForAnUnknownMigrationSaysWhatToRun) {
  EXPECT_EQ(Run({"cutover", "m9"}), 65);
  EXPECT_THAT(err_.str(), HasSubstr("no migration 'm9' is known to the controller"));
}

TEST_F(MigrationsCliTest, PhaseCommandToAnUnreachableControllerExits69) {
  EXPECT_EQ(Run({"backup", "m1"}, UnusedLoopbackAddress()), 69);
  EXPECT_THAT(err_.str(), StartsWith("pghaul: cannot reach the controller at"));
}

TEST_F(MigrationsCliTest, PhaseCommandJsonPrintsEventsThenTheMigration) {
  service_.SetScript({Event("backup", "backup started"), Change([](v1::MigrationInfo& m) {
                        m.set_state("planned");
                        m.set_goal("backup");
                        SetPhase(m, "backup", "succeeded");
                      })});
  EXPECT_EQ(Run({"backup", "m1", "-o", "json"}), 0);
  std::vector<std::string> lines = Lines(out_.str());
  ASSERT_THAT(lines, SizeIs(3));
  EXPECT_EQ(nlohmann::json::parse(lines[0])["event"]["text"], "`backup` requested");
  EXPECT_EQ(nlohmann::json::parse(lines[1])["event"]["text"], "backup started");
  EXPECT_EQ(nlohmann::json::parse(lines[2])["phases"][2]["state"], "succeeded");
}

// --- abort --------------------------------------------------------------------------------

TEST_F(MigrationsCliTest, AbortFollowsUntilAbortedAndExits0) {
  service_.SetScript(
      {Event("restore", "stopping the target"), Ends("aborted", "the source is writable again")});
  EXPECT_EQ(Run({"abort", "m1"}), 0);
  ASSERT_THAT(service_.abort_requests(), SizeIs(1));
  EXPECT_EQ(service_.abort_requests()[0].migration_id(), "m1");
  EXPECT_EQ(out_.str(),
            absl::StrCat("abort of migration m1 requested; following it until the source is "
                         "back as it was\n",
                         LocalClockOfEvent(1), "  -               abort requested\n",
                         LocalClockOfEvent(2), "  restore         stopping the target\n",
                         "migration m1 aborted: the source is writable again\n"));
}

TEST_F(MigrationsCliTest, AbortThatEndsFailedExits1) {
  service_.SetScript({Ends("failed", "could not unfence legacy-db1: agent offline")});
  EXPECT_EQ(Run({"abort", "m1"}), 1);
  EXPECT_EQ(err_.str(),
            "pghaul: migration m1 is failed, not aborted: could not unfence legacy-db1: agent "
            "offline\n");
}

TEST_F(MigrationsCliTest, AbortDetachReturnsAtOnce) {
  EXPECT_EQ(Run({"abort", "m1", "--detach"}), 0);
  EXPECT_EQ(out_.str(),
            "abort of migration m1 requested (state: aborting); `pghaul watch m1` follows it.\n");
  EXPECT_THAT(service_.get_requests(), SizeIs(0));
}

TEST_F(MigrationsCliTest, AbortAfterPromotionIsRefusedWithExit65) {
  service_.SetAbortStatus(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                       "m1 was cut over: the target is the primary now"));
  EXPECT_EQ(Run({"abort", "m1"}), 65);
  EXPECT_EQ(err_.str(), "pghaul: m1 was cut over: the target is the primary now\n");
}

// --- help ---------------------------------------------------------------------------------

TEST_F(MigrationsCliTest, EveryMigrationCommandHasHelpWithAnExample) {
  for (std::vector<std::string> command : std::vector<std::vector<std::string>>{{"plan", "apply"},
                                                                                {"migrations"},
                                                                                {"status"},
                                                                                {"watch"},
                                                                                {"run"},
                                                                                {"backup"},
                                                                                {"restore"},
                                                                                {"verify"},
                                                                                {"cutover"},
                                                                                {"abort"}}) {
    command.push_back("--help");
    EXPECT_EQ(Run(command), 0) << command[0];
    EXPECT_THAT(out_.str(), ContainsRegex("Examples?:\n  pghaul ")) << command[0];
  }
  EXPECT_EQ(Run({"--help"}), 0);
  for (const char* name : {"plan", "migrations", "status", "watch", "run", "backup", "restore",
                           "verify", "cutover", "abort"}) {
    EXPECT_THAT(out_.str(), HasSubstr(absl::StrCat("  ", name, " "))) << name;
  }
}

}  // namespace
}  // namespace pghaul::cli
