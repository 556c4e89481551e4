// `pghaul task list|show|cancel|submit`: the controller's low-level task RPCs, for operators
// debugging a host and for tests. Migrations submit their own tasks; these commands let a person
// see them and run one typed operation by hand.
//
// Like the agent commands, each returns what to print or a Status for the one error line.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cli/command_output.h"
#include "cli/controller_client.h"
#include "cli/json_output.h"
#include "common/clock.h"
#include "pghaul/v1/agent_link.pb.h"

namespace pghaul::cli {

// How many of a task's last events `task show` and `task submit` print by default.
inline constexpr uint32_t kDefaultRecentEvents = 20;
// How long `task submit --wait` waits when --timeout is not given.
inline constexpr absl::Duration kDefaultWaitTimeout = absl::Hours(1);
// While waiting, how long the controller may stay unreachable before pghaul gives up (it may be
// restarting; the task goes on without it).
inline constexpr absl::Duration kPollFailureGrace = absl::Seconds(30);
// Polls start this often and slow down to kMaxPollInterval.
inline constexpr absl::Duration kMinPollInterval = absl::Milliseconds(200);
inline constexpr absl::Duration kMaxPollInterval = absl::Milliseconds(500);

// Lists the newest `limit` tasks of `agent_id` (every agent's when empty, with an AGENT column),
// newest first: the task table (task_table.h), or the ListTasksResponse as JSON. Errors:
// InvalidArgument for a malformed agent id; those of ControllerClient::ListTasks.
absl::StatusOr<std::string> RunListTasks(ControllerClient& client, absl::string_view agent_id,
                                         uint32_t limit, OutputFormat format, absl::Time now);

// Everything about one task with its last `recent_events` events, or the TaskInfo as JSON.
// Errors: InvalidArgument for a malformed id; NotFound ("no task 'x' is known ...") for an
// unknown one; those of ControllerClient::GetTask.
absl::StatusOr<std::string> RunShowTask(ControllerClient& client, absl::string_view task_id,
                                        uint32_t recent_events, OutputFormat format,
                                        absl::Time now);

// Asks for a task to be cancelled; says so (or that it had already finished), or prints the
// TaskInfo as JSON. Errors: as RunShowTask, and Unavailable when the agent is offline.
absl::StatusOr<std::string> RunCancelTask(ControllerClient& client, absl::string_view task_id,
                                          OutputFormat format, absl::Time now);

struct TaskSubmission {
  std::string agent_id;
  v1::Task task;        // as read by LoadTask (task_input.h)
  std::string task_id;  // --id; "" for the task's own, or a fresh random one
  bool wait = false;
  absl::Duration wait_timeout = kDefaultWaitTimeout;  // the whole wait, submission included
};

// What waiting needs from outside, injected so tests step a FakeClock instead of sleeping.
struct WaitEnvironment {
  const Clock* clock = Clock::Real();
  std::function<void(absl::Duration)> sleep;  // sleeps between polls
  // Where to draw the one-line status while waiting (a terminal), and its width; null: nowhere.
  std::ostream* status_line = nullptr;
  int status_columns = 80;
};

// Submits a task and prints the TaskInfo (details, or JSON). With `wait`, polls GetTask every
// 200-500 ms until the task ends, drawing its progress on `status_line`, then prints the final
// TaskInfo and exits 0 if the task succeeded, or 1 (kExitTaskFailed) with DescribeTaskEnd as the
// error line if it failed, was cancelled or was refused. A task still unfinished when
// `wait_timeout` runs out exits 75 (kExitTempFail): it goes on running.
// Errors: InvalidArgument for a malformed agent id or task id, or --id contradicting the task's
// own id; NotFound for an unknown agent; Unavailable/DeadlineExceeded when the controller is
// unreachable at submission, or for kPollFailureGrace while waiting; others as the client.
absl::StatusOr<CommandOutput> RunSubmitTask(ControllerClient& client, const TaskSubmission& request,
                                            OutputFormat format, const WaitEnvironment& env);

}  // namespace pghaul::cli
