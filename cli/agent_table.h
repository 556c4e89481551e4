// Pure formatting of what the controller says about its agents, for people. No I/O, no gRPC: the
// caller passes the current time, so the output is a function of its arguments and is unit-tested.
//
// Every string that came from an agent's host (hostnames, paths, archive_command, error messages)
// is untrusted: control characters are escaped so a hostile host cannot rewrite the operator's
// terminal or forge extra lines.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pghaul/v1/migrations.pb.h"

namespace pghaul::cli {

// The `pghaul agents` table: ID, HOST, STATE, LAST SEEN, POSTGRESQL, SYSTEM ID, PGBACKREST,
// FREE DISK, one agent per line sorted by id, columns padded to line up. "-" marks a value the
// agent did not report. An empty registry gives a one-line hint instead of an empty table.
std::string FormatAgentTable(const v1::ListAgentsResponse& response, absl::Time now);

// Every fact of one agent as "Key: value" lines under the headings Agent, Host, PostgreSQL,
// Extensions and Tablespaces.
std::string FormatAgentDetails(const v1::AgentInfo& agent, absl::Time now);

// A byte count in binary units with one decimal: "512 B", "1.0 KiB", "41.2 GiB".
std::string HumanBytes(uint64_t bytes);

// How long ago something happened: "just now", "3s ago", "5m ago", "2h ago", "3d ago". Negative
// durations (the controller's clock ahead of ours) read as "just now".
std::string HumanAgo(absl::Duration elapsed);

// "2023-11-14 22:13:20 UTC".
std::string FormatUtcTime(absl::Time time);

// "2023-11-14 22:13:17 UTC (3s ago)", or "never" when `present` is false (an unset timestamp).
std::string TimeAndAgo(bool present, const google::protobuf::Timestamp& timestamp, absl::Time now);

// The short form of a PostgreSQL version: "15.18" from "15.18 (Debian 15.18-0+deb12u1)", or
// from server_version_num 150018 when the string is empty. Empty when both are.
std::string ShortPostgresVersion(const v1::PostgresFacts& postgres);

// `text` with control characters escaped (\n, \t, \xNN); other bytes, UTF-8 included, unchanged.
std::string Printable(absl::string_view text);

}  // namespace pghaul::cli
