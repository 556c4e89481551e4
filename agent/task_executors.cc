#include "agent/task_executors.h"

#include <atomic>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/application_check.h"
#include "agent/archiving.h"
#include "agent/host_facts.h"
#include "agent/patroni_control.h"
#include "agent/pgbackrest_config.h"
#include "agent/pgbackrest_executor.h"
#include "agent/query_canceller.h"
#include "agent/row_ranges.h"
#include "agent/schema_catalogue.h"
#include "agent/service_control.h"
#include "agent/sql_catalogue.h"
#include "agent/table_checksums.h"
#include "common/status_macros.h"
#include "common/task_names.h"
#include "common/validators.h"

namespace pghaul::agent {
namespace {

class GatherFactsExecutor : public TaskExecutor {
 public:
  explicit GatherFactsExecutor(const AgentConfig* config) : config_(config) {}
  v1::TaskResult Run(TaskContext& context) override {
    v1::TaskResult result;
    *result.mutable_facts() = GatherHostFacts(*config_);
    result.set_state(v1::TaskResult::SUCCEEDED);
    return result;
  }

 private:
  const AgentConfig* config_;
};

// Copies a key/value map into the result's values.
void SetValues(const std::map<std::string, std::string>& values, v1::TaskResult& result) {
  for (const auto& [key, value] : values) (*result.mutable_values())[key] = value;
}

v1::TaskResult FailedResult(const absl::Status& status) {
  v1::TaskResult result;
  result.set_state(v1::TaskResult::FAILED);
  result.set_message(std::string(status.message()));
  return result;
}

// The result of a query that may have been cancelled.
v1::TaskResult ValuesResult(const absl::StatusOr<std::map<std::string, std::string>>& values) {
  if (!values.ok()) {
    v1::TaskResult result = FailedResult(values.status());
    if (absl::IsCancelled(values.status())) result.set_state(v1::TaskResult::CANCELLED);
    return result;
  }
  v1::TaskResult result;
  result.set_state(v1::TaskResult::SUCCEEDED);
  SetValues(*values, result);
  return result;
}

// TABLE_CHECKSUMS may read for hours: a cancel stops its statement at once, and each statement
// is bounded by the task's timeout when it has one.
constexpr absl::Duration kDefaultChecksumStatementTimeout = absl::Hours(6);

class SqlExecutor : public TaskExecutor {
 public:
  // `stanza`: ENABLE_ARCHIVING only, looked up when the task was accepted.
  SqlExecutor(const AgentConfig* config, PgBackRestEnvironment env, v1::SqlQuery query,
              std::string stanza, absl::Duration timeout)
      : config_(config),
        env_(std::move(env)),
        query_(std::move(query)),
        stanza_(std::move(stanza)),
        timeout_(timeout) {}

  v1::TaskResult Run(TaskContext& context) override {
    switch (query_.query()) {
      case v1::SqlQuery::ENABLE_ARCHIVING:
        return ValuesResult(
            EnableArchiving(config_->postgres, env_, query_.migration_id(), stanza_));
      case v1::SqlQuery::RESTORE_ARCHIVING:
        return ValuesResult(RestoreArchiving(config_->postgres, env_, query_.migration_id()));
      case v1::SqlQuery::TABLE_CHECKSUMS: {
        auto canceller = std::make_shared<QueryCanceller>();
        // The hook may outlive Run; it holds the canceller.
        context.OnCancel([canceller] { canceller->Cancel(); });
        TableChecksumOptions options;
        options.canceller = canceller.get();
        options.statement_timeout =
            timeout_ == absl::InfiniteDuration() ? kDefaultChecksumStatementTimeout : timeout_;
        options.log = [&context](absl::string_view line) { context.Log("agent", line); };
        return ValuesResult(ComputeTableChecksums(config_->postgres, options));
      }
      case v1::SqlQuery::SCHEMA_CATALOG:
      case v1::SqlQuery::ROW_RANGES:
      case v1::SqlQuery::ROW_DIGESTS: {
        auto canceller = std::make_shared<QueryCanceller>();
        context.OnCancel([canceller] { canceller->Cancel(); });
        if (query_.query() == v1::SqlQuery::ROW_RANGES) {
          return ValuesResult(ComputeRowRanges(config_->postgres, query_.range(), canceller.get()));
        }
        if (query_.query() == v1::SqlQuery::ROW_DIGESTS) {
          return ValuesResult(
              ComputeRowDigests(config_->postgres, query_.range(), canceller.get()));
        }
        SchemaCatalogueOptions options;
        options.canceller = canceller.get();
        return ValuesResult(ComputeSchemaCatalogue(config_->postgres, options));
      }
      case v1::SqlQuery::WAIT_ARCHIVED:
      case v1::SqlQuery::WAIT_REPLAYED: {
        auto canceller = std::make_shared<QueryCanceller>();
        context.OnCancel([canceller] { canceller->Cancel(); });
        return ValuesResult(RunSqlQuery(config_->postgres, query_, canceller.get()));
      }
      default:
        return ValuesResult(RunSqlQuery(config_->postgres, query_));
    }
  }

 private:
  const AgentConfig* config_;
  const PgBackRestEnvironment env_;
  const v1::SqlQuery query_;
  const std::string stanza_;
  const absl::Duration timeout_;
};

class ApplicationCheckExecutor : public TaskExecutor {
 public:
  ApplicationCheckExecutor(const AgentConfig* config, v1::ApplicationCheck check)
      : config_(config), check_(std::move(check)) {}

  v1::TaskResult Run(TaskContext& context) override {
    auto canceller = std::make_shared<QueryCanceller>();
    context.OnCancel([canceller] { canceller->Cancel(); });
    v1::TaskResult result =
        ValuesResult(RunApplicationCheck(config_->postgres, config_->checks_user, check_,
                                         canceller.get()));
    if (result.state() == v1::TaskResult::SUCCEEDED) {
      result.set_message(
          absl::StrCat("check ", check_.name(), ": ", result.values().at("rows"), " rows"));
    } else if (result.state() == v1::TaskResult::FAILED) {
      result.set_message(absl::StrCat("check ", check_.name(), " failed: ", result.message()));
    }
    return result;
  }

 private:
  const AgentConfig* config_;
  const v1::ApplicationCheck check_;
};

// Validates a sql task, so a bad one is refused before anything runs.
absl::StatusOr<std::unique_ptr<TaskExecutor>> MakeSqlExecutor(const AgentConfig* config,
                                                              const PgBackRestEnvironment& env,
                                                              const SecretStore& secrets,
                                                              const v1::Task& task) {
  const v1::SqlQuery& query = task.sql();
  if (query.query() == v1::SqlQuery::QUERY_UNSPECIFIED) {
    return absl::InvalidArgumentError("sql task names no query");
  }
  if (!v1::SqlQuery::Query_IsValid(query.query())) {
    return absl::InvalidArgumentError(
        absl::StrCat("this agent does not know sql query ", static_cast<int>(query.query()),
                     "; nothing ran (agent and controller releases may differ)"));
  }
  if (query.query() == v1::SqlQuery::ROW_RANGES || query.query() == v1::SqlQuery::ROW_DIGESTS) {
    PGH_RETURN_IF_ERROR(ValidateRowRange(query.range()));
  }
  // WAL names, LSNs, waits, retry intervals, and the migration id that marks a fence's block in
  // pg_hba.conf (so UNFENCE removes only it).
  PGH_RETURN_IF_ERROR(ValidateSqlQueryFields(query));
  std::string stanza;
  if (query.query() == v1::SqlQuery::ENABLE_ARCHIVING ||
      query.query() == v1::SqlQuery::RESTORE_ARCHIVING) {
    PGH_RETURN_IF_ERROR(ValidateMigrationId(query.migration_id()));
    PGH_RETURN_IF_ERROR(Annotate(ValidateEnvironment(env), "agent configuration"));
  }
  if (query.query() == v1::SqlQuery::ENABLE_ARCHIVING) {
    std::optional<ConfiguredMigration> configured = secrets.Get(query.migration_id());
    if (!configured.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "ENABLE_ARCHIVING: migration ", query.migration_id(),
          " has no pgBackRest configuration on this agent since it started (its stanza is kept in "
          "memory only): send ConfigurePgBackRest first"));
    }
    // The archiver will write into the repository from now on, whether the agent runs or not.
    PGH_RETURN_IF_ERROR(RecheckConfiguredPaths(env, *configured));
    stanza = configured->stanza;
    if (query.new_stanza()) {
      if (configured->new_stanza.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "ENABLE_ARCHIVING into the new stanza: migration ", query.migration_id(),
            " was configured on this agent without one (ConfigurePgBackRest.new_stanza)"));
      }
      stanza = configured->new_stanza;
    }
  }
  const absl::Duration timeout = task.timeout_seconds() == 0
                                     ? absl::InfiniteDuration()
                                     : absl::Seconds(task.timeout_seconds());
  return std::make_unique<SqlExecutor>(config, env, query, std::move(stanza), timeout);
}

class ServiceExecutor : public TaskExecutor {
 public:
  ServiceExecutor(ServiceControlConfig service, v1::ServiceAction action)
      : service_(std::move(service)), action_(action) {}
  v1::TaskResult Run(TaskContext& context) override {
    absl::StatusOr<std::map<std::string, std::string>> values =
        RunServiceAction(service_, action_, [&context](Stream stream, absl::string_view line) {
          context.Log(stream == Stream::kStdout ? "stdout" : "stderr", line);
        });
    if (!values.ok()) return FailedResult(values.status());
    v1::TaskResult result;
    result.set_state(v1::TaskResult::SUCCEEDED);
    SetValues(*values, result);
    return result;
  }

 private:
  ServiceControlConfig service_;
  v1::ServiceAction action_;
};

class PatroniExecutor : public TaskExecutor {
 public:
  PatroniExecutor(const AgentConfig* config, v1::PatroniAction action)
      : config_(config), action_(std::move(action)) {}
  v1::TaskResult Run(TaskContext& context) override {
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    context.OnCancel([cancelled] { cancelled->store(true); });
    RestoredDataEnvironment env;
    env.data_directory = config_->data_directory;
    env.pg_bin_dir = config_->service.pg_ctl.substr(0, config_->service.pg_ctl.rfind('/'));
    env.state_dir = config_->state_dir;
    env.run_as_prefix = config_->service.run_as_prefix;
    absl::StatusOr<std::map<std::string, std::string>> values = RunPatroniAction(
        *config_->patroni, env, action_,
        [&context](absl::string_view line) { context.Log("agent", line); },
        [cancelled] { return cancelled->load(); });
    return ValuesResult(values);
  }

 private:
  const AgentConfig* config_;
  const v1::PatroniAction action_;
};

}  // namespace

PgBackRestEnvironment PgBackRestEnvironmentFor(const AgentConfig& config) {
  PgBackRestEnvironment env;
  env.binary = config.pgbackrest_binary;
  env.state_dir = config.state_dir;
  env.pg_path = config.data_directory;
  env.pg_port = config.postgres.port;
  env.pg_socket_path = config.postgres.socket_dir;
  env.pg_user = config.postgres.user;
  env.allowed_roots = config.roots;
  return env;
}

ExecutorFactory MakeExecutorFactory(const AgentConfig* config) {
  // Stanza and secrets per migration, from ConfigurePgBackRest; in memory only.
  auto secrets = std::make_shared<SecretStore>();
  auto env = std::make_shared<PgBackRestEnvironment>(PgBackRestEnvironmentFor(*config));
  return [config, secrets,
          env](const v1::Task& task) -> absl::StatusOr<std::unique_ptr<TaskExecutor>> {
    switch (task.op_case()) {
      case v1::Task::kConfigurePgbackrest:
        return MakeConfigureExecutor(*env, task, secrets.get());
      case v1::Task::kPgbackrest: {
        // The repository path was confined when the migration was configured; a link inside a
        // root may have been swapped in since, so it is checked again before pgBackRest uses it.
        // (A migration this agent does not know is refused by MakePgBackRestExecutor.)
        if (!task.pgbackrest().has_version()) {
          std::optional<ConfiguredMigration> configured =
              secrets->Get(task.pgbackrest().migration_id());
          if (configured.has_value()) {
            PGH_RETURN_IF_ERROR(RecheckConfiguredPaths(*env, *configured));
          }
        }
        return MakePgBackRestExecutor(*env, task, secrets.get());
      }
      case v1::Task::kGatherFacts:
        return std::make_unique<GatherFactsExecutor>(config);
      case v1::Task::kSql:
        return MakeSqlExecutor(config, *env, *secrets, task);
      case v1::Task::kCheck:
        PGH_RETURN_IF_ERROR(ValidateApplicationCheck(task.check()));
        if (config->checks_user.empty()) return NoChecksUserError();
        return std::make_unique<ApplicationCheckExecutor>(config, task.check());
      case v1::Task::kService: {
        // Validated here, so a bad action is refused before anything runs.
        PGH_RETURN_IF_ERROR(ServiceCommand(config->service, task.service()).status());
        return std::make_unique<ServiceExecutor>(config->service, task.service());
      }
      case v1::Task::kPatroni: {
        if (!config->patroni.has_value()) {
          return absl::FailedPreconditionError(
              "this agent is not configured for Patroni (its configuration has no patroni "
              "section, docs/patroni.md); nothing ran");
        }
        PGH_RETURN_IF_ERROR(ValidatePatroniAction(task.patroni()));
        return std::make_unique<PatroniExecutor>(config, task.patroni());
      }
      default:
        break;
    }
    return absl::UnimplementedError(
        absl::StrCat("this agent does not offer the operation '", DescribeOperation(task),
                     "'; nothing ran (agent and controller releases may differ)"));
  };
}

}  // namespace pghaul::agent
