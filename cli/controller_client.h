// The CLI's connection to the controller's pghaul.v1.Migrations service.
//
// Each call carries a deadline (the --timeout flag) and fails fast when the controller cannot be
// reached, rather than waiting for it to come up (gRPC's wait_for_ready stays off). gRPC errors
// become absl::Status with the same code and a message that says what to do:
//
//   Unavailable / DeadlineExceeded  the controller could not be reached at all ("cannot reach the
//                                   controller at ADDR (REASON): is pghaul-controller running ...")
//                                   or, once connected, did not answer in time / said it is
//                                   unavailable
//   Unimplemented                   the server at ADDR does not offer this method: not a
//                                   pghaul-controller, or an incompatible version
//   anything else                   the controller's own status, code and message unchanged
//
//   PermissionDenied                the controller refused the caller's certificate (it is not a
//                                   CLI certificate, "cli:<name>") or its role is too low for the
//                                   call (controller/access_policy.h)
//   Unauthenticated                 the token sent is unknown to the controller
//
// With TLS credentials (common/tls_credentials.h) the link is mutual TLS 1.3; without, plaintext.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/status.h"
#include "pghaul/v1/migrations.grpc.pb.h"

namespace pghaul::cli {

inline constexpr absl::string_view kDefaultControllerAddress = "127.0.0.1:7400";
inline constexpr absl::Duration kDefaultCallTimeout = absl::Seconds(10);

class ControllerClient {
 public:
  // Opens a plaintext channel to `address` (host:port, or any gRPC target such as
  // dns:///name:port). Connecting happens lazily, on the first call.
  ControllerClient(std::string address, absl::Duration timeout);
  // The same over `credentials` (null: plaintext). `tls_server_name`, when not empty, is the name
  // the controller's certificate must hold instead of the host of `address`.
  ControllerClient(std::string address, absl::Duration timeout,
                   std::shared_ptr<grpc::ChannelCredentials> credentials,
                   const std::string& tls_server_name = "");

  ControllerClient(const ControllerClient&) = delete;
  ControllerClient& operator=(const ControllerClient&) = delete;

  // Every agent the controller knows, online or not, in the controller's order.
  absl::StatusOr<v1::ListAgentsResponse> ListAgents();

  // One agent. NotFound (from the controller) when no agent with that id ever registered.
  absl::StatusOr<v1::AgentInfo> GetAgent(absl::string_view agent_id);

  // Journals `task` for `agent_id` and sends it (now, or when the agent connects). The
  // controller's errors: NotFound for an agent that never registered, InvalidArgument for a
  // malformed task or id, AlreadyExists when the task id belongs to another agent's task. A
  // task id already submitted for this agent returns that task: submitting is idempotent. When
  // a connected controller does not answer in time (DeadlineExceeded), the task may have been
  // submitted, and the message says how to find out.
  absl::StatusOr<v1::TaskInfo> SubmitTask(absl::string_view agent_id, const v1::Task& task);

  // One task with up to `recent_events` of its last events (0: the controller's default, 20).
  // NotFound for an unknown task id.
  absl::StatusOr<v1::TaskInfo> GetTask(absl::string_view task_id, uint32_t recent_events = 0);

  // The newest `limit` tasks (0: the controller's default, 50), of `agent_id` or of every
  // agent when it is empty, newest first.
  absl::StatusOr<v1::ListTasksResponse> ListTasks(absl::string_view agent_id, uint32_t limit);

  // Asks the task's agent to cancel it and returns the task as it is now: the cancel takes
  // effect when the agent reports the task ended. NotFound for an unknown task id; Unavailable
  // when the controller cannot pass the cancel on (the agent is offline).
  absl::StatusOr<v1::TaskInfo> CancelTask(absl::string_view task_id);

  // Migrations (docs/cli.md). Each returns the controller's status unchanged but for the
  // connection errors described above.

  // Validates a plan and stores it as a migration (with dry_run, only validates). The controller's
  // errors: InvalidArgument listing every problem of the plan (one per line); AlreadyExists for a
  // migration of that name without `replace`; FailedPrecondition for `replace` of a migration
  // that has started a phase.
  absl::StatusOr<v1::MigrationInfo> ApplyPlan(const v1::ApplyPlanRequest& request);

  // Every migration the controller has stored.
  absl::StatusOr<v1::ListMigrationsResponse> ListMigrations();

  // One migration with its events of sequence number above `events_after`, at most `max_events`
  // of them, the newest (0: the controller's default, 50). NotFound for an unknown id.
  absl::StatusOr<v1::MigrationInfo> GetMigration(absl::string_view migration_id,
                                                 uint64_t events_after = 0,
                                                 uint32_t max_events = 0);

  // Starts phases in the background (or, with dry_run, lists the tasks they would send). The
  // controller's errors: NotFound for an unknown id; InvalidArgument for a bad field;
  // FailedPrecondition when the migration is busy, aborted, or an earlier phase is missing.
  absl::StatusOr<v1::StartPhaseResponse> StartPhase(const v1::StartPhaseRequest& request);

  // Asks the controller to abort a migration; returns it as it is now (usually "aborting").
  // NotFound for an unknown id; FailedPrecondition once cutover has promoted the target.
  absl::StatusOr<v1::MigrationInfo> AbortMigration(absl::string_view migration_id);

  // Who the controller takes this client for, and its role.
  absl::StatusOr<v1::WhoAmIResponse> WhoAmI();

  // Sends `token` with every call from now on ("authorization: Bearer <token>"); "" sends none.
  void set_token(std::string token) { token_ = std::move(token); }

  const std::string& address() const { return address_; }
  absl::Duration timeout() const { return timeout_; }
  // The deadline of the calls made from now on (`task submit --wait` shortens it near its end).
  void set_timeout(absl::Duration timeout) { timeout_ = timeout; }

 private:
  // Sets the call's deadline and, with a token, its authorization.
  void PrepareContext(grpc::ClientContext* context) const;
  // Converts a failed call of `method` into an absl::Status worded for the person at the
  // terminal (see the table above).
  absl::Status CallError(const grpc::Status& status, absl::string_view method);

  std::string address_;
  absl::Duration timeout_;
  bool tls_ = false;
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Migrations::Stub> stub_;
};

// The short reason inside a gRPC connection error, e.g. "connection refused" from "failed to
// connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7400: Failed to connect to remote
// host: Connection refused". Falls back to the whole message when no known reason is found.
std::string ConnectFailureReason(const grpc::Status& status, absl::Duration timeout);

// A sentence to add to a connection failure that may be a TLS mismatch (`tls`: this client used
// TLS), or "" when the error does not look like one.
std::string TlsHint(const grpc::Status& status, bool tls);

}  // namespace pghaul::cli
