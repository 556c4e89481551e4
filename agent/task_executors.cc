#include "agent/task_executors.h"

#include "absl/strings/str_cat.h"
#include "agent/host_facts.h"
#include "agent/pgbackrest_config.h"
#include "agent/pgbackrest_executor.h"
#include "agent/service_control.h"
#include "agent/sql_catalogue.h"
#include "common/status_macros.h"
#include "common/task_names.h"

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

class SqlExecutor : public TaskExecutor {
 public:
  SqlExecutor(const AgentConfig* config, v1::SqlQuery query) : config_(config), query_(query) {}
  v1::TaskResult Run(TaskContext& context) override {
    absl::StatusOr<std::map<std::string, std::string>> values =
        RunSqlQuery(config_->postgres, query_);
    if (!values.ok()) return FailedResult(values.status());
    v1::TaskResult result;
    result.set_state(v1::TaskResult::SUCCEEDED);
    SetValues(*values, result);
    return result;
  }

 private:
  const AgentConfig* config_;
  v1::SqlQuery query_;
};

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
  return [config, secrets, env](
             const v1::Task& task) -> absl::StatusOr<std::unique_ptr<TaskExecutor>> {
    switch (task.op_case()) {
      case v1::Task::kConfigurePgbackrest:
        return MakeConfigureExecutor(*env, task, secrets.get());
      case v1::Task::kPgbackrest:
        return MakePgBackRestExecutor(*env, task, secrets.get());
      case v1::Task::kGatherFacts:
        return std::make_unique<GatherFactsExecutor>(config);
      case v1::Task::kSql:
        if (task.sql().query() == v1::SqlQuery::QUERY_UNSPECIFIED) {
          return absl::InvalidArgumentError("sql task names no query");
        }
        return std::make_unique<SqlExecutor>(config, task.sql());
      case v1::Task::kService: {
        // Validated here, so a bad action is refused before anything runs.
        PGH_RETURN_IF_ERROR(ServiceCommand(config->service, task.service()).status());
        return std::make_unique<ServiceExecutor>(config->service, task.service());
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
