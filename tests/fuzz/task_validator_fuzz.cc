// Fuzzes the agent's validation of a task from the controller: bytes -> v1::Task, then the
// executor factory the agent really uses (agent/task_executors.h), which validates every field
// and builds the executor, REFUSED on any error. Executors are built and destroyed, never run:
// validation must not touch PostgreSQL, pgBackRest or the disk.
//
// The real factory knows no migration (ConfigurePgBackRest never ran), so pgBackRest commands
// are also given to MakePgBackRestExecutor with a SecretStore that has the task's migration
// configured, which reaches the argv builder.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "agent/agent_config.h"
#include "agent/pgbackrest_config.h"
#include "agent/pgbackrest_executor.h"
#include "agent/sql_catalogue.h"
#include "agent/task_executors.h"
#include "common/task_names.h"
#include "common/validators.h"
#include "pghaul/v1/agent_link.pb.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

struct Agent {
  pghaul::fuzz::ScratchDirectory scratch;
  pghaul::agent::AgentConfig config;
  pghaul::agent::ExecutorFactory factory;
  pghaul::agent::PgBackRestEnvironment env;

  Agent() {
    config.agent_id = "fuzz-db1";
    config.controller_address = "127.0.0.1:7400";
    config.controller_insecure = true;
    config.data_directory = scratch.path() + "/data";
    config.state_dir = scratch.path() + "/state";
    config.roots = {config.state_dir, "/srv/pghaul"};
    config.service.data_directory = config.data_directory;
    factory = pghaul::agent::MakeExecutorFactory(&config);
    env = pghaul::agent::PgBackRestEnvironmentFor(config);
  }
};

Agent* fixture = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  pghaul::fuzz::QuietLogging();
  static Agent instance;  // its directory is removed at exit; validation never writes into it
  fixture = &instance;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pghaul::v1::Task task;
  if (!task.ParseFromArray(data, static_cast<int>(size))) return 0;
  (void)pghaul::DescribeOperation(task);

  absl::StatusOr<std::unique_ptr<pghaul::agent::TaskExecutor>> made = fixture->factory(task);
  if (made.ok() && *made == nullptr) std::abort();
  if (task.op_case() == pghaul::v1::Task::OP_NOT_SET && made.ok()) std::abort();

  if (task.has_sql()) (void)pghaul::agent::ValidateSqlQueryFields(task.sql());

  if (task.has_pgbackrest() && pghaul::ValidateMigrationId(task.pgbackrest().migration_id()).ok()) {
    pghaul::agent::SecretStore secrets;
    pghaul::agent::ConfiguredMigration configured;
    configured.stanza = "main";
    configured.new_stanza = "main-new";
    configured.posix_repo_path = "/srv/pghaul/repo";
    configured.secrets.set_cipher_pass("fuzz");
    secrets.Put(task.pgbackrest().migration_id(), configured);
    absl::StatusOr<std::unique_ptr<pghaul::agent::TaskExecutor>> command =
        pghaul::agent::MakePgBackRestExecutor(fixture->env, task, &secrets);
    if (command.ok() && *command == nullptr) std::abort();
  }
  return 0;
}
