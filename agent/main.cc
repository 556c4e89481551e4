// pghaul-agent: runs beside PostgreSQL on a database host and dials out to the controller.
#include <sysexits.h>

#include <iostream>
#include <string>
#include <thread>

#include "agent/agent_config.h"
#include "agent/controller_link.h"
#include "agent/host_facts.h"
#include "agent/privileges.h"
#include "agent/task_executors.h"
#include "agent/task_manager.h"
#include "common/daemon_main.h"
#include "common/files.h"
#include "common/identifiers.h"
#include "common/logging.h"
#include "common/signals.h"
#include "common/state_dir_lock.h"
#include "common/tls_credentials.h"
#include "common/version.h"

namespace pghaul::agent {
namespace {

int Run(const std::string& config_path) {
  absl::StatusOr<AgentConfig> config = LoadAgentConfig(config_path);
  if (!config.ok()) {
    std::cerr << "pghaul-agent: " << config.status().message() << "\n";
    return EX_CONFIG;
  }
  // Before anything else runs or any file is written: never as root.
  if (absl::Status s = ApplyPrivileges(config->run_as); !s.ok()) {
    std::cerr << "pghaul-agent: " << s.message() << "\n";
    return absl::IsFailedPrecondition(s) || absl::IsNotFound(s) ? EX_CONFIG : EX_OSERR;
  }
  if (int code = StartDaemonLogging("pghaul-agent", "agent", config->log_format, config->log_level);
      code != 0) {
    return code;
  }
  if (absl::Status s = MakeDirectories(config->state_dir, 0700); !s.ok()) {
    PGH_LOG_ERROR("state directory: {}", s.message());
    return EX_CANTCREAT;
  }
  // Two agents on one state directory would overwrite each other's task results and pgBackRest
  // configuration.
  absl::StatusOr<StateDirLock> state_lock =
      StateDirLock::Acquire(config->state_dir, "agent", "pghaul-agent");
  if (!state_lock.ok()) {
    PGH_LOG_ERROR("{}", state_lock.status().message());
    return EX_TEMPFAIL;
  }
  LinkOptions options;
  options.agent_id = config->agent_id;
  options.incarnation = RandomHexId();
  options.controller_address = config->controller_address;
  options.reconnect_initial = config->reconnect_initial;
  options.reconnect_max = config->reconnect_max;
  options.facts_interval = config->facts_interval;
  PGH_LOG_INFO("pghaul-agent {} (protocol {}) starting as '{}', incarnation {}, controller {}",
               kPghaulVersion, kProtocolVersion, options.agent_id, options.incarnation,
               options.controller_address);
  if (config->controller_insecure) {
    PGH_LOG_WARN(
        "TLS is off (controller.insecure: true): the link to the controller is plaintext and "
        "unauthenticated; anyone on the network path can read the tasks and pose as the "
        "controller. Use only on a trusted network; docs/security.md sets up TLS");
  } else {
    // Read as the user the agent runs as (after ApplyPrivileges): the key must be readable by
    // it, and by as few others as possible.
    absl::StatusOr<TlsMaterial> tls = LoadTlsFiles(
        config->controller_tls, {"controller.tls.ca", "controller.tls.cert", "controller.tls.key"});
    absl::Status usable = tls.status();
    if (usable.ok()) usable = CheckAgentCertificate(tls->certificate.names, config->agent_id);
    if (usable.ok()) usable = RequireTls13ForProcess();
    if (!usable.ok()) {
      PGH_LOG_ERROR("TLS: {}", usable.message());
      return EX_CONFIG;
    }
    options.credentials = MutualTlsChannelCredentials(*tls);
    options.tls_server_name = config->controller_tls_server_name;
    PGH_LOG_INFO(
        "TLS 1.3 to the controller as {} (certificate valid until {}); the controller "
        "must present a certificate for {} from the CA in {}",
        DescribeCertificateNames(tls->certificate.names),
        absl::FormatTime(tls->certificate.not_after),
        options.tls_server_name.empty()
            ? options.controller_address.substr(0, options.controller_address.rfind(':'))
            : options.tls_server_name,
        config->controller_tls.ca);
  }

  const AgentConfig& agent_config = *config;
  TaskManager tasks(agent_config.state_dir, MakeExecutorFactory(&agent_config));
  if (absl::Status s = tasks.LoadPersisted(); !s.ok()) {
    PGH_LOG_ERROR("task state in {}: {}", agent_config.state_dir, s.message());
    return EX_CANTCREAT;
  }
  ControllerLink link(
      options, [&agent_config] { return GatherHostFacts(agent_config); }, &tasks);
  std::thread link_thread([&link] { link.Run(); });
  int signal_number = WaitForShutdownSignal();
  PGH_LOG_INFO("signal {} received, shutting down", signal_number);
  link.Stop();
  link_thread.join();
  return EX_OK;
}

}  // namespace
}  // namespace pghaul::agent

int main(int argc, char** argv) {
  return pghaul::DaemonMain(argc, argv,
                            "pghaul-agent: runs pgBackRest and SQL for pghaul on a database host",
                            "/etc/pghaul/agent.yaml", pghaul::agent::Run);
}
