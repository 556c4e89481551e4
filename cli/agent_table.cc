#include "cli/agent_table.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/text_layout.h"
#include "common/time_proto.h"

namespace pghaul::cli {
namespace {

constexpr absl::string_view kMissing = "-";

std::string OrMissing(absl::string_view text) {
  return text.empty() ? std::string(kMissing) : Printable(text);
}

std::string YesNo(bool value) { return value ? "yes" : "no"; }

std::string LastSeenCell(const v1::AgentInfo& agent, absl::Time now) {
  if (!agent.has_last_seen()) return "never";
  return HumanAgo(now - FromProto(agent.last_seen()));
}

std::string PostgresCell(const v1::AgentInfo& agent) {
  if (!agent.has_facts() || !agent.facts().has_postgres()) return std::string(kMissing);
  const v1::PostgresFacts& postgres = agent.facts().postgres();
  if (!postgres.reachable()) return "down";
  return OrMissing(ShortPostgresVersion(postgres));
}

std::string SystemIdCell(const v1::AgentInfo& agent) {
  if (!agent.has_facts() || !agent.facts().has_postgres()) return std::string(kMissing);
  const v1::PostgresFacts& postgres = agent.facts().postgres();
  if (!postgres.reachable() || postgres.system_identifier() == 0) return std::string(kMissing);
  return absl::StrCat(postgres.system_identifier());
}

std::string FreeDiskCell(const v1::AgentInfo& agent) {
  if (!agent.has_facts()) return std::string(kMissing);
  const v1::HostFacts& facts = agent.facts();
  // A zero total means the agent could not read the filesystem (disk_error says why).
  if (!facts.disk_error().empty() || facts.data_dir_total_bytes() == 0) {
    return std::string(kMissing);
  }
  return HumanBytes(facts.data_dir_free_bytes());
}

Section AgentSection(const v1::AgentInfo& agent, absl::Time now) {
  Section section{"Agent", {}};
  section.Add("ID", Printable(agent.agent_id()));
  section.Add("State", agent.online() ? "online" : "offline");
  if (!agent.online() && !agent.offline_reason().empty()) {
    section.Add("Offline reason", Printable(agent.offline_reason()));
  }
  if (agent.online()) {
    section.Add("Connected since",
                TimeAndAgo(agent.has_connected_since(), agent.connected_since(), now));
  }
  section.Add("Last seen", TimeAndAgo(agent.has_last_seen(), agent.last_seen(), now));
  section.Add("First seen", TimeAndAgo(agent.has_first_seen(), agent.first_seen(), now));
  section.Add("Peer", OrMissing(agent.peer()));
  section.Add("Incarnation", OrMissing(agent.incarnation()));
  section.Add("Reconnects", absl::StrCat(agent.reconnects()));
  section.Add("Restarts", absl::StrCat(agent.restarts()));
  if (agent.has_versions()) {
    section.Add("pghaul version", absl::StrCat(OrMissing(agent.versions().pghaul()), " (protocol ",
                                               agent.versions().protocol(), ")"));
  } else {
    section.Add("pghaul version", std::string(kMissing));
  }
  return section;
}

Section HostSection(const v1::AgentInfo& agent, absl::Time now) {
  Section section{"Host", {}};
  if (!agent.has_facts()) {
    section.Note("(the agent has not reported any facts yet)");
    return section;
  }
  const v1::HostFacts& facts = agent.facts();
  section.Add("Hostname", OrMissing(facts.hostname()));
  section.Add("OS", OrMissing(facts.os()));
  section.Add("Kernel", OrMissing(facts.kernel()));
  section.Add("Architecture", OrMissing(facts.architecture()));
  section.Add("glibc", OrMissing(facts.libc_version()));
  section.Add("Data directory", OrMissing(facts.data_directory()));
  if (!facts.disk_error().empty()) {
    section.Add("Free disk", absl::StrCat("unknown: ", Printable(facts.disk_error())));
  } else if (facts.data_dir_total_bytes() == 0) {
    section.Add("Free disk", std::string(kMissing));
  } else {
    double percent = 100.0 * static_cast<double>(facts.data_dir_free_bytes()) /
                     static_cast<double>(facts.data_dir_total_bytes());
    section.Add("Free disk",
                absl::StrFormat("%s of %s (%.0f%% free)", HumanBytes(facts.data_dir_free_bytes()),
                                HumanBytes(facts.data_dir_total_bytes()), percent));
  }
  if (!facts.pgbackrest_version().empty()) {
    section.Add("pgBackRest", Printable(facts.pgbackrest_version()));
  } else if (!facts.pgbackrest_error().empty()) {
    section.Add("pgBackRest", absl::StrCat("unavailable: ", Printable(facts.pgbackrest_error())));
  } else {
    section.Add("pgBackRest", std::string(kMissing));
  }
  section.Add("Facts gathered", TimeAndAgo(facts.has_gathered_at(), facts.gathered_at(), now));
  return section;
}

Section PostgresSection(const v1::AgentInfo& agent) {
  Section section{"PostgreSQL", {}};
  if (!agent.has_facts() || !agent.facts().has_postgres()) {
    section.Note("(not reported)");
    return section;
  }
  const v1::PostgresFacts& postgres = agent.facts().postgres();
  section.Add("Reachable", YesNo(postgres.reachable()));
  if (!postgres.error().empty()) section.Add("Error", Printable(postgres.error()));
  if (!postgres.reachable()) return section;
  section.Add("Version", OrMissing(postgres.server_version()));
  section.Add("Version number", absl::StrCat(postgres.server_version_num()));
  section.Add("System identifier", absl::StrCat(postgres.system_identifier()));
  section.Add("Data directory", OrMissing(postgres.data_directory()));
  section.Add("Block size", absl::StrCat(postgres.block_size()));
  section.Add("WAL segment size",
              postgres.wal_segment_size() > 0
                  ? HumanBytes(static_cast<uint64_t>(postgres.wal_segment_size()))
                  : std::string(kMissing));
  section.Add("Data checksums", postgres.data_checksums() ? "on" : "off");
  section.Add("Encoding", OrMissing(postgres.encoding()));
  section.Add("LC_COLLATE", OrMissing(postgres.lc_collate()));
  section.Add("LC_CTYPE", OrMissing(postgres.lc_ctype()));
  section.Add("Archive mode", OrMissing(postgres.archive_mode()));
  section.Add("Archive command", OrMissing(postgres.archive_command()));
  section.Add("In recovery", YesNo(postgres.in_recovery()));
  section.Add("Connected as", absl::StrCat(OrMissing(postgres.current_user()),
                                           postgres.is_superuser() ? " (superuser)" : ""));
  // Keys no longer than "System identifier", which sets the section's column width.
  if (!postgres.password_encryption().empty()) {
    section.Add("Password hashing", Printable(postgres.password_encryption()));
  }
  if (postgres.roles_listed()) {
    int md5 = 0;
    for (const v1::Role& role : postgres.roles()) md5 += role.can_login() && role.md5_password();
    std::string roles = absl::StrCat(postgres.roles_size(), postgres.roles_truncated() ? "+" : "");
    if (postgres.password_hashes_read()) {
      absl::StrAppend(&roles, " (", md5, " login with an md5 password)");
    }
    section.Add("Roles", roles);
  }
  return section;
}

// Only for agents configured for Patroni (facts.patroni set).
Section PatroniSection(const v1::PatroniFacts& patroni, absl::Time now) {
  Section section{"Patroni", {}};
  section.Add("REST API", OrMissing(patroni.rest_api()));
  section.Add("Config file", OrMissing(patroni.config_file()));
  section.Add("DCS", OrMissing(patroni.dcs()));
  section.Add("Reachable", YesNo(patroni.reachable()));
  if (!patroni.error().empty()) section.Add("Error", Printable(patroni.error()));
  // From the config file, whether or not Patroni runs.
  if (patroni.config_read()) {
    section.Add("Superuser", OrMissing(patroni.superuser()));
    section.Add("Replication user", OrMissing(patroni.replication_user()));
    section.Add("Rewind user", OrMissing(patroni.rewind_user()));
    section.Add("pg_hba lines", absl::StrCat(patroni.pg_hba_size()));
  } else if (!patroni.config_error().empty()) {
    section.Add("Config error", Printable(patroni.config_error()));
  }
  if (!patroni.reachable()) return section;
  section.Add("Version", OrMissing(patroni.version()));
  section.Add("Scope", OrMissing(patroni.scope()));
  section.Add("State", OrMissing(patroni.state()));
  section.Add("Role", absl::StrCat(OrMissing(patroni.role()),
                                   patroni.leader() ? " (holds the leader lock)" : ""));
  section.Add("Timeline",
              patroni.timeline() > 0 ? absl::StrCat(patroni.timeline()) : std::string(kMissing));
  section.Add("System identifier", patroni.system_identifier() > 0
                                       ? absl::StrCat(patroni.system_identifier())
                                       : std::string(kMissing));
  section.Add("Paused", YesNo(patroni.paused()));
  if (patroni.pending_restart()) section.Add("Pending restart", "yes");
  section.Add("DCS reachable", patroni.dcs_reachable() ? "yes"
                               : patroni.dcs_error().empty()
                                   ? std::string(kMissing)
                                   : absl::StrCat("no: ", Printable(patroni.dcs_error())));
  if (patroni.has_dcs_last_seen()) {
    section.Add("DCS last seen", HumanAgo(now - FromProto(patroni.dcs_last_seen())));
  }
  return section;
}

bool PostgresReachable(const v1::AgentInfo& agent) {
  return agent.has_facts() && agent.facts().has_postgres() && agent.facts().postgres().reachable();
}

Section ExtensionsSection(const v1::AgentInfo& agent) {
  if (!PostgresReachable(agent))
    return Section{"Extensions", {{"", "(unknown: PostgreSQL is not reachable)"}}};
  std::vector<const v1::Extension*> extensions;
  for (const v1::Extension& extension : agent.facts().postgres().extensions()) {
    extensions.push_back(&extension);
  }
  std::sort(extensions.begin(), extensions.end(), [](const auto* a, const auto* b) {
    return std::tie(a->database(), a->name()) < std::tie(b->database(), b->name());
  });
  Section section{absl::StrCat("Extensions (", extensions.size(), ")"), {}};
  if (extensions.empty()) section.Note("(none)");
  for (const v1::Extension* extension : extensions) {
    section.Add(Printable(extension->database()),
                absl::StrCat(Printable(extension->name()), " ", OrMissing(extension->version())));
  }
  return section;
}

Section TablespacesSection(const v1::AgentInfo& agent) {
  if (!PostgresReachable(agent)) {
    return Section{"Tablespaces", {{"", "(unknown: PostgreSQL is not reachable)"}}};
  }
  const auto& tablespaces = agent.facts().postgres().tablespaces();
  Section section{absl::StrCat("Tablespaces (", tablespaces.size(), ")"), {}};
  if (tablespaces.empty()) section.Note("(none)");
  for (const v1::Tablespace& tablespace : tablespaces) {
    section.Add(Printable(tablespace.name()), tablespace.location().empty()
                                                  ? "(inside the data directory)"
                                                  : Printable(tablespace.location()));
  }
  return section;
}

}  // namespace

std::string FormatAgentTable(const v1::ListAgentsResponse& response, absl::Time now) {
  if (response.agents().empty()) {
    return "No agents are registered with this controller. Start pghaul-agent on each database "
           "host with controller.address pointing here (see deploy/README.md).\n";
  }
  std::vector<const v1::AgentInfo*> agents;
  for (const v1::AgentInfo& agent : response.agents()) agents.push_back(&agent);
  std::sort(agents.begin(), agents.end(),
            [](const auto* a, const auto* b) { return a->agent_id() < b->agent_id(); });

  std::vector<std::vector<std::string>> rows;
  rows.push_back(
      {"ID", "HOST", "STATE", "LAST SEEN", "POSTGRESQL", "SYSTEM ID", "PGBACKREST", "FREE DISK"});
  for (const v1::AgentInfo* agent : agents) {
    rows.push_back({
        OrMissing(agent->agent_id()),
        OrMissing(agent->facts().hostname()),
        agent->online() ? "online" : "offline",
        LastSeenCell(*agent, now),
        PostgresCell(*agent),
        SystemIdCell(*agent),
        OrMissing(agent->facts().pgbackrest_version()),
        FreeDiskCell(*agent),
    });
  }
  return RenderColumns(rows);
}

std::string FormatAgentDetails(const v1::AgentInfo& agent, absl::Time now) {
  std::vector<Section> sections = {AgentSection(agent, now), HostSection(agent, now),
                                   PostgresSection(agent)};
  if (agent.facts().has_patroni()) sections.push_back(PatroniSection(agent.facts().patroni(), now));
  sections.push_back(ExtensionsSection(agent));
  sections.push_back(TablespacesSection(agent));
  return RenderSections(sections);
}

std::string FormatUtcTime(absl::Time time) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", time, absl::UTCTimeZone());
}

std::string TimeAndAgo(bool present, const google::protobuf::Timestamp& timestamp, absl::Time now) {
  if (!present) return "never";
  absl::Time time = FromProto(timestamp);
  return absl::StrCat(FormatUtcTime(time), " (", HumanAgo(now - time), ")");
}

std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  constexpr size_t kUnitCount = sizeof(kUnits) / sizeof(kUnits[0]);
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < kUnitCount) {
    value /= 1024.0;
    ++unit;
  }
  // 1023.96 KiB would print as "1024.0 KiB": move up a unit when rounding reaches 1024.
  if (std::round(value * 10.0) / 10.0 >= 1024.0 && unit + 1 < kUnitCount) {
    value /= 1024.0;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", value, kUnits[unit]);
}

std::string HumanAgo(absl::Duration elapsed) {
  if (elapsed < absl::Seconds(1)) return "just now";
  if (elapsed < absl::Minutes(1)) return absl::StrCat(absl::ToInt64Seconds(elapsed), "s ago");
  if (elapsed < absl::Hours(1)) return absl::StrCat(absl::ToInt64Minutes(elapsed), "m ago");
  if (elapsed < absl::Hours(24)) return absl::StrCat(absl::ToInt64Hours(elapsed), "h ago");
  return absl::StrCat(absl::ToInt64Hours(elapsed) / 24, "d ago");
}

std::string ShortPostgresVersion(const v1::PostgresFacts& postgres) {
  absl::string_view version = absl::StripAsciiWhitespace(postgres.server_version());
  if (!version.empty()) return Printable(version.substr(0, version.find(' ')));
  int num = postgres.server_version_num();
  if (num <= 0) return "";
  // Since PostgreSQL 10 the number is major * 10000 + minor; before, major.minor * 100 + patch.
  if (num >= 100000) return absl::StrCat(num / 10000, ".", num % 10000);
  return absl::StrCat(num / 10000, ".", (num / 100) % 100, ".", num % 100);
}

std::string Printable(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      out += absl::StrFormat("\\x%02x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace pghaul::cli
