// Patroni's REST API as the agent uses it (Patroni 3.0.2, patroni/api.py):
//   GET   /patroni  the node's state (JSON), always 200 while Patroni runs
//   GET   /leader   200 when this node holds the leader lock, 503 otherwise
//   GET   /cluster  the members as the DCS lists them: Patroni reads the DCS for this request
//                   (get_cluster(force=True)); with the DCS down it closes the connection
//                   without an answer once its etcd client gives up (about retry_timeout)
//   PATCH /config   {"pause": true} / {"pause": null}: maintenance mode on / off, 200 with the
//                   new dynamic configuration (patronictl pause/resume send the same)
// over common/http_client.h, with basic authentication when the configuration names a user.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/patroni_config.h"
#include "pghaul/v1/facts.pb.h"

namespace pghaul::agent {

// What GET /patroni says. Absent keys keep the defaults (Patroni leaves out pause,
// pending_restart and cluster_unlocked when false, and timeline and server_version when
// PostgreSQL is not running).
struct PatroniStatus {
  std::string state;  // running, stopped, starting, stopping, crashed, unknown, ...
  std::string role;   // master, primary, replica, standby_leader, uninitialized, ...
  uint32_t timeline = 0;
  int32_t server_version = 0;
  bool paused = false;
  bool pending_restart = false;
  bool cluster_unlocked = false;
  uint64_t system_identifier = 0;  // database_system_identifier, a decimal string in the JSON
  std::string version;             // patroni.version
  std::string scope;               // patroni.scope
  // dcs_last_seen: Unix seconds of Patroni's last successful DCS read; 0 when absent (never).
  int64_t dcs_last_seen = 0;
};

// Parses the JSON body of GET /patroni. Errors: DataLoss when it is not a JSON object, when a
// known key has the wrong type (e.g. timeline not a non-negative integer, pause not a boolean),
// or when database_system_identifier is not a decimal uint64.
absl::StatusOr<PatroniStatus> ParsePatroniStatus(absl::string_view json);

class PatroniRestClient {
 public:
  // `config` must outlive the client.
  explicit PatroniRestClient(const PatroniConfig* config) : config_(config) {}

  // GET /patroni. Errors: those of SendHttpRequest (Unavailable when Patroni does not listen),
  // FailedPrecondition for a status other than 200 (with the start of the body),
  // those of ParsePatroniStatus.
  absl::StatusOr<PatroniStatus> GetStatus() const;

  // GET /leader: true on 200, false on 503. Errors: as GetStatus, for any other code.
  absl::StatusOr<bool> HoldsLeaderLock() const;

  // GET /cluster: OK when Patroni could read the DCS for it (200). Errors: as GetStatus
  // (Unavailable or DeadlineExceeded when Patroni gave up on the DCS without answering),
  // FailedPrecondition for another status code.
  absl::Status CheckDcs() const;

  // PATCH /config {"pause": true} or {"pause": null}. Errors: as GetStatus; 401 and 403 say to
  // check rest_api.username and password_file; 503 means Patroni has no configuration in the
  // DCS yet.
  absl::Status SetPause(bool paused) const;

  // PATCH /config with `body` (a JSON object merged into the dynamic configuration; null
  // removes a key). Errors: as SetPause.
  absl::Status PatchConfig(absl::string_view body) const;

  // POST /restart {}: Patroni restarts PostgreSQL and answers once it is done (waiting up to
  // `timeout` for that answer). Errors: as GetStatus; Unavailable when Patroni answers 503
  // "... already in progress" (a promotion or restart of its own runs: try again shortly);
  // FailedPrecondition for any other answer than 200 (Patroni's own message).
  absl::Status Restart(absl::Duration timeout) const;

  // POST /reload: Patroni reads its configuration again and sends PostgreSQL a SIGHUP.
  // Errors: as GetStatus, FailedPrecondition for an answer other than 200 or 202.
  absl::Status Reload() const;

 private:
  // `timeout` 0: rest_api.timeout.
  absl::StatusOr<std::string> Call(absl::string_view method, absl::string_view target,
                                   absl::string_view body, int* status_code,
                                   absl::Duration timeout = absl::ZeroDuration()) const;

  const PatroniConfig* config_;
};

// Whether Patroni's REST API answers at all (any status code is an answer; a refused or timed
// out connection is not).
bool RestApiAnswers(const PatroniRestClient& client);

// Facts for the host facts: GET /patroni, GET /leader and GET /cluster, and the roles and
// pg_hba lines of config_file (ReadPatroniFileSettings). Never fails: an unreachable API is
// reachable=false with the reason in error; an unreadable file is config_read=false with the
// reason in config_error. Takes up to rest_api.timeout longer while the DCS is down (GET
// /cluster waits for Patroni's DCS client to give up).
v1::PatroniFacts GatherPatroniFacts(const PatroniConfig& config);

}  // namespace pghaul::agent
