#include "agent/pgbackrest_executor.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/pgbackrest_command.h"
#include "agent/pgbackrest_info.h"
#include "agent/pgbackrest_progress.h"
#include "agent/restore_kept_config.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "common/validators.h"

namespace pghaul::agent {
namespace {

// How often the backup lock file is read, and held-back progress is sent.
constexpr absl::Duration kProgressPollInterval = absl::Milliseconds(250);
// info's JSON is kept for the result up to this size; a larger output fails the task.
constexpr size_t kMaxInfoJsonBytes = 32 << 20;
constexpr size_t kMaxLockFileBytes = 4096;

class ConfigureExecutor : public TaskExecutor {
 public:
  ConfigureExecutor(PgBackRestEnvironment env, v1::ConfigurePgBackRest task, SecretStore* secrets)
      : env_(std::move(env)), task_(std::move(task)), secrets_(secrets) {}

  v1::TaskResult Run(TaskContext& context) override {
    v1::TaskResult result;
    absl::StatusOr<std::string> path = WritePgBackRestConfig(env_, task_);
    if (!path.ok()) {
      result.set_state(v1::TaskResult::FAILED);
      result.set_message(absl::StrCat("cannot write the pgBackRest config for migration ",
                                      task_.migration_id(), ": ", path.status().message()));
      return result;
    }
    secrets_->Put(task_.migration_id(),
                  ConfiguredMigration{task_.stanza(), task_.secrets(), task_.new_stanza(),
                                      task_.repository().has_posix()
                                          ? task_.repository().posix().path()
                                          : std::string()});
    // Names the file, never what it holds.
    const std::string secrets_path = SecretsConfigPath(env_, task_.migration_id());
    const bool has_secrets = !task_.secrets().s3_key().empty() ||
                             !task_.secrets().s3_key_secret().empty() ||
                             !task_.secrets().cipher_pass().empty();
    context.Log("agent",
                absl::StrCat("wrote ", *path, " for stanza ", task_.stanza(), "; ",
                             has_secrets ? absl::StrCat("repository secrets in ", secrets_path,
                                                        " (mode 0600)")
                                         : absl::StrCat("no repository secrets (", secrets_path,
                                                        " removed if it was there)")));
    result.set_state(v1::TaskResult::SUCCEEDED);
    result.set_message(absl::StrCat("wrote ", *path));
    result.mutable_values()->insert({"config_path", *path});
    result.mutable_values()->insert(
        {"config_include_path", ConfigIncludePath(env_, task_.migration_id())});
    return result;
  }

 private:
  const PgBackRestEnvironment env_;
  const v1::ConfigurePgBackRest task_;
  SecretStore* const secrets_;
};

// What the output of one run tells, gathered line by line (on Wait's thread) and read by the
// lock-file poller (exec id) from another.
class OutputState {
 public:
  void SetExecId(std::string id) {
    absl::MutexLock lock(&mu_);
    if (!exec_id_.has_value()) exec_id_ = std::move(id);
  }
  std::optional<std::string> exec_id() const {
    absl::MutexLock lock(&mu_);
    return exec_id_;
  }

 private:
  mutable absl::Mutex mu_;
  std::optional<std::string> exec_id_ ABSL_GUARDED_BY(mu_);
};

// "2026-11-26 14:30:15.970 P00  ERROR: [038]: text" or "ERROR: [038]: text" -> "ERROR: [038]:
// text"; nullopt for other lines.
std::optional<std::string> ErrorText(absl::string_view line) {
  size_t at = line.find("ERROR: [");
  if (at == absl::string_view::npos) return std::nullopt;
  return std::string(absl::StripTrailingAsciiWhitespace(line.substr(at)));
}

// "... INFO: new backup label = 20261126-142922F" -> the label.
std::optional<std::string> BackupLabel(absl::string_view line) {
  constexpr absl::string_view kMarker = "new backup label = ";
  size_t at = line.find(kMarker);
  if (at == absl::string_view::npos) return std::nullopt;
  return std::string(absl::StripAsciiWhitespace(line.substr(at + kMarker.size())));
}

class CommandExecutor : public TaskExecutor {
 public:
  CommandExecutor(PgBackRestEnvironment env, v1::PgBackRestCommand command, std::string stanza,
                  v1::Secrets secrets, std::string posix_repo_path, std::vector<std::string> argv,
                  absl::Duration timeout, Clock* clock)
      : env_(std::move(env)),
        command_(std::move(command)),
        name_(PgBackRestCommandName(command_)),
        stanza_(std::move(stanza)),
        secrets_(std::move(secrets)),
        posix_repo_path_(std::move(posix_repo_path)),
        argv_(std::move(argv)),
        timeout_(timeout),
        clock_(clock) {}

  v1::TaskResult Run(TaskContext& context) override {
    v1::TaskResult result;
    if (!command_.has_version()) {
      // pgBackRest fails on a missing explicit include path too (error 073).
      for (const std::string& needed : {ConfigPath(env_, command_.migration_id()),
                                        ConfigIncludePath(env_, command_.migration_id())}) {
        struct stat st;
        if (stat(needed.c_str(), &st) != 0) {
          result.set_state(v1::TaskResult::FAILED);
          result.set_message(absl::StrCat("no pgBackRest config for migration ",
                                          command_.migration_id(), " at ", needed,
                                          ": run ConfigurePgBackRest first; nothing ran"));
          return result;
        }
      }
    }
    if (!command_.has_restore()) return RunPgBackRest(context);
    return RunRestoreKeepingConfig(context);
  }

 private:
  // A restore keeps the target's own postgresql.conf, pg_hba.conf and pg_ident.conf (see
  // restore_kept_config.h): copied before pgBackRest runs, put back after it ended, whatever the
  // outcome (after a failure the data directory is not usable anyway, and its configuration
  // stays the target's). If putting them back fails, the copies stay in the migration's
  // kept-config directory and the next restore uses them.
  v1::TaskResult RunRestoreKeepingConfig(TaskContext& context) {
    const std::string keep_dir = KeptConfigDirectory(env_, command_.migration_id());
    absl::StatusOr<std::vector<std::string>> kept = KeepConfigFiles(env_.pg_path, keep_dir);
    if (!kept.ok()) {
      v1::TaskResult result;
      result.set_state(v1::TaskResult::FAILED);
      result.set_message(
          absl::StrCat("cannot keep the target's own configuration files of ", env_.pg_path,
                       " before the restore: ", kept.status().message(), "; nothing ran"));
      return result;
    }
    v1::TaskResult result = RunPgBackRest(context);
    absl::Status put_back = PutBackConfigFiles(env_.pg_path, keep_dir);
    if (!put_back.ok()) {
      const std::string problem =
          absl::StrCat("the target's own configuration files could not be put back (copies in ",
                       keep_dir, "): ", put_back.message());
      PGH_LOG_ERROR("{}", problem);
      context.Log("agent", problem);
      if (result.state() == v1::TaskResult::SUCCEEDED) {
        result.set_state(v1::TaskResult::FAILED);
        result.set_message(absl::StrCat("pgbackrest restore succeeded, but ", problem));
      } else {
        result.set_message(absl::StrCat(result.message(), "; ", problem));
      }
      return result;
    }
    const std::string line =
        kept->empty() ? absl::StrCat("no postgresql.conf, pg_hba.conf or pg_ident.conf was in ",
                                     env_.pg_path, " before the restore: the restored ones stay")
                      : absl::StrCat("kept the target's own ", absl::StrJoin(*kept, ", "), " in ",
                                     env_.pg_path, " (the source's restored copies were replaced)");
    PGH_LOG_INFO("{}", line);
    context.Log("agent", line);
    return result;
  }

  v1::TaskResult RunPgBackRest(TaskContext& context) {
    v1::TaskResult result;
    SubprocessSpec spec;
    spec.argv = WithRunAsPrefix(env_, argv_);
    spec.env = command_.has_version() ? PgBackRestChildEnvironment(env_, v1::Secrets())
                                      : PgBackRestChildEnvironment(env_, secrets_);
    spec.working_directory = "/";
    spec.timeout = timeout_;
    if (context.cancelled()) {
      result.set_state(v1::TaskResult::CANCELLED);
      result.set_message(absl::StrCat("pgbackrest ", name_, " cancelled before it started"));
      return result;
    }
    auto process = std::make_shared<Subprocess>(std::move(spec));
    // The hook may outlive Run (a cancel racing the end): it holds the process, and Cancel()
    // after Wait() is harmless. A cancel between the check above and here reaches the process
    // before Start(), and Wait() then ends it at once.
    context.OnCancel([process] { process->Cancel(); });
    // argv holds no secret (they are in secrets.conf and the environment).
    context.Log("agent", absl::StrCat("running ", absl::StrJoin(argv_, " ")));
    if (absl::Status started = process->Start(); !started.ok()) {
      result.set_state(v1::TaskResult::FAILED);
      result.set_message(absl::StrCat("cannot start pgbackrest ", name_, ": ", started.message()));
      return result;
    }

    const bool tracks_progress = command_.has_backup() || command_.has_restore();
    std::optional<ProgressTracker> tracker;
    if (tracks_progress) {
      tracker.emplace(
          clock_, [&context](const v1::Progress& progress) { context.ReportProgress(progress); });
    }
    OutputState state;
    absl::Notification stop_polling;
    std::thread poller;
    if (tracks_progress) {
      poller = std::thread([&] { PollProgress(*tracker, state, stop_polling); });
    }

    std::string info_json;
    bool info_too_large = false;
    std::optional<std::string> last_error;
    std::string last_stderr;
    std::optional<std::string> backup_label;
    std::optional<std::string> version;
    absl::StatusOr<SubprocessResult> waited =
        process->Wait([&](Stream stream, absl::string_view line) {
          const bool is_stdout = stream == Stream::kStdout;
          if (command_.has_info() && is_stdout) {
            // Joined without separators: a long line arrives in pieces, and JSON never needs
            // the newline between lines.
            if (info_json.size() + line.size() > kMaxInfoJsonBytes) {
              info_too_large = true;
            } else {
              info_json.append(line.data(), line.size());
            }
            return;
          }
          context.Log(is_stdout ? "stdout" : "stderr", line);
          if (std::optional<std::string> error = ErrorText(line)) last_error = std::move(error);
          if (!is_stdout && !absl::StripAsciiWhitespace(line).empty()) {
            last_stderr = std::string(absl::StripAsciiWhitespace(line));
          }
          if (tracker.has_value()) {
            if (std::optional<std::string> id = ParseExecIdFromBeginLine(line)) {
              state.SetExecId(std::move(*id));
            }
            if (std::optional<FileProgress> file = ParseFileProgressLine(line)) {
              tracker->AddFile(*file);
            }
          }
          if (command_.has_backup()) {
            if (std::optional<std::string> label = BackupLabel(line)) {
              backup_label = std::move(label);
            }
          }
          if (command_.has_version() && is_stdout && absl::StartsWith(line, "pgBackRest ")) {
            version = std::string(absl::StripAsciiWhitespace(line.substr(11)));
          }
        });
    stop_polling.Notify();
    if (poller.joinable()) poller.join();

    if (!waited.ok()) {
      result.set_state(v1::TaskResult::FAILED);
      result.set_message(
          absl::StrCat("lost track of pgbackrest ", name_, ": ", waited.status().message()));
      return result;
    }
    const SubprocessResult& ended = *waited;
    result.set_exit_code(ended.exit_code);
    result.set_signal(ended.term_signal);

    if (ended.cancelled) {
      if (tracker.has_value()) tracker->Flush();
      result.set_state(v1::TaskResult::CANCELLED);
      result.set_message(absl::StrCat("pgbackrest ", name_, " cancelled (", ended.Describe(), ")"));
      return result;
    }
    if (!ended.Succeeded()) {
      if (tracker.has_value()) tracker->Flush();
      result.set_state(v1::TaskResult::FAILED);
      std::string message = absl::StrCat("pgbackrest ", name_, " ", ended.Describe());
      if (ended.timed_out) {
        absl::StrAppend(&message, " (the task's timeout of ", absl::FormatDuration(timeout_),
                        " expired)");
      }
      if (last_error.has_value()) {
        absl::StrAppend(&message, ": ", *last_error);
      } else if (!last_stderr.empty()) {
        absl::StrAppend(&message, ": ", last_stderr);
      }
      result.set_message(message);
      if (command_.has_info()) result.set_info_json(info_json);
      return result;
    }

    if (tracker.has_value()) tracker->Complete();
    result.set_state(v1::TaskResult::SUCCEEDED);
    result.set_message(absl::StrCat("pgbackrest ", name_, " succeeded"));
    if (backup_label.has_value()) {
      (*result.mutable_values())["backup_label"] = *backup_label;
      result.set_message(absl::StrCat(result.message(), ": new backup label ", *backup_label));
    }
    if (version.has_value()) {
      (*result.mutable_values())["version"] = *version;
      result.set_message(absl::StrCat("pgBackRest ", *version));
    }
    if (command_.has_info()) FinishInfo(info_json, info_too_large, result);
    return result;
  }

  // Reads the backup lock file (backup only) and sends held-back progress, until stopped.
  void PollProgress(ProgressTracker& tracker, const OutputState& state,
                    absl::Notification& stop) const {
    const std::string lock_file =
        absl::StrCat(LockPath(env_, command_.migration_id()), "/", stanza_, "-backup.lock");
    while (!stop.WaitForNotificationWithTimeout(kProgressPollInterval)) {
      if (command_.has_backup()) {
        // Until the begin line named this run's exec id, the file may be an earlier run's.
        std::optional<std::string> exec_id = state.exec_id();
        if (exec_id.has_value()) {
          absl::StatusOr<std::string> contents = ReadRegularFile(lock_file, kMaxLockFileBytes);
          if (contents.ok()) {
            std::optional<LockFileProgress> lock = ParseBackupLockFile(*contents);
            if (lock.has_value() && lock->exec_id == *exec_id && lock->percent.has_value()) {
              tracker.AddPercent(*lock->percent);
            }
          }
        }
      }
      tracker.Tick();
    }
  }

  void FinishInfo(const std::string& info_json, bool too_large, v1::TaskResult& result) const {
    if (too_large) {
      result.set_state(v1::TaskResult::FAILED);
      result.set_message(absl::StrCat("pgbackrest info printed more than ", kMaxInfoJsonBytes,
                                      " bytes; not kept"));
      return;
    }
    result.set_info_json(info_json);
    absl::StatusOr<StanzaInfo> info = ParseStanzaInfo(info_json, stanza_);
    if (!info.ok()) {
      result.set_state(v1::TaskResult::FAILED);
      result.set_message(absl::StrCat("pgbackrest info exited 0 but its output cannot be used: ",
                                      info.status().message()));
      return;
    }
    result.set_repository_status_code(info->status_code);
    auto& values = *result.mutable_values();
    if (!posix_repo_path_.empty()) {
      // info only reads: a repository this user may read but not write passes it, and then
      // stanza-create or archive-push fails after the source was changed. What it would write
      // is the path itself, or, when it does not exist yet, its nearest existing parent.
      std::string probe = posix_repo_path_;
      struct stat st;
      while (probe.size() > 1 && stat(probe.c_str(), &st) != 0) {
        probe = probe.substr(0, std::max<size_t>(1, probe.rfind('/')));
      }
      values["repository_write_path"] = probe;
      values["repository_writable"] = access(probe.c_str(), W_OK | X_OK) == 0 ? "true" : "false";
    }
    values["valid_backups"] = absl::StrCat(info->ValidBackupCount());
    if (const BackupSetInfo* latest = info->LatestValidBackup()) {
      values["latest_backup"] = latest->label;
    }
    if (!info->databases.empty()) {
      values["system_id"] = absl::StrCat(info->databases.back().system_id);
      values["pg_version"] = info->databases.back().version;
    }
    values["backup_running"] = info->backup_lock_held ? "true" : "false";
    if (info->status_code != kStanzaStatusOk) {
      result.set_state(v1::TaskResult::FAILED);
      result.set_message(absl::StrCat("pgbackrest info exited 0 but stanza '", stanza_,
                                      "' reports ", info->DescribeStatus()));
      return;
    }
    result.set_message(absl::StrCat("stanza '", stanza_, "' ", info->DescribeStatus(), ", ",
                                    info->ValidBackupCount(), " valid backup set(s)"));
  }

  const PgBackRestEnvironment env_;
  const v1::PgBackRestCommand command_;
  const std::string name_;
  const std::string stanza_;
  const v1::Secrets secrets_;
  const std::string posix_repo_path_;  // "" unless the repository is a posix path
  const std::vector<std::string> argv_;
  const absl::Duration timeout_;
  Clock* const clock_;
};

}  // namespace

std::string KeptConfigDirectory(const PgBackRestEnvironment& env, absl::string_view migration_id) {
  return absl::StrCat(MigrationDirectory(env, migration_id), "/kept-config");
}

absl::StatusOr<std::unique_ptr<TaskExecutor>> MakeConfigureExecutor(
    const PgBackRestEnvironment& env, const v1::Task& task, SecretStore* secrets) {
  if (!task.has_configure_pgbackrest()) {
    return absl::InvalidArgumentError("not a configure_pgbackrest task");
  }
  // Validation only; Run renders again when it writes (cheap, and nothing to keep in sync).
  PGH_RETURN_IF_ERROR(RenderPgBackRestConfig(env, task.configure_pgbackrest()).status());
  return std::make_unique<ConfigureExecutor>(env, task.configure_pgbackrest(), secrets);
}

absl::StatusOr<std::unique_ptr<TaskExecutor>> MakePgBackRestExecutor(
    const PgBackRestEnvironment& env, const v1::Task& task, SecretStore* secrets, Clock* clock) {
  if (!task.has_pgbackrest()) return absl::InvalidArgumentError("not a pgbackrest task");
  const v1::PgBackRestCommand& command = task.pgbackrest();
  PGH_RETURN_IF_ERROR(Annotate(ValidateEnvironment(env), "agent configuration"));
  std::string stanza;
  std::string posix_repo_path;
  v1::Secrets migration_secrets;
  if (!command.has_version() && command.command_case() != v1::PgBackRestCommand::COMMAND_NOT_SET) {
    PGH_RETURN_IF_ERROR(ValidateMigrationId(command.migration_id()));
    std::optional<ConfiguredMigration> configured = secrets->Get(command.migration_id());
    if (!configured.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "migration ", command.migration_id(),
          " has no pgBackRest configuration on this agent since it started (stanza and secrets "
          "are kept in memory only): send ConfigurePgBackRest again first"));
    }
    stanza = configured->stanza;
    if (command.new_stanza()) {
      if (configured->new_stanza.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "migration ", command.migration_id(),
            " was configured on this agent without a new stanza (ConfigurePgBackRest.new_stanza), "
            "so no command can run against one"));
      }
      stanza = configured->new_stanza;
    }
    migration_secrets = configured->secrets;
    posix_repo_path = configured->posix_repo_path;
  }
  PGH_ASSIGN_OR_RETURN(std::vector<std::string> argv, BuildPgBackRestArgv(env, command, stanza));
  absl::Duration timeout = task.timeout_seconds() == 0 ? absl::InfiniteDuration()
                                                       : absl::Seconds(task.timeout_seconds());
  return std::make_unique<CommandExecutor>(env, command, std::move(stanza),
                                           std::move(migration_secrets), std::move(posix_repo_path),
                                           std::move(argv), timeout,
                                           clock);
}

}  // namespace pghaul::agent
