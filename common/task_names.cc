#include "common/task_names.h"

#include "absl/strings/str_cat.h"

namespace pghaul {

std::string PgBackRestCommandName(const v1::PgBackRestCommand& command) {
  switch (command.command_case()) {
    case v1::PgBackRestCommand::kVersion:
      return "version";
    case v1::PgBackRestCommand::kInfo:
      return "info";
    case v1::PgBackRestCommand::kStanzaCreate:
      return "stanza-create";
    case v1::PgBackRestCommand::kCheck:
      return "check";
    case v1::PgBackRestCommand::kBackup:
      return "backup";
    case v1::PgBackRestCommand::kRestore:
      return "restore";
    case v1::PgBackRestCommand::kVerify:
      return "verify";
    case v1::PgBackRestCommand::kExpire:
      return "expire";
    case v1::PgBackRestCommand::COMMAND_NOT_SET:
      break;
  }
  return "";
}

std::string DescribeOperation(const v1::Task& task) {
  switch (task.op_case()) {
    case v1::Task::kGatherFacts:
      return "gather-facts";
    case v1::Task::kConfigurePgbackrest:
      return "configure-pgbackrest";
    case v1::Task::kPgbackrest: {
      std::string name = PgBackRestCommandName(task.pgbackrest());
      return absl::StrCat("pgbackrest ", name.empty() ? "(none)" : name);
    }
    case v1::Task::kSql:
      return absl::StrCat("sql ", v1::SqlQuery::Query_Name(task.sql().query()));
    case v1::Task::kService:
      return absl::StrCat("service ", v1::ServiceAction::Action_Name(task.service().action()));
    case v1::Task::kCheck:
      return absl::StrCat("check ", task.check().name());
    case v1::Task::kPatroni:
      return absl::StrCat("patroni ", v1::PatroniAction::Action_Name(task.patroni().action()));
    case v1::Task::OP_NOT_SET:
      break;
  }
  return "unknown";
}

absl::Status ValidateTaskId(absl::string_view task_id) {
  bool ok = !task_id.empty() && task_id.size() <= 64;
  for (char c : task_id) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '.' || c == '-');
  }
  if (ok && task_id[0] != '.' && task_id[0] != '-') return absl::OkStatus();
  return absl::InvalidArgumentError(
      "task id must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-', not starting with "
      "'.' or '-'");
}

}  // namespace pghaul
