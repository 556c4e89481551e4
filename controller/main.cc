// pghaul-controller: accepts the agents' links, keeps the agent registry and serves the CLI.
#include <sysexits.h>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "common/daemon_main.h"
#include "common/files.h"
#include "common/grpc_options.h"
#include "common/logging.h"
#include "common/signals.h"
#include "common/state_dir_lock.h"
#include "common/tls_credentials.h"
#include "common/version.h"
#include "controller/agent_link_service.h"
#include "controller/agent_registry.h"
#include "controller/controller_config.h"
#include "controller/migration_manager.h"
#include "controller/migration_store.h"
#include "controller/migrations_service.h"
#include "controller/sqlite_db.h"
#include "controller/task_tracker.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

namespace pghaul::controller {
namespace {

int Run(const std::string& config_path) {
  absl::StatusOr<ControllerConfig> config = LoadControllerConfig(config_path);
  if (!config.ok()) {
    std::cerr << "pghaul-controller: " << config.status().message() << "\n";
    return EX_CONFIG;
  }
  if (int code = StartDaemonLogging("pghaul-controller", "controller", config->log_format,
                                    config->log_level);
      code != 0) {
    return code;
  }
  PGH_LOG_INFO("pghaul-controller {} (protocol {}) starting, id {}, config {}", kPghaulVersion,
               kProtocolVersion, config->controller_id, config_path);
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (config->insecure) {
    PGH_LOG_WARN(
        "TLS is off (insecure: true): agent and CLI traffic, including task parameters, travels "
        "in plaintext, and any client that reaches the port is served without proof of who it "
        "is. Use only on a trusted network; docs/security.md sets up TLS");
    credentials = grpc::InsecureServerCredentials();
  } else {
    absl::StatusOr<TlsMaterial> tls = LoadTlsFiles(config->tls);
    absl::Status usable = tls.status();
    if (usable.ok()) usable = RequireTls13ForProcess();
    if (!usable.ok()) {
      PGH_LOG_ERROR("TLS: {}; check tls in {}", usable.message(), config_path);
      return EX_CONFIG;
    }
    credentials = MutualTlsServerCredentials(*tls);
    PGH_LOG_INFO(
        "TLS 1.3 with client certificates from the CA in {}; this controller is {} (certificate "
        "valid until {})",
        config->tls.ca, DescribeCertificateNames(tls->certificate.names),
        absl::FormatTime(tls->certificate.not_after));
  }
  const bool require_certificates = !config->insecure;
  if (absl::Status s = MakeDirectories(config->state_dir); !s.ok()) {
    PGH_LOG_ERROR("state directory: {}", s.message());
    return EX_CANTCREAT;
  }

  // Before the database is opened: a second controller on the same state must not touch it.
  absl::StatusOr<StateDirLock> state_lock =
      StateDirLock::Acquire(config->state_dir, "controller", "pghaul-controller");
  if (!state_lock.ok()) {
    PGH_LOG_ERROR("{}", state_lock.status().message());
    return EX_TEMPFAIL;
  }

  std::string db_path = config->state_dir + "/state.db";
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(db_path);
  if (!db.ok()) {
    PGH_LOG_ERROR("{}", db.status().message());
    return EX_CANTCREAT;
  }
  absl::StatusOr<std::unique_ptr<TaskTracker>> tasks = TaskTracker::Open(db->get());
  if (!tasks.ok()) {
    PGH_LOG_ERROR("state database {}: {}", db_path, tasks.status().message());
    return EX_DATAERR;
  }
  AgentRegistry registry(Clock::Real(), config->heartbeat_interval, config->missed_heartbeats);
  AgentLinkService link_service(&registry, tasks->get(), config->controller_id,
                                config->heartbeat_interval, require_certificates);
  absl::StatusOr<std::unique_ptr<MigrationStore>> store = MigrationStore::Open(db_path);
  if (!store.ok()) {
    PGH_LOG_ERROR("state database {}: {}", db_path, store.status().message());
    return EX_DATAERR;
  }
  MigrationManager migrations({.registry = &registry,
                               .tasks = tasks->get(),
                               .store = store->get(),
                               .clock = Clock::Real(),
                               .env = [](const char* name) { return ::getenv(name); }});
  AccessPolicy access(config->access, require_certificates);
  if (!config->access.configured) {
    PGH_LOG_WARN(
        "no access section in {}: every CLI caller{} is admin and may cut over and abort; "
        "docs/security.md (Roles and tokens) sets up read-only and operator users",
        config_path, require_certificates ? " with a CLI certificate" : "");
  } else {
    PGH_LOG_INFO("access: {} user(s) with roles, {} token(s), others {}",
                 config->access.users.size(), config->access.tokens.size(),
                 RoleName(config->access.default_role));
    if (config->insecure && !config->access.tokens.empty()) {
      PGH_LOG_WARN("access.tokens on a plaintext controller: tokens cross the network unencrypted "
                   "and can be replayed by whoever sees them");
    }
  }
  MigrationsService migrations_service(&registry, tasks->get(), &migrations, &access);

  grpc::ServerBuilder builder;
  ApplyServerOptions(builder);
  int bound_port = 0;
  builder.AddListeningPort(config->listen_address, credentials, &bound_port);
  builder.RegisterService(&link_service);
  builder.RegisterService(&migrations_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    PGH_LOG_ERROR(
        "cannot listen on {}: the address is not local to this host or the port is in use; "
        "check `listen` in {}",
        config->listen_address, config_path);
    return EX_UNAVAILABLE;
  }
  std::string host = config->listen_address.substr(0, config->listen_address.rfind(':'));
  std::string bound_address = absl::StrCat(host, ":", bound_port);
  PGH_LOG_INFO("listening on {}", bound_address);
  if (absl::Status s =
          WriteFileAtomically(config->state_dir + "/listen-address", bound_address + "\n");
      !s.ok()) {
    PGH_LOG_WARN("could not record the listen address: {}", s.message());
  }

  if (absl::Status s = migrations.Load(); !s.ok()) {
    PGH_LOG_ERROR("state database {}: {}", db_path, s.message());
    server->Shutdown();
    return EX_DATAERR;
  }

  absl::Notification stopping;
  std::thread ticker([&] {
    while (!stopping.WaitForNotificationWithTimeout(config->heartbeat_interval)) {
      link_service.Tick();
    }
  });

  int signal_number = WaitForShutdownSignal();
  PGH_LOG_INFO("signal {} received, shutting down", signal_number);
  stopping.Notify();
  ticker.join();
  migrations.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  PGH_LOG_INFO("stopped");
  return EX_OK;
}

}  // namespace
}  // namespace pghaul::controller

int main(int argc, char** argv) {
  return pghaul::DaemonMain(argc, argv,
                            "pghaul-controller: coordinates pghaul agents and migrations",
                            "/etc/pghaul/controller.yaml", pghaul::controller::Run);
}
