#include "tests/faults/fault_run.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "tests/faults/acked_writer.h"
#include "tests/faults/process_tree.h"
#include "tests/faults/writable_sampler.h"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/json_paths.h"
#include "tests/integration/fixture/migration_fixture.h"
#include "tests/integration/fixture/s3_server.h"
#include "tests/integration/fixture/test_support.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::faults {
namespace {

using integration::At;
using integration::CommandResult;
using integration::MigrationRig;
using integration::PgCluster;
using integration::Str;
using nlohmann::json;

constexpr char kPgBench[] = "/usr/lib/postgresql/15/bin/pgbench";
constexpr char kTcBinary[] = "/usr/sbin/tc";
constexpr char kNftBinary[] = "/usr/sbin/nft";
// The controller's exit status when another one holds its state directory (EX_TEMPFAIL).
constexpr int kStateLockedExit = 75;
constexpr int kPgBenchScale = 2;
constexpr char kMigration[] = "m1";

// One operator command of the drive and the phases it runs.
struct Step {
  std::vector<std::string> args;
  std::vector<std::string> phases;
  std::string goal_state;  // the state it leaves when it succeeds
  // The writer pauses, and the standby catches up with the source, before the command; the
  // writer resumes after it (verify compares the two sides, which must hold the same rows).
  bool source_at_rest = false;
};

const std::vector<Step>& Steps() {
  static const std::vector<Step> steps = {
      {{"run", kMigration, "--until", "restore", "--mode", "standby"},
       {"preflight", "prepare-source", "backup", "restore"},
       "ready"},
      {{"verify", kMigration}, {"verify"}, "ready", true},
      {{"cutover", kMigration}, {"cutover", "finish"}, "completed"},
  };
  return steps;
}

std::string PhaseState(const json& status, absl::string_view name) {
  const json phases = At(status, "phases");
  if (!phases.is_array()) return "absent";
  for (const json& phase : phases) {
    if (Str(phase, "name") == name) return Str(phase, "state");
  }
  return "absent";
}

std::string AppConninfo(const PgCluster& cluster) {
  return absl::StrCat("host=", cluster.socket_dir(), " port=", cluster.port(),
                      " user=app dbname=postgres connect_timeout=2");
}

std::set<int64_t> ParseNumbers(const std::string& text) {
  std::set<int64_t> numbers;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    int64_t n = 0;
    if (absl::SimpleAtoi(line, &n)) numbers.insert(n);
  }
  return numbers;
}

// The system identifiers a pgBackRest info file lists in its [db] and [db:history] sections:
// `db-system-id=N`, and history lines with `"db-system-id":N` (backup.info) or `"db-id":N`
// (archive.info, where the history's db-id is the system identifier).
std::set<std::string> SystemIdsIn(const std::string& info) {
  std::set<std::string> ids;
  std::string section;
  for (absl::string_view line : absl::StrSplit(info, '\n')) {
    if (absl::StartsWith(line, "[")) {
      section = std::string(line);
      continue;
    }
    if (section != "[db]" && section != "[db:history]") continue;
    for (absl::string_view key : {"db-system-id=", "\"db-system-id\":", "\"db-id\":"}) {
      const size_t at = line.find(key);
      if (at == absl::string_view::npos) continue;
      size_t end = at + key.size();
      while (end < line.size() && absl::ascii_isdigit(line[end])) ++end;
      if (end > at + key.size()) {
        ids.insert(std::string(line.substr(at + key.size(), end - at - key.size())));
      }
    }
  }
  return ids;
}

class FaultRun {
 public:
  explicit FaultRun(const FaultPlan& plan) { result_.plan = plan; }
  ~FaultRun() { TearDown(); }

  RunResult Run() {
    const absl::Time start = absl::Now();
    absl::Status status = SetUp();
    if (status.ok()) status = Drive();
    if (!status.ok()) {
      result_.harness_error = std::string(status.message());
    }
    if (rig_ != nullptr && writer_ != nullptr) CheckInvariants();
    if (!result_.ok() && rig_ != nullptr) integration::PrintLogTails(rig_->LogPaths(), 30);
    TearDown();
    result_.duration = absl::Now() - start;
    return result_;
  }

 private:
  void Violation(absl::string_view name, absl::string_view detail) {
    std::cout << "VIOLATION " << name << ": " << detail << "\n";
    result_.violations.push_back(absl::StrCat(name, ": ", detail));
  }

  PgCluster& Legacy() { return rig_->Cluster("legacy"); }
  PgCluster& Target() { return rig_->Cluster("target"); }

  absl::Status SetUp() {
    PGH_ASSIGN_OR_RETURN(rig_, MigrationRig::Create("pghaul-faults-"));
    integration::RigHostOptions legacy;
    legacy.octet = 11;
    PGH_RETURN_IF_ERROR(rig_->AddHost("legacy", legacy).status());
    integration::RigHostOptions target;
    target.octet = 12;
    if (result_.plan.kind == FaultKind::kTargetDiskFull) {
      PGH_RETURN_IF_ERROR(MountTargetDisk());
      target.parent_dir = disk_mount_;
    }
    PGH_RETURN_IF_ERROR(rig_->AddHost("target", target).status());
    if (!result_.plan.lossy_link_host.empty()) {
      const std::string ruleset_file = absl::StrCat(rig_->dir().path(), "/lossy-link.nft");
      PGH_RETURN_IF_ERROR(integration::WriteFile(ruleset_file, result_.plan.LossyLinkRuleset()));
      integration::CommandOptions in_host;
      in_host.launch.netns = rig_->network().Namespace(result_.plan.lossy_link_host);
      PGH_RETURN_IF_ERROR(
          integration::RunChecked({kNftBinary, "-f", ruleset_file}, in_host).status());
      std::cout << "lossy link on " << result_.plan.lossy_link_host << ": "
                << result_.plan.loss_permille << " packets in 1000 dropped each way\n";
    }
    if (!result_.plan.slow_link_host.empty()) {
      // Before the migration's first packet, on the host's own end of its link.
      std::vector<std::string> tc = {kTcBinary, "qdisc", "add", "dev", "eth0", "root"};
      for (std::string& arg : result_.plan.SlowLinkArgs()) tc.push_back(std::move(arg));
      integration::CommandOptions in_host;
      in_host.launch.netns = rig_->network().Namespace(result_.plan.slow_link_host);
      PGH_RETURN_IF_ERROR(integration::RunChecked(tc, in_host).status());
      std::cout << "slow link on " << result_.plan.slow_link_host << ": "
                << absl::StrJoin(result_.plan.SlowLinkArgs(), " ") << "\n";
    }
    integration::CommandOptions as_postgres;
    as_postgres.launch.run_as = integration::kPostgresOsUser;
    as_postgres.timeout = absl::Seconds(300);
    PGH_RETURN_IF_ERROR(
        integration::RunChecked(
            {kPgBench, "-i", "-q", "-s", absl::StrCat(kPgBenchScale), "-h", Legacy().socket_dir(),
             "-p", absl::StrCat(Legacy().port()), "postgres"},
            as_postgres)
            .status());
    PGH_RETURN_IF_ERROR(rig_->RunSqlScript(Legacy(), kWriterSetupSql));
    PGH_ASSIGN_OR_RETURN(source_system_id_, Legacy().Query(integration::kSystemIdentifierQuery));
    integration::PlanSpec spec = rig_->PosixPlan(kMigration);
    if (result_.plan.s3_repository) {
      PGH_ASSIGN_OR_RETURN(spec.repository, StartS3());
    }
    spec.cutover = "{max_lag: 64MB, max_downtime: 60s, verify_checksums: true}";
    PGH_RETURN_IF_ERROR(rig_->ApplyPlan(spec));
    planned_ = true;
    writer_ = std::make_unique<AckedWriter>(AppConninfo(Legacy()));
    writer_->Start();
    sampler_ = std::make_unique<WritableSampler>(AppConninfo(Legacy()), AppConninfo(Target()));
    sampler_->Start();
    return absl::OkStatus();
  }

  void TearDown() {
    if (rig_ != nullptr && !cut_host_.empty()) (void)rig_->network().RestoreLink(cut_host_);
    cut_host_.clear();
    if (sampler_ != nullptr) sampler_->Stop();
    if (writer_ != nullptr) writer_->Stop();
    sampler_.reset();
    writer_.reset();
    if (s3_ != nullptr) (void)s3_->Stop();
    s3_.reset();   // before the rig: its host is one of the rig's namespaces
    rig_.reset();  // agents, clusters, controller, namespaces, directory
    if (!disk_mount_.empty()) {
      absl::Status unmounted = integration::RunChecked({"/usr/bin/umount", disk_mount_}).status();
      if (!unmounted.ok()) {
        std::cout << "cannot unmount " << disk_mount_ << ": " << unmounted << "\n";
      } else {
        rmdir(disk_mount_.c_str());
      }
      disk_mount_.clear();
    }
  }

  // The target's data directory on a tmpfs of its own (2 GiB: preflight wants the source's size
  // x 1.2 + 1 GiB free), which the fault then fills. Outside the rig's directory, so that the
  // rig's removal never meets a mount point.
  absl::Status MountTargetDisk() {
    char pattern[] = "/tmp/pghaul-faults-disk-XXXXXX";
    if (mkdtemp(pattern) == nullptr) {
      return absl::InternalError(absl::StrCat("mkdtemp: ", strerror(errno)));
    }
    PGH_RETURN_IF_ERROR(integration::RunChecked({"/usr/bin/mount", "-t", "tmpfs", "-o",
                                                 "size=2g,mode=0755", "pghaul-faults", pattern})
                            .status());
    disk_mount_ = pattern;
    return absl::OkStatus();
  }

  // s3rver on a host "s3" of the rig, its key pair in a secrets file beside the plans; returns
  // the plan's `repository:` YAML.
  absl::StatusOr<std::string> StartS3() {
    PGH_ASSIGN_OR_RETURN(s3_options_.netns, rig_->network().AddHost("s3", 13));
    s3_options_.address = rig_->network().Address("s3");
    s3_options_.dir = absl::StrCat(rig_->dir().path(), "/s3");
    PGH_ASSIGN_OR_RETURN(s3_, integration::S3Server::Start(s3_options_));
    s3_options_.port = s3_->port();  // a restart must come back where the plan points
    const std::string secrets = absl::StrCat(rig_->plans_dir(), "/secrets.yaml");
    PGH_RETURN_IF_ERROR(
        integration::WriteFile(secrets, absl::StrCat("s3_key: ", s3_->access_key(), "\n",
                                                     "s3_key_secret: ", s3_->secret_key(), "\n")));
    std::filesystem::permissions(
        secrets, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return absl::StrCat("  s3:\n    endpoint: \"", s3_->endpoint(), "\"\n    port: ", s3_->port(),
                        "\n    bucket: ", s3_->bucket(),
                        "\n    region: ", integration::kS3ServerRegion,
                        "\n    uri_style: path\n    path: /pghaul\n    verify_tls: false\n",
                        "    key_from: {file: \"", secrets, "\", key: s3_key}\n",
                        "    secret_from: {file: \"", secrets, "\", key: s3_key_secret}\n");
  }

  // `pghaul ARGS --detach`. Errors: FailedPrecondition with its output on a non-zero exit.
  absl::Status Detached(std::vector<std::string> args) {
    args.push_back("--detach");
    PGH_ASSIGN_OR_RETURN(CommandResult started, rig_->Cli(args, absl::Seconds(60)));
    if (started.exit_code != 0) {
      return absl::FailedPreconditionError(absl::StrCat("pghaul ", absl::StrJoin(args, " "),
                                                        " exited ", started.exit_code, ": ",
                                                        started.stderr_text));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<json> Settle() {
    auto settled = rig_->WaitUntilSettled(kMigration, kSettleTimeout);
    if (!settled.ok()) {
      stuck_ = true;
      result_.outcome = "stuck";
      Violation("stuck", settled.status().message());
    }
    return settled;
  }

  absl::Status Drive() {
    int resumes = 0;
    bool failed_once = false;
    for (const Step& step : Steps()) {
      if (step.source_at_rest) {
        // A standby that cannot catch up (its PostgreSQL was killed, its link is down) is the
        // product's to handle: verify starts a stopped target, and reports what differs.
        absl::Status at_rest = BringSourceToRest();
        if (!at_rest.ok()) std::cout << "the standby did not catch up: " << at_rest << "\n";
      }
      PGH_RETURN_IF_ERROR(Detached(step.args));
      const bool fault_here = std::find(step.phases.begin(), step.phases.end(),
                                        result_.plan.phase) != step.phases.end();
      if (fault_here) {
        absl::Status injected = Inject();
        if (!injected.ok()) {
          result_.injected = absl::StrCat("missed: ", injected.message());
          std::cout << "fault not injected: " << injected << "\n";
        }
      }
      auto settled = Settle();
      if (!settled.ok()) return absl::OkStatus();  // a `stuck` violation
      json status = *std::move(settled);
      std::string state = Str(status, "state");
      bool aborted_once = false;
      while (state == "failed") {
        failed_once = true;
        std::cout << "migration failed in " << Str(status, "phase") << ": "
                  << Str(status, "message") << "\n";
        if (Str(status, "message").empty()) {
          Violation("failed-says-why",
                    absl::StrCat("failed in ", Str(status, "phase"), " without a message"));
        }
        // Once promoted, the target is the primary: abort is refused, only `run` finishes.
        const bool promoted = PhaseState(status, "cutover") == "succeeded";
        CheckAdvice(Str(status, "message"), promoted);
        if ((result_.plan.resume_on_failure || promoted) && resumes < kMaxResumes) {
          ++resumes;
          std::cout << "resuming (" << resumes << " of " << kMaxResumes << ")\n";
          PGH_RETURN_IF_ERROR(
              Detached(promoted ? std::vector<std::string>{"run", kMigration} : step.args));
        } else if (!promoted && !aborted_once) {
          aborted_once = true;
          std::cout << "aborting\n";
          PGH_ASSIGN_OR_RETURN(CommandResult aborted,
                               rig_->Cli({"abort", kMigration}, absl::Seconds(300)));
          if (aborted.exit_code != 0) {
            std::cout << "abort exited " << aborted.exit_code << ": " << aborted.stderr_text
                      << "\n";
          }
        } else {
          break;  // out of resumes (or the abort failed): reported as not ended cleanly
        }
        settled = Settle();
        if (!settled.ok()) return absl::OkStatus();
        status = *std::move(settled);
        state = Str(status, "state");
      }
      final_status_ = status;
      if (step.source_at_rest) writer_->Resume();
      if (state == "aborted") {
        result_.outcome = failed_once ? "aborted-after-failure" : "aborted";
        return absl::OkStatus();
      }
      if (state != step.goal_state) {
        result_.outcome = absl::StrCat("ended-", state);
        Violation(
            "ended-cleanly",
            absl::StrCat("`pghaul ", absl::StrJoin(step.args, " "), "` left the migration ", state,
                         " in phase ", Str(status, "phase"), ": ", Str(status, "message")));
        return absl::OkStatus();
      }
    }
    result_.outcome = failed_once ? "completed-after-resume" : "completed";
    return absl::OkStatus();
  }

  // Pauses the writer, switches the source's WAL so that its last commits are archived, and
  // waits until the standby shows the source's counter.
  absl::Status BringSourceToRest() {
    if (!writer_->Pause()) {
      return absl::InternalError("the writer did not pause within a minute");  // harness bug
    }
    PGH_ASSIGN_OR_RETURN(const std::string counter, Legacy().Query("SELECT n FROM counter"));
    PGH_RETURN_IF_ERROR(Legacy().Query("SELECT pg_switch_wal()").status());
    std::cout << "writer paused at " << counter << "; waiting for the standby\n";
    return integration::WaitFor(
        "the standby to replay the source's last commit", absl::Minutes(1),
        [&]() -> absl::Status {
          auto on_target = Target().Query("SELECT n FROM counter");
          if (!on_target.ok()) return on_target.status();
          if (*on_target != counter) {
            return absl::UnavailableError(absl::StrCat("counter ", *on_target, " of ", counter));
          }
          return absl::OkStatus();
        },
        absl::Milliseconds(200));
  }

  // A failed migration's message must name commands the operator can give: each
  // "(pghaul <command> m1)" a command the CLI has, and no abort once the target is promoted
  // (the controller refuses it then).
  void CheckAdvice(const std::string& message, bool promoted) {
    static const std::set<std::string> kCommands = {"run",    "preflight", "backup", "restore",
                                                    "verify", "cutover",   "abort"};
    const std::string kPrefix = "(pghaul ";
    for (size_t at = message.find(kPrefix); at != std::string::npos;
         at = message.find(kPrefix, at + 1)) {
      const size_t begin = at + kPrefix.size();
      const std::string command = message.substr(begin, message.find(' ', begin) - begin);
      if (kCommands.count(command) == 0) {
        Violation("status-tells", absl::StrCat("the failure message advises `pghaul ", command,
                                               "`, which the CLI does not have: ", message));
      } else if (command == "abort" && promoted) {
        Violation("status-tells",
                  absl::StrCat("the failure message advises abort, which the controller "
                               "refuses once the target is promoted: ",
                               message));
      }
    }
  }

  // Waits for the plan's phase to run, then for the plan's delay, then injects the fault.
  // Errors: when the fault could not be injected (the phase never ran, no pgBackRest ran).
  absl::Status Inject() {
    const FaultPlan& plan = result_.plan;
    if (plan.phase == "verify") {
      // verify lasts about 100 ms on this data, less than one status poll: the fault goes in
      // `delay` (at most 150 ms) after the command was accepted, and where it landed is read
      // afterwards.
      absl::SleepFor(plan.delay);
      result_.injected =
          absl::StrCat("verify-accepted+", absl::ToInt64Milliseconds(plan.delay), "ms");
      absl::Status injected = InjectNow();
      auto now = rig_->Status(kMigration);
      absl::StrAppend(
          &result_.injected, "(then:",
          now.ok() ? absl::StrCat(Str(*now, "phase"), "/", Str(*now, "state")) : "unknown", ")");
      return injected;
    }
    std::string why_not;
    PGH_RETURN_IF_ERROR(integration::WaitFor(
        absl::StrCat("phase ", plan.phase, " to run"), absl::Minutes(5),
        [&]() -> absl::Status {
          auto status = rig_->Status(kMigration);
          if (!status.ok()) return status.status();
          const std::string phase_state = PhaseState(*status, plan.phase);
          if (phase_state == "running" || phase_state == "succeeded") return absl::OkStatus();
          if (integration::MigrationSettled(Str(*status, "state"))) {
            why_not = absl::StrCat("the migration settled ", Str(*status, "state"), " in ",
                                   Str(*status, "phase"), " before ", plan.phase, " ran");
            return absl::OkStatus();
          }
          return absl::UnavailableError(absl::StrCat("phase ", Str(*status, "phase")));
        },
        absl::Milliseconds(100)));
    if (!why_not.empty()) return absl::FailedPreconditionError(why_not);
    absl::SleepFor(plan.delay);
    auto now = rig_->Status(kMigration);
    result_.injected =
        now.ok() ? absl::StrCat(Str(*now, "phase"), "/", Str(*now, "state")) : "unknown";
    return InjectNow();
  }

  absl::Status InjectNow() {
    const FaultPlan& plan = result_.plan;
    std::cout << "injecting " << FaultKindName(plan.kind) << " in " << result_.injected << "\n";
    switch (plan.kind) {
      case FaultKind::kControllerKill:
        return rig_->RestartController();
      case FaultKind::kAgentKill: {
        integration::PghaulAgent& agent = *rig_->FindHost(plan.host)->agent;
        PGH_RETURN_IF_ERROR(agent.process()->Kill(SIGKILL));
        std::cout << plan.host << "'s agent killed with SIGKILL\n";
        absl::SleepFor(plan.outage);
        return agent.Start();
      }
      case FaultKind::kPgBackRestKill:
        return KillPgBackRest();
      case FaultKind::kLinkCut:
        PGH_RETURN_IF_ERROR(rig_->network().CutLink(plan.host));
        cut_host_ = plan.host;
        std::cout << plan.host << "'s link is down\n";
        absl::SleepFor(plan.outage);
        PGH_RETURN_IF_ERROR(rig_->network().RestoreLink(plan.host));
        cut_host_.clear();
        std::cout << plan.host << "'s link is up again\n";
        return absl::OkStatus();
      case FaultKind::kSourcePostgresKill:
        return KillSourcePostgres();
      case FaultKind::kTargetPostgresKill:
        return KillTargetPostgres();
      case FaultKind::kS3Outage:
        return StopS3ForAWhile();
      case FaultKind::kTargetDiskFull:
        return FillTargetDisk();
      case FaultKind::kSecondController:
        return StartSecondController();
    }
    return absl::InternalError("unknown fault kind");
  }

  // kill -9 of the first pgBackRest found below either agent's PID (the top of its tree: the
  // one the agent started), within 20 s.
  absl::Status KillPgBackRest() {
    pid_t victim = 0;
    std::string command;
    std::string host_of_victim;
    std::string subcommand;
    PGH_RETURN_IF_ERROR(integration::WaitFor(
        "a pgBackRest process below an agent", absl::Seconds(20),
        [&]() -> bool {
          for (const char* host : {"legacy", "target"}) {
            integration::ChildProcess* agent = rig_->FindHost(host)->agent->process();
            if (agent == nullptr) continue;
            for (const ProcessEntry& entry : Descendants(agent->pid())) {
              if (!entry.argv.empty() && absl::EndsWith(entry.argv[0], "pgbackrest")) {
                victim = entry.pid;
                host_of_victim = host;
                // The command is pgBackRest's first argument that is not an --option.
                for (size_t i = 1; i < entry.argv.size() && subcommand.empty(); ++i) {
                  if (!absl::StartsWith(entry.argv[i], "--")) subcommand = entry.argv[i];
                }
                command = absl::StrCat(host, ": ", absl::StrJoin(entry.argv, " "));
                return true;
              }
            }
          }
          return false;
        },
        absl::Milliseconds(20)));
    if (kill(victim, SIGKILL) != 0) {
      return absl::InternalError(absl::StrCat("kill -9 ", victim, ": ", strerror(errno)));
    }
    std::cout << "killed pgbackrest " << victim << " (" << command << ")\n";
    result_.injected += absl::StrCat(":pgbackrest-", subcommand, "@", host_of_victim);
    return absl::OkStatus();
  }

  // kill -9 of `cluster`'s postmaster and every process below it (a crash of the whole
  // server). Returns their PIDs, the postmaster's first.
  absl::StatusOr<std::vector<pid_t>> KillServer(PgCluster& cluster, absl::string_view side) {
    const pid_t postmaster = cluster.PostmasterPid();
    if (postmaster <= 0 || !ProcessAlive(postmaster)) {
      return absl::FailedPreconditionError(
          absl::StrCat("the ", side, "'s postmaster is not running"));
    }
    std::vector<pid_t> pids = {postmaster};
    for (const ProcessEntry& child : Descendants(postmaster)) pids.push_back(child.pid);
    for (pid_t pid : pids) kill(pid, SIGKILL);
    std::cout << side << " postmaster " << postmaster << " and " << pids.size() - 1
              << " children killed with SIGKILL\n";
    return pids;
  }

  // Gone means reaped, not only dead: PostgreSQL refuses to start while the PID in its
  // postmaster.pid exists, and a zombie's does.
  absl::Status WaitReaped(const std::vector<pid_t>& pids, absl::string_view side) {
    return integration::WaitFor(absl::StrCat("the ", side, "'s processes to be reaped"),
                                absl::Seconds(60), [&]() -> bool {
                                  for (pid_t pid : pids) {
                                    if (std::filesystem::exists(absl::StrCat("/proc/", pid))) {
                                      return false;
                                    }
                                  }
                                  return true;
                                });
  }

  // kill -9 of the source's postmaster and every process below it (a crash of the whole
  // server), then pg_ctl start after the outage. The source's agent may have started it first.
  absl::Status KillSourcePostgres() {
    PGH_ASSIGN_OR_RETURN(std::vector<pid_t> pids, KillServer(Legacy(), "source"));
    const pid_t postmaster = pids.front();
    PGH_RETURN_IF_ERROR(WaitReaped(pids, "source"));
    absl::SleepFor(result_.plan.outage);
    absl::Status started = Legacy().Start();
    // The source's agent may have started it first; either way it must answer now.
    PGH_RETURN_IF_ERROR(integration::WaitFor("the source to answer again", absl::Seconds(60),
                                             [&]() -> absl::Status {
                                               if (Legacy().PostmasterPid() == postmaster)
                                                 return started;
                                               return Legacy().Query("SELECT 1").status();
                                             }));
    std::cout << "source started again (postmaster " << Legacy().PostmasterPid() << ")\n";
    return absl::OkStatus();
  }

  // kill -9 of the target's postmaster and every process below it. In `restore` it stays down:
  // pghaul started it, pghaul has to notice. Later (a standby pghaul follows, then the new
  // primary) it is started again after the outage, as its service manager would.
  absl::Status KillTargetPostgres() {
    PGH_ASSIGN_OR_RETURN(std::vector<pid_t> pids, KillServer(Target(), "target"));
    if (result_.plan.phase == "restore") return absl::OkStatus();
    PGH_RETURN_IF_ERROR(WaitReaped(pids, "target"));
    absl::SleepFor(result_.plan.outage);
    if (Target().PostmasterPid() > 0 && ProcessAlive(Target().PostmasterPid())) {
      std::cout << "the target runs again already (postmaster " << Target().PostmasterPid()
                << ")\n";
      return absl::OkStatus();
    }
    absl::Status started = Target().Start();
    std::cout << "target started again: " << started << "\n";
    return absl::OkStatus();  // a start that fails is the product's to notice, not the rig's
  }

  // The S3 server stopped (SIGKILL), and started again on the same port and data after the
  // outage.
  absl::Status StopS3ForAWhile() {
    if (s3_ == nullptr) return absl::FailedPreconditionError("no S3 server in this run");
    PGH_RETURN_IF_ERROR(s3_->Stop(absl::ZeroDuration()));
    std::cout << "S3 server stopped\n";
    absl::SleepFor(result_.plan.outage);
    s3_.reset();
    PGH_ASSIGN_OR_RETURN(s3_, integration::S3Server::Start(s3_options_));
    std::cout << "S3 server started again on port " << s3_->port() << "\n";
    return absl::OkStatus();
  }

  // Fills the target's filesystem to the last byte, holds it full for the outage, then frees
  // it (as an operator would, before resuming).
  absl::Status FillTargetDisk() {
    const std::string filler = absl::StrCat(disk_mount_, "/filler");
    const int fd = open(filler.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return absl::InternalError(absl::StrCat("open ", filler, ": ", strerror(errno)));
    // Most of it at once (tmpfs allocates without writing), so that the disk is full within
    // milliseconds of the injection, not after writing 2 GiB; then writes to the last byte.
    struct statvfs fs;
    int64_t written = 0;
    if (statvfs(disk_mount_.c_str(), &fs) == 0) {
      const int64_t free_bytes = static_cast<int64_t>(fs.f_bavail) * fs.f_frsize;
      if (free_bytes > (8 << 20) && fallocate(fd, 0, 0, free_bytes - (4 << 20)) == 0) {
        written = free_bytes - (4 << 20);
        lseek(fd, 0, SEEK_END);
      }
    }
    const std::string chunk(1 << 20, 'x');
    int error = 0;
    for (int i = 0; i < 4096; ++i) {  // at most 4 GiB: the tmpfs holds 2
      const ssize_t n = write(fd, chunk.data(), chunk.size());
      if (n < 0) {
        error = errno;
        break;
      }
      written += n;
      if (n < static_cast<ssize_t>(chunk.size())) {
        error = ENOSPC;
        break;
      }
    }
    close(fd);
    std::cout << "target filesystem filled: " << written / (1 << 20) << " MiB written, then "
              << strerror(error) << "\n";
    absl::SleepFor(result_.plan.outage);
    if (unlink(filler.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("unlink ", filler, ": ", strerror(errno)));
    }
    std::cout << "target filesystem freed\n";
    if (error != ENOSPC) {
      return absl::InternalError(
          absl::StrCat("the filler stopped with ", strerror(error), ", not a full filesystem"));
    }
    return absl::OkStatus();
  }

  // A second pghaul-controller with the first one's state directory (its own config, another
  // port) must refuse to start, naming the first, and leave the first one serving.
  absl::Status StartSecondController() {
    PghaulControllerFiles files = SecondControllerConfig();
    PGH_RETURN_IF_ERROR(integration::WriteFile(files.config, files.yaml));
    integration::CommandOptions options;
    options.launch.netns = rig_->network().Namespace("controller");
    options.timeout = absl::Seconds(20);
    auto second = integration::RunCommand(
        {integration::PghaulBinary("controller/pghaul-controller"), "--config", files.config},
        options);
    if (!second.ok()) {
      Violation("one-controller", absl::StrCat("a second controller on the same state ran: ",
                                               second.status().message()));
      return absl::OkStatus();
    }
    const std::string said = second->stdout_text + second->stderr_text;
    std::cout << "second controller exited " << second->exit_code << ": " << said << "\n";
    if (second->exit_code != kStateLockedExit ||
        !absl::StrContains(said, "another pghaul-controller (PID ") ||
        !absl::StrContains(said, rig_->controller().state_dir())) {
      Violation("one-controller",
                absl::StrCat("a second controller on the same state exited ", second->exit_code,
                             " without naming the first: ", said));
    }
    return absl::OkStatus();
  }

  struct PghaulControllerFiles {
    std::string config;
    std::string yaml;
  };
  // The first controller's config with another listen port: only the state is shared.
  PghaulControllerFiles SecondControllerConfig() {
    const std::string yaml = integration::ReadFile(rig_->controller().config_path()).value_or("");
    std::vector<std::string> lines = absl::StrSplit(yaml, '\n');
    for (std::string& line : lines) {
      if (absl::StartsWith(line, "listen:")) {
        line = absl::StrCat("listen: \"", rig_->network().Address("controller"), ":0\"");
      }
    }
    return {absl::StrCat(rig_->dir().path(), "/second-controller.yaml"),
            absl::StrJoin(lines, "\n")};
  }

  void CheckInvariants() {
    if (sampler_ != nullptr) sampler_->Stop();
    if (writer_ != nullptr) writer_->Stop();
    if (!planned_) return;  // the rig never got a migration going: nothing to hold it to
    auto status = rig_->Status(kMigration);
    if (!status.ok()) {
      Violation("status-tells", absl::StrCat("pghaul status failed: ", status.status().message()));
      return;
    }
    const std::string state = Str(*status, "state");
    std::cout << "final: state " << state << ", phase " << Str(*status, "phase")
              << ", message: " << Str(*status, "message") << "\nphases:";
    if (At(*status, "phases").is_array()) {
      for (const json& phase : At(*status, "phases")) {
        const absl::Duration took = integration::Timestamp(phase, "finished_at") -
                                    integration::Timestamp(phase, "started_at");
        std::cout << " " << Str(phase, "name") << "=" << Str(phase, "state") << "#"
                  << integration::Int(phase, "attempt");
        if (took > absl::ZeroDuration() && took < absl::Hours(1)) {
          std::cout << "(" << absl::FormatDuration(absl::Trunc(took, absl::Milliseconds(100)))
                    << ")";
        }
      }
    }
    std::cout << "\n";
    if (!final_status_.is_null() && Str(final_status_, "state") != state) {
      Violation("status-tells", absl::StrCat("state ", Str(final_status_, "state"),
                                             " when settled, ", state, " now"));
    }
    if (state != "completed" && state != "aborted" && !stuck_ && result_.harness_error.empty() &&
        !absl::StartsWith(result_.outcome, "ended-")) {
      Violation("ended-cleanly", absl::StrCat("final state ", state));
    }

    // No daemon died on its own (the run starts again whatever it kills).
    if (!rig_->controller().process()->IsRunning()) {
      Violation("daemons-alive", "the controller is not running");
    }
    for (const char* host : {"legacy", "target"}) {
      integration::ChildProcess* agent = rig_->FindHost(host)->agent->process();
      if (agent == nullptr || !agent->IsRunning()) {
        Violation("daemons-alive", absl::StrCat(host, "'s agent is not running"));
      }
    }

    const std::vector<int64_t> acked = writer_->Acked();
    std::cout << acked.size()
              << " acknowledged commits; the writer's last error: " << writer_->LastError() << "\n";
    const WritableSampler::Counts counts = sampler_->counts();
    std::cout << "sampler: " << counts.samples << " samples, source writable in "
              << counts.source_writable << ", target in " << counts.target_writable << ", both in "
              << counts.both_writable << "\n";
    if (counts.both_writable > 0) {
      Violation("one-writable",
                absl::StrCat(counts.both_writable, " samples with both sides accepting writes, at ",
                             absl::StrJoin(counts.both_writable_at, ", ")));
    }
    if (counts.source_writable == 0) {
      Violation("sampler-works", "the source was never seen writable: the probe is broken");
    }

    const bool cut_over = PhaseState(*status, "cutover") == "succeeded";
    if (state == "completed") {
      if (counts.target_writable == 0) {
        Violation("sampler-works", "the promoted target was never seen writable");
      }
      CheckAcked("acked-on-target", Target(), acked);
      auto consistent =
          Target().Query("SELECT (SELECT n FROM counter) = (SELECT count(*) FROM acked)");
      if (consistent.value_or("?") != "t") {
        Violation("acked-on-target",
                  absl::StrCat("the target's counter and rows disagree: ",
                               consistent.ok() ? *consistent : consistent.status().ToString()));
      }
      std::string error;
      if (AcceptsWrite(AppConninfo(Legacy()), &error)) {
        Violation("source-fenced", "the source accepts writes after a completed cutover");
      }
      if (Str(*status, "new_stanza_backup_label").empty()) {
        Violation("status-tells", "completed without the new stanza's backup label");
      }
    } else if (!cut_over) {
      CheckAcked("acked-on-source", Legacy(), acked);
      std::string error;
      if (!AcceptsWrite(AppConninfo(Legacy()), &error)) {
        Violation("source-writable", absl::StrCat("the source refuses writes: ", error));
      }
    }
    CheckStanza();
  }

  void CheckAcked(absl::string_view name, const PgCluster& cluster,
                  const std::vector<int64_t>& acked) {
    auto rows = cluster.Query("SELECT n FROM acked ORDER BY n");
    if (!rows.ok()) {
      Violation(name, absl::StrCat("cannot read acked: ", rows.status().message()));
      return;
    }
    const std::set<int64_t> present = ParseNumbers(*rows);
    std::vector<int64_t> missing;
    for (int64_t n : acked) {
      if (present.count(n) == 0) missing.push_back(n);
    }
    if (!missing.empty()) {
      missing.resize(std::min<size_t>(missing.size(), 20));
      Violation(name, absl::StrCat(missing.size(), "+ acknowledged commits missing, e.g. ",
                                   absl::StrJoin(missing, ",")));
    }
  }

  // The source's stanza: one system identifier in its info files, one timeline in its archive.
  void CheckStanza() {
    const std::string stanza = integration::kRigStanza;
    // s3rver keeps object KEY as <data>/<bucket>/KEY._S3rver_object; the plan's path is /pghaul.
    const std::string repo = s3_ != nullptr
                                 ? absl::StrCat(s3_->data_dir(), "/", s3_->bucket(), "/pghaul")
                                 : rig_->repo_path();
    const std::string suffix = s3_ != nullptr ? "._S3rver_object" : "";
    for (const std::string& file : {repo + "/archive/" + stanza + "/archive.info" + suffix,
                                    repo + "/backup/" + stanza + "/backup.info" + suffix}) {
      auto info = integration::ReadFile(file);
      if (!info.ok()) continue;  // no stanza yet: nothing to mix up
      const std::set<std::string> ids = SystemIdsIn(*info);
      if (ids != std::set<std::string>{source_system_id_}) {
        Violation("one-system-id",
                  absl::StrCat(file, " lists system identifiers ", absl::StrJoin(ids, ","),
                               "; the source's is ", source_system_id_));
      }
    }
    const std::string archive = repo + "/archive/" + stanza;
    std::error_code error;
    for (auto it = std::filesystem::recursive_directory_iterator(archive, error);
         it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
      if (error) break;
      const std::string name = it->path().filename().string();
      if (name.size() >= 8 && name[0] == '0' && !absl::StartsWith(name, "00000001") &&
          (absl::StrContains(name, ".history") || name.size() >= 24)) {
        Violation("one-system-id",
                  absl::StrCat("a file of another timeline in the source's stanza: ",
                               it->path().string()));
      }
    }
  }

  RunResult result_;
  std::unique_ptr<MigrationRig> rig_;
  std::unique_ptr<AckedWriter> writer_;
  std::unique_ptr<WritableSampler> sampler_;
  std::unique_ptr<integration::S3Server> s3_;
  integration::S3ServerOptions s3_options_;
  std::string disk_mount_;  // the target's tmpfs, when the fault fills it
  std::string source_system_id_;
  std::string cut_host_;  // a host whose link is down now
  json final_status_;
  bool planned_ = false;
  bool stuck_ = false;
};

}  // namespace

std::string RunResult::ResultLine() const {
  std::vector<std::string> names;
  for (const std::string& violation : violations) {
    names.push_back(violation.substr(0, violation.find(':')));
  }
  if (!harness_error.empty()) names.push_back("harness-error");
  std::string injected_field = injected;
  injected_field = injected_field.substr(0, 160);
  for (char& c : injected_field) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') c = '_';
  }
  return absl::StrCat(plan.Describe(), " injected=", injected_field, " outcome=", outcome,
                      " invariants=", names.empty() ? "ok" : absl::StrJoin(names, ","),
                      " duration_s=", absl::ToInt64Seconds(duration));
}

RunResult RunFaultPlan(const FaultPlan& plan) {
  try {
    FaultRun run(plan);
    return run.Run();
  } catch (const std::exception& e) {
    RunResult result;
    result.plan = plan;
    result.harness_error = e.what();
    return result;
  }
}

}  // namespace pghaul::faults
