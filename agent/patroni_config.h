// The `patroni` section of agent.yaml: the agent's host runs PostgreSQL under Patroni
// (docs/patroni.md). The agent then reads Patroni's state from its REST API into the host facts
// and offers PatroniAction tasks (start, stop, pause, resume).
//
//   patroni:
//     config_file: /etc/patroni/patroni.yml   # required, absolute
//     dcs: etcd3                              # the only kind supported (Patroni's etcd3:)
//     rest_api:
//       address: 127.0.0.1:8008               # required, host:port of restapi.connect_address
//       username: patroni                     # restapi.authentication, optional ...
//       password_file: /etc/pghaul/patroni-rest-password  # ... with its password in a file
//       timeout: 5s                           # per request, 100ms..60s
//     control:
//       method: systemd                       # or: command
//       systemctl: /usr/bin/systemctl         # systemd
//       unit: patroni.service                 # systemd
//       command: [/usr/bin/patroni, /etc/patroni/patroni.yml]  # command, argv[0] absolute
//       log_file: /var/log/patroni/patroni.log                 # command, required, absolute
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/config_reader.h"

namespace pghaul::agent {

struct PatroniConfig {
  enum class Control {
    // `systemctl start|stop UNIT`: systemd supervises Patroni and knows its process.
    kSystemd,
    // The agent runs `command` itself, detached (own session, stdin /dev/null, output appended
    // to log_file), so Patroni outlives the agent. To stop it, the agent finds the process
    // listening on the REST API's port (/proc/net/tcp, then the process holding that socket)
    // and sends SIGTERM; it therefore stops a Patroni started by anyone, as long as it runs as
    // the agent's user (or the agent is root).
    kCommand,
  };

  std::string config_file;  // key config_file
  std::string dcs = "etcd3";
  std::string rest_api_host;  // from rest_api.address
  int rest_api_port = 8008;
  std::string rest_api_username;       // "": no authentication
  std::string rest_api_password_file;  // read at each request, so it may be rotated
  absl::Duration request_timeout = absl::Seconds(5);
  Control control = Control::kSystemd;
  std::string systemctl = "/usr/bin/systemctl";
  std::string unit = "patroni.service";
  std::vector<std::string> command;
  std::string log_file;

  // "host:port" (IPv6 in brackets), for messages and facts.
  std::string RestApiAddress() const;
};

// Reads the `patroni` section into `out`, recording every problem in `section` (so it ends up
// in the configuration's one error message). The cross-key rules: username and password_file
// go together; systemd takes unit/systemctl and no command/log_file; command takes command and
// log_file and no unit/systemctl.
void ReadPatroniSection(ConfigReader section, PatroniConfig& out);

// What the agent reads from Patroni's own configuration file (patroni.yml): for preflight, the
// roles Patroni connects as and the pg_hba lines it writes; for the restore, those roles'
// passwords and where Patroni keeps the cluster in etcd.
struct PatroniFileSettings {
  // postgresql.authentication.<kind>.username (Patroni also accepts the older
  // postgresql.superuser / postgresql.replication, and postgresql.pg_rewind for the superuser);
  // "" when not set. Patroni's PATRONI_SUPERUSER_USERNAME etc. environment variables, which
  // override the file, are not visible here.
  std::string superuser;
  std::string replication;
  std::string rewind;
  // postgresql.pg_hba, else bootstrap.dcs.postgresql.pg_hba: the lines Patroni writes into
  // pg_hba.conf, in order.
  std::vector<std::string> pg_hba;

  // The passwords of those roles (std::nullopt when patroni.yml sets none). Only the restore
  // into a Patroni target reads them, to give the restored roles the passwords Patroni logs in
  // with; they are never reported, logged or put in a message.
  std::optional<std::string> superuser_password;
  std::optional<std::string> replication_password;
  std::optional<std::string> rewind_password;

  // Where Patroni keeps the cluster in its DCS: `namespace` (default "/service") and `scope`.
  std::string scope;
  std::string dcs_namespace = "/service";  // Patroni: "service", made absolute
  // etcd3.host, or etcd3.hosts (a list or a comma-separated string), as "host:port".
  std::vector<std::string> etcd3_hosts;
  // What of etcd3: the agent cannot use to reach etcd itself (etcd3.protocol https, username,
  // cacert/cert/key, url, proxy, srv), by key; empty when plain http to the hosts above works.
  std::vector<std::string> etcd3_unsupported;

  // The DCS key prefix of the cluster: "<namespace>/<scope>/" with exactly one '/' between.
  std::string ClusterPrefix() const;
};

// Parses the text of a patroni.yml. Errors: InvalidArgument when it is not YAML, not a mapping,
// or a key read here has the wrong shape (e.g. pg_hba not a list of strings).
absl::StatusOr<PatroniFileSettings> ParsePatroniFileSettings(absl::string_view yaml_text);

// ReadFile(path) (at most 1 MiB) and ParsePatroniFileSettings. Errors: those of ReadFile
// (NotFound, PermissionDenied, ...) and of the parse, each naming the path.
absl::StatusOr<PatroniFileSettings> ReadPatroniFileSettings(const std::string& path);

// Splits "host:port" or "[v6]:port". Errors: InvalidArgument.
absl::Status SplitHostPort(absl::string_view address, std::string* host, int* port);

}  // namespace pghaul::agent
