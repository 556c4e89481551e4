// Pure formatting of tasks (pghaul.v1.TaskInfo) for people: the task table, one task's details
// and the one-line status shown while waiting. No I/O: the caller passes the current time.
//
// Task messages, log lines and result values come from an agent's host and are untrusted: they
// are shown through Printable (agent_table.h), so they cannot forge lines or terminal escapes.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "pghaul/v1/migrations.pb.h"

namespace pghaul::cli {

// Widest MESSAGE cell of the task table, in characters; longer messages end in "...".
inline constexpr size_t kTaskMessageWidth = 60;

// A compact duration: "0s", "45s", "1m20s", "2h3m", "3d4h". Under a second (but not zero) reads
// "<1s"; negative durations read "0s".
std::string HumanDuration(absl::Duration duration);

// A transfer rate in binary units: "512 B/s", "1.5 MiB/s", "120 MiB/s" (no decimal from 10 up).
std::string HumanRate(double bytes_per_second);

// The progress of a running task, leaving out what the agent did not report: "45% 120 MiB/s ETA
// 1m20s", or with `with_bytes` "45% (1.8 GiB of 4.0 GiB) 120 MiB/s ETA 1m20s". "" when nothing
// is known.
std::string FormatProgress(const v1::Progress& progress, bool with_bytes = false);

// The table of `pghaul task list` and `pghaul agents show ID --tasks`: TASK, [AGENT,] OPERATION,
// STATE, PROGRESS, STARTED, DURATION, MESSAGE, in the order given (the controller's: newest
// first). STARTED is relative to `now`; DURATION runs until `now` for unfinished tasks; PROGRESS
// is shown for running tasks only; MESSAGE is the result's, cut to kTaskMessageWidth. Every line
// starts with `indent`. Empty for no tasks: the caller says so in its own words.
std::string FormatTaskTable(const google::protobuf::RepeatedPtrField<v1::TaskInfo>& tasks,
                            absl::Time now, bool show_agent, absl::string_view indent = "");

// Everything about one task as "Key: value" sections: Task, Result (when finished), Values,
// pgBackRest info, Facts (as the result has them), and Recent events as a table.
std::string FormatTaskDetails(const v1::TaskInfo& task, absl::Time now);

// One line for the terminal while waiting for a task, without newline: "task t1 (pgbackrest
// backup on db1): running 45% 120 MiB/s ETA 1m20s, 2m10s so far".
std::string FormatTaskStatusLine(const v1::TaskInfo& task, absl::Time now);

// How a finished task ended, for the one error line of `task submit --wait`: "task t1 (sql
// CURRENT_WAL_LSN) on agent db1 failed: <message>". Also for unfinished tasks ("... is still
// running").
std::string DescribeTaskEnd(const v1::TaskInfo& task);

// Whether the task has a result and it is SUCCEEDED.
bool TaskSucceeded(const v1::TaskInfo& task);

}  // namespace pghaul::cli
