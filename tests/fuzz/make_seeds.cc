// Writes the protobuf seeds of the committed corpus (README.md): one serialized v1::Task per
// operation the controller sends, and a few conversations (length-delimited streams of
// ControllerMessage or AgentMessage) for the message targets. The values are those a real
// migration uses. Run it only to regenerate the corpus:
//
//   pghaul_fuzz_make_seeds tests/fuzz/corpus
//
// It writes corpus/task_validator_fuzz/task-*.pb, corpus/agent_messages_fuzz/*.pb and
// corpus/controller_messages_fuzz/*.pb, replacing files of the same names.
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "google/protobuf/util/delimited_message_util.h"
#include "pghaul/v1/agent_link.pb.h"

namespace {

namespace v1 = pghaul::v1;

constexpr char kMigration[] = "m1";

bool WriteBytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

// Messages in the framing of fuzz_support.h's ForEachDelimited.
template <typename M>
std::string Delimited(const std::vector<M>& messages) {
  std::string bytes;
  for (const M& message : messages) {
    std::ostringstream out;
    google::protobuf::util::SerializeDelimitedToOstream(message, &out);
    bytes += out.str();
  }
  return bytes;
}

v1::Task Named(const std::string& id, v1::Task task) {
  task.set_task_id(id);
  return task;
}

v1::Task ConfigurePosix() {
  v1::Task task;
  v1::ConfigurePgBackRest* configure = task.mutable_configure_pgbackrest();
  configure->set_migration_id(kMigration);
  configure->set_stanza("main");
  configure->set_new_stanza("main-new");
  configure->mutable_repository()->mutable_posix()->set_path("/srv/pghaul/repo");
  configure->mutable_repository()->set_path("/srv/pghaul/repo");
  configure->mutable_repository()->set_retention_full(2);
  configure->mutable_repository()->set_cipher_type("none");
  configure->set_process_max(2);
  configure->set_compress_type("lz4");
  return task;
}

v1::Task ConfigureS3() {
  v1::Task task;
  v1::ConfigurePgBackRest* configure = task.mutable_configure_pgbackrest();
  configure->set_migration_id(kMigration);
  configure->set_stanza("main");
  v1::S3Repository* s3 = configure->mutable_repository()->mutable_s3();
  s3->set_endpoint("s3.eu-west-1.amazonaws.com");
  s3->set_port(443);
  s3->set_bucket("pghaul-backups");
  s3->set_region("eu-west-1");
  s3->set_uri_style("host");
  s3->set_ca_file("/srv/pghaul/ca.crt");
  configure->mutable_repository()->set_path("/pgbackrest");
  configure->mutable_repository()->set_cipher_type("aes-256-cbc");
  configure->mutable_secrets()->set_s3_key("AKIAEXAMPLE");
  configure->mutable_secrets()->set_s3_key_secret("example-secret");
  configure->mutable_secrets()->set_cipher_pass("example-passphrase");
  configure->set_compress_type("zst");
  configure->set_archive_async(true);
  return task;
}

v1::Task ConfigureRepoHost() {
  v1::Task task;
  v1::ConfigurePgBackRest* configure = task.mutable_configure_pgbackrest();
  configure->set_migration_id(kMigration);
  configure->set_stanza("main");
  v1::RepositoryHost* host = configure->mutable_repository()->mutable_host();
  host->set_host("backup.example.internal");
  host->set_port(8432);
  host->set_ca_file("/srv/pghaul/tls/ca.crt");
  host->set_cert_file("/srv/pghaul/tls/client.crt");
  host->set_key_file("/srv/pghaul/tls/client.key");
  configure->mutable_repository()->set_path("/var/lib/pgbackrest");
  return task;
}

v1::Task Command(void (*fill)(v1::PgBackRestCommand*)) {
  v1::Task task;
  task.set_timeout_seconds(3600);
  v1::PgBackRestCommand* command = task.mutable_pgbackrest();
  command->set_migration_id(kMigration);
  fill(command);
  return task;
}

v1::Task Sql(v1::SqlQuery::Query query, void (*fill)(v1::SqlQuery*) = nullptr) {
  v1::Task task;
  task.mutable_sql()->set_query(query);
  if (fill != nullptr) fill(task.mutable_sql());
  return task;
}

v1::Task Service(v1::ServiceAction::Action action) {
  v1::Task task;
  task.mutable_service()->set_action(action);
  if (action == v1::ServiceAction::STOP) task.mutable_service()->set_stop_mode("fast");
  task.mutable_service()->set_wait_seconds(60);
  return task;
}

std::vector<std::pair<std::string, v1::Task>> AllTasks() {
  std::vector<std::pair<std::string, v1::Task>> tasks;
  auto add = [&tasks](const std::string& name, v1::Task task) {
    tasks.emplace_back(name, Named("t-" + name, std::move(task)));
  };
  add("configure-posix", ConfigurePosix());
  add("configure-s3", ConfigureS3());
  add("configure-repo-host", ConfigureRepoHost());
  add("pgbackrest-version", Command([](v1::PgBackRestCommand* c) { c->mutable_version(); }));
  add("pgbackrest-info", Command([](v1::PgBackRestCommand* c) { c->mutable_info(); }));
  add("pgbackrest-stanza-create",
      Command([](v1::PgBackRestCommand* c) { c->mutable_stanza_create(); }));
  add("pgbackrest-check", Command([](v1::PgBackRestCommand* c) { c->mutable_check(); }));
  add("pgbackrest-backup-full", Command([](v1::PgBackRestCommand* c) {
        c->mutable_backup()->set_type("full");
        c->mutable_backup()->set_process_max(4);
        c->mutable_backup()->set_compress_type("lz4");
      }));
  add("pgbackrest-backup-incr-new-stanza", Command([](v1::PgBackRestCommand* c) {
        c->set_new_stanza(true);
        c->mutable_backup()->set_type("incr");
      }));
  add("pgbackrest-restore-standby", Command([](v1::PgBackRestCommand* c) {
        c->mutable_restore()->set_delta(true);
        c->mutable_restore()->set_type("standby");
        c->mutable_restore()->set_process_max(2);
        c->mutable_restore()->set_wal_retrieve_retry_ms(250);
      }));
  add("pgbackrest-restore-time", Command([](v1::PgBackRestCommand* c) {
        c->mutable_restore()->set_type("time");
        c->mutable_restore()->set_target("2024-05-01 13:45:00+00");
        c->mutable_restore()->set_target_action("promote");
        c->mutable_restore()->set_target_timeline("latest");
        c->mutable_restore()->set_set("20240501-134500F");
      }));
  add("pgbackrest-restore-lsn", Command([](v1::PgBackRestCommand* c) {
        c->mutable_restore()->set_type("lsn");
        c->mutable_restore()->set_target("0/3000060");
        c->mutable_restore()->set_target_action("pause");
      }));
  add("pgbackrest-verify", Command([](v1::PgBackRestCommand* c) { c->mutable_verify(); }));
  add("pgbackrest-expire", Command([](v1::PgBackRestCommand* c) {
        c->mutable_expire()->set_set("20240501-134500F_20240502-010000D");
      }));
  add("gather-facts", [] {
    v1::Task task;
    task.mutable_gather_facts();
    return task;
  }());
  add("sql-switch-wal", Sql(v1::SqlQuery::SWITCH_WAL));
  add("sql-current-wal-lsn", Sql(v1::SqlQuery::CURRENT_WAL_LSN));
  add("sql-last-replay-lsn", Sql(v1::SqlQuery::LAST_REPLAY_LSN));
  add("sql-stat-archiver", Sql(v1::SqlQuery::STAT_ARCHIVER));
  add("sql-promote", Sql(v1::SqlQuery::PROMOTE, [](v1::SqlQuery* q) {
        q->set_wait_seconds(60);
        q->set_without_restore_command(true);
      }));
  add("sql-fence-read-only",
      Sql(v1::SqlQuery::FENCE_READ_ONLY, [](v1::SqlQuery* q) { q->set_migration_id(kMigration); }));
  add("sql-unfence",
      Sql(v1::SqlQuery::UNFENCE, [](v1::SqlQuery* q) { q->set_migration_id(kMigration); }));
  add("sql-fence-status",
      Sql(v1::SqlQuery::FENCE_STATUS, [](v1::SqlQuery* q) { q->set_migration_id(kMigration); }));
  add("sql-checkpoint", Sql(v1::SqlQuery::CHECKPOINT));
  add("sql-enable-archiving", Sql(v1::SqlQuery::ENABLE_ARCHIVING, [](v1::SqlQuery* q) {
        q->set_migration_id(kMigration);
        q->set_new_stanza(true);
      }));
  add("sql-restore-archiving", Sql(v1::SqlQuery::RESTORE_ARCHIVING,
                                   [](v1::SqlQuery* q) { q->set_migration_id(kMigration); }));
  add("sql-table-checksums", Sql(v1::SqlQuery::TABLE_CHECKSUMS));
  add("sql-schema-catalog", Sql(v1::SqlQuery::SCHEMA_CATALOG));
  add("sql-row-ranges", Sql(v1::SqlQuery::ROW_RANGES, [](v1::SqlQuery* q) {
        q->mutable_range()->set_database("app");
        q->mutable_range()->set_schema("public");
        q->mutable_range()->set_table("orders");
        q->mutable_range()->set_buckets(16);
      }));
  add("sql-row-digests", Sql(v1::SqlQuery::ROW_DIGESTS, [](v1::SqlQuery* q) {
        v1::RowRange* range = q->mutable_range();
        range->set_database("app");
        range->set_schema("public");
        range->set_table("orders");
        range->mutable_lower()->add_columns("1000");
        range->mutable_upper()->add_columns("2000");
      }));
  add("sql-wait-archived", Sql(v1::SqlQuery::WAIT_ARCHIVED, [](v1::SqlQuery* q) {
        q->set_walfile("000000010000000000000012");
        q->set_wait_seconds(120);
      }));
  add("sql-wait-replayed", Sql(v1::SqlQuery::WAIT_REPLAYED, [](v1::SqlQuery* q) {
        q->set_lsn("0/12000028");
        q->set_wait_seconds(120);
      }));
  add("sql-set-wal-retrieve-retry",
      Sql(v1::SqlQuery::SET_WAL_RETRIEVE_RETRY, [](v1::SqlQuery* q) { q->set_retry_ms(250); }));
  add("check", [] {
    v1::Task task;
    task.mutable_check()->set_name("orders-open.sql");
    task.mutable_check()->set_sql("SELECT count(*) FROM orders WHERE state = 'open'");
    task.mutable_check()->set_database("app");
    return task;
  }());
  add("service-start", Service(v1::ServiceAction::START));
  add("service-stop", Service(v1::ServiceAction::STOP));
  add("service-status", Service(v1::ServiceAction::STATUS));
  add("service-promote", Service(v1::ServiceAction::PROMOTE));
  add("service-restart", Service(v1::ServiceAction::RESTART));
  for (int action = v1::PatroniAction::Action_MIN + 1; action <= v1::PatroniAction::Action_MAX;
       ++action) {
    v1::Task task;
    task.mutable_patroni()->set_action(static_cast<v1::PatroniAction::Action>(action));
    task.mutable_patroni()->set_wait_seconds(30);
    std::string name = v1::PatroniAction::Action_Name(task.patroni().action());
    for (char& c : name) c = c == '_' ? '-' : static_cast<char>(std::tolower(c));
    add("patroni-" + name, task);
  }
  add("sql-ensure-roles", Sql(v1::SqlQuery::ENSURE_ROLES, [](v1::SqlQuery* q) {
        q->set_create_roles(true);
        v1::RoleToEnsure* role = q->add_roles();
        role->set_name("operator");
        role->set_superuser(true);
        role->set_scram_verifier(
            "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$"
            "c3RvcmVkLWtleS1vZi10aGlydHktdHdvLWJ5dGVzISE=:"
            "c2VydmVyLWtleS1vZi10aGlydHktdHdvLWJ5dGVzISE=");
      }));
  add("sql-drop-roles",
      Sql(v1::SqlQuery::DROP_ROLES, [](v1::SqlQuery* q) { q->add_roles()->set_name("operator"); }));
  return tasks;
}

v1::ControllerMessage TaskMessage(const v1::Task& task) {
  v1::ControllerMessage message;
  *message.mutable_task() = task;
  return message;
}

v1::ControllerMessage AckMessage(const std::string& task_id, uint64_t seq) {
  v1::ControllerMessage message;
  message.mutable_ack()->set_task_id(task_id);
  message.mutable_ack()->set_seq(seq);
  return message;
}

v1::ControllerMessage CancelMessage(const std::string& task_id) {
  v1::ControllerMessage message;
  message.mutable_cancel()->set_task_id(task_id);
  return message;
}

v1::ControllerMessage WelcomeMessage() {
  v1::ControllerMessage message;
  message.mutable_welcome()->set_controller_id("controller-1");
  message.mutable_welcome()->set_heartbeat_interval_ms(2000);
  message.mutable_welcome()->mutable_versions()->set_pghaul("0.1.0");
  message.mutable_welcome()->mutable_versions()->set_protocol(1);
  return message;
}

v1::AgentMessage Hello(const std::string& agent_id, const std::string& incarnation) {
  v1::AgentMessage message;
  v1::Hello* hello = message.mutable_hello();
  hello->set_agent_id(agent_id);
  hello->set_incarnation(incarnation);
  hello->mutable_versions()->set_pghaul("0.1.0");
  hello->mutable_versions()->set_protocol(1);
  hello->mutable_facts()->set_hostname(agent_id + ".example.internal");
  hello->mutable_facts()->set_data_directory("/var/lib/postgresql/15/main");
  hello->mutable_facts()->mutable_postgres()->set_reachable(true);
  return message;
}

v1::AgentMessage Heartbeat(uint64_t seq) {
  v1::AgentMessage message;
  message.mutable_heartbeat()->set_seq(seq);
  message.mutable_heartbeat()->mutable_sent_at()->set_seconds(1'700'000'000 + seq);
  return message;
}

v1::AgentMessage Facts(bool reachable) {
  v1::AgentMessage message;
  message.mutable_facts()->mutable_facts()->set_hostname("db1.example.internal");
  message.mutable_facts()->mutable_facts()->mutable_postgres()->set_reachable(reachable);
  if (!reachable) {
    message.mutable_facts()->mutable_facts()->mutable_postgres()->set_error(
        "connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed");
  }
  return message;
}

v1::AgentMessage Log(const std::string& task_id, uint64_t seq, const std::string& text) {
  v1::AgentMessage message;
  v1::TaskEvent* event = message.mutable_task_event();
  event->set_task_id(task_id);
  event->set_seq(seq);
  event->mutable_time()->set_seconds(1'700'000'100 + static_cast<int64_t>(seq));
  event->mutable_log()->set_stream("stdout");
  event->mutable_log()->set_text(text);
  return message;
}

v1::AgentMessage ProgressEvent(const std::string& task_id, uint64_t seq, double percent) {
  v1::AgentMessage message;
  v1::TaskEvent* event = message.mutable_task_event();
  event->set_task_id(task_id);
  event->set_seq(seq);
  event->mutable_time()->set_seconds(1'700'000'100 + static_cast<int64_t>(seq));
  event->mutable_progress()->set_percent(percent);
  event->mutable_progress()->set_bytes_done(static_cast<uint64_t>(percent * 1e6));
  event->mutable_progress()->set_bytes_total(100'000'000);
  event->mutable_progress()->set_eta_seconds(30);
  return message;
}

v1::AgentMessage Result(const std::string& task_id, uint64_t seq, v1::TaskResult::State state) {
  v1::AgentMessage message;
  v1::TaskEvent* event = message.mutable_task_event();
  event->set_task_id(task_id);
  event->set_seq(seq);
  event->mutable_time()->set_seconds(1'700'000'200);
  v1::TaskResult* result = event->mutable_result();
  result->set_state(state);
  if (state == v1::TaskResult::SUCCEEDED) {
    (*result->mutable_values())["lsn"] = "0/12000028";
    (*result->mutable_values())["walfile"] = "000000010000000000000012";
  } else {
    result->set_message("pgbackrest exited with 56: [056]: unable to find primary cluster");
    result->set_exit_code(56);
  }
  return message;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " <corpus directory, e.g. tests/fuzz/corpus>\n";
    return 64;
  }
  const std::filesystem::path corpus = argv[1];
  bool ok = true;
  for (const char* target :
       {"task_validator_fuzz", "agent_messages_fuzz", "controller_messages_fuzz"}) {
    std::filesystem::create_directories(corpus / target);
  }

  const std::vector<std::pair<std::string, v1::Task>> tasks = AllTasks();
  for (const auto& [name, task] : tasks) {
    ok &= WriteBytes(corpus / "task_validator_fuzz" / ("task-" + name + ".pb"),
                     task.SerializeAsString());
  }

  // The agent's side: what a controller sends over one migration's stream.
  auto find = [&tasks](const std::string& name) {
    for (const auto& [n, task] : tasks) {
      if (n == name) return task;
    }
    std::abort();
  };
  const v1::Task sql = find("sql-switch-wal");
  const v1::Task backup = find("pgbackrest-backup-full");
  const v1::Task facts = find("gather-facts");
  std::vector<std::pair<std::string, std::vector<v1::ControllerMessage>>> agent_seeds = {
      {"submit-ack",
       {WelcomeMessage(), TaskMessage(sql), AckMessage(sql.task_id(), 1),
        AckMessage(sql.task_id(), 3)}},
      {"submit-twice-reattach",
       {TaskMessage(facts), TaskMessage(facts), WelcomeMessage(), TaskMessage(facts),
        AckMessage(facts.task_id(), 2)}},
      {"refused-then-cancel",
       {TaskMessage(backup), CancelMessage(backup.task_id()), AckMessage(backup.task_id(), 1)}},
      {"configure-then-command",
       {TaskMessage(find("configure-posix")), TaskMessage(backup),
        TaskMessage(find("pgbackrest-info"))}},
      {"service-and-check",
       {TaskMessage(find("service-status")), TaskMessage(find("check")), CancelMessage("t-check"),
        AckMessage("t-service-status", 99)}},
      {"reattach-only",
       {[&] {
          v1::ControllerMessage message = TaskMessage(find("configure-s3"));
          message.mutable_task()->set_reattach_only(true);
          return message;
        }(),
        AckMessage("t-configure-s3", 1)}},
  };
  for (const auto& [name, messages] : agent_seeds) {
    ok &= WriteBytes(corpus / "agent_messages_fuzz" / (name + ".pb"), Delimited(messages));
  }

  // The controller's side: what agents send. The fuzz target journals t-sql and t-configure
  // for db1 and t-backup for db2 before each input.
  std::vector<std::pair<std::string, std::vector<v1::AgentMessage>>> controller_seeds = {
      {"hello-heartbeats",
       {Hello("db1", "inc-1"), Heartbeat(1), Heartbeat(2), Facts(false), Facts(true),
        Heartbeat(3)}},
      {"task-events",
       {Hello("db1", "inc-1"), Log("t-sql", 1, "switching WAL"), ProgressEvent("t-sql", 2, 50),
        Log("t-sql", 2, "duplicate"), Result("t-sql", 3, v1::TaskResult::SUCCEEDED)}},
      {"events-lost-and-failed",
       {Hello("db2", "inc-7"), ProgressEvent("t-backup", 1, 10), ProgressEvent("t-backup", 5, 80),
        Result("t-backup", 9, v1::TaskResult::FAILED)}},
      {"interrupted-result",
       {Hello("db1", "inc-2"), Result("t-configure", uint64_t{1} << 40, v1::TaskResult::FAILED)}},
      {"reconnect-and-restart",
       {Hello("db1", "inc-1"), Heartbeat(1), Hello("db1", "inc-1"), Hello("db1", "inc-1"),
        Heartbeat(2), Hello("db1", "inc-2"), Hello("db1", "inc-2"),
        Log("t-sql", 1, "after restart")}},
      {"unknown-task-and-wrong-agent",
       {Hello("db2", "inc-1"), Log("t-sql", 1, "not mine"), Log("t-nope", 1, "unknown")}},
      {"swept-offline", {Hello("db1", "inc-1"), Heartbeat(31), Heartbeat(31), Heartbeat(5)}},
  };
  for (const auto& [name, messages] : controller_seeds) {
    ok &= WriteBytes(corpus / "controller_messages_fuzz" / (name + ".pb"), Delimited(messages));
  }

  if (!ok) {
    std::cerr << "make_seeds: could not write every file under " << corpus << "\n";
    return 1;
  }
  std::cout << "make_seeds: wrote " << tasks.size() << " tasks, " << agent_seeds.size()
            << " agent and " << controller_seeds.size() << " controller conversations under "
            << corpus << "\n";
  return 0;
}
