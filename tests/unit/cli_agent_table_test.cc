#include <cstdint>
#include <limits>
#include <string>

#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "cli/agent_table.h"
#include "common/time_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

constexpr uint64_t kGiB = uint64_t{1} << 30;

v1::AgentInfo HealthySource() {
  v1::AgentInfo agent;
  agent.set_agent_id("legacy-db1");
  agent.set_online(true);
  agent.set_incarnation("5c3f0e1a");
  agent.set_peer("ipv4:10.0.0.5:51234");
  *agent.mutable_first_seen() = ToProto(kNow - absl::Hours(50));
  *agent.mutable_connected_since() = ToProto(kNow - absl::Minutes(90));
  *agent.mutable_last_seen() = ToProto(kNow - absl::Seconds(3));
  agent.set_reconnects(2);
  agent.set_restarts(1);
  agent.mutable_versions()->set_pghaul("0.1.0");
  agent.mutable_versions()->set_protocol(1);
  v1::HostFacts* facts = agent.mutable_facts();
  facts->set_hostname("legacy-db1.example.internal");
  facts->set_os("Debian GNU/Linux 12 (bookworm)");
  facts->set_kernel("6.1.0-18-amd64");
  facts->set_architecture("x86_64");
  facts->set_libc_version("2.36");
  facts->set_data_directory("/var/lib/postgresql/15/main");
  facts->set_data_dir_free_bytes(static_cast<uint64_t>(41.2 * kGiB));
  facts->set_data_dir_total_bytes(100 * kGiB);
  facts->set_pgbackrest_version("2.45");
  *facts->mutable_gathered_at() = ToProto(kNow - absl::Seconds(20));
  v1::PostgresFacts* postgres = facts->mutable_postgres();
  postgres->set_reachable(true);
  postgres->set_server_version_num(150018);
  postgres->set_server_version("15.18 (Debian 15.18-0+deb12u1)");
  postgres->set_system_identifier(7301234567890123456u);
  postgres->set_data_directory("/var/lib/postgresql/15/main");
  postgres->set_block_size(8192);
  postgres->set_wal_segment_size(16 << 20);
  postgres->set_data_checksums(true);
  postgres->set_encoding("UTF8");
  postgres->set_lc_collate("en_US.UTF-8");
  postgres->set_lc_ctype("en_US.UTF-8");
  postgres->set_archive_mode("on");
  postgres->set_archive_command("pgbackrest --stanza=main archive-push %p");
  postgres->set_current_user("postgres");
  postgres->set_is_superuser(true);
  v1::Extension* extension = postgres->add_extensions();
  extension->set_database("sales");
  extension->set_name("postgis");
  extension->set_version("3.3.2");
  extension = postgres->add_extensions();
  extension->set_database("postgres");
  extension->set_name("plpgsql");
  extension->set_version("1.0");
  v1::Tablespace* tablespace = postgres->add_tablespaces();
  tablespace->set_name("pg_default");
  tablespace = postgres->add_tablespaces();
  tablespace->set_name("fast");
  tablespace->set_location("/srv/fast");
  return agent;
}

// An agent that lost its link 5 minutes ago, on a host where PostgreSQL is stopped, pgBackRest is
// missing and the data directory cannot be inspected.
v1::AgentInfo OfflineTargetWithPostgresDown() {
  v1::AgentInfo agent;
  agent.set_agent_id("new-db2");
  agent.set_online(false);
  agent.set_offline_reason("missed 3 heartbeats");
  *agent.mutable_last_seen() = ToProto(kNow - absl::Minutes(5));
  v1::HostFacts* facts = agent.mutable_facts();
  facts->set_hostname("new-db2");
  facts->set_disk_error("statvfs(/var/lib/postgresql/15/main): Permission denied");
  facts->set_pgbackrest_error("/usr/bin/pgbackrest: No such file or directory");
  facts->mutable_postgres()->set_reachable(false);
  facts->mutable_postgres()->set_error(
      "connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed");
  return agent;
}

// An agent registered but whose Hello carried no facts.
v1::AgentInfo AgentWithoutFacts() {
  v1::AgentInfo agent;
  agent.set_agent_id("bare");
  agent.set_online(true);
  return agent;
}

TEST(AgentTableTest, ListsAgentsSortedByIdWithOfflineAndDownMarked) {
  v1::ListAgentsResponse response;
  *response.add_agents() = OfflineTargetWithPostgresDown();
  *response.add_agents() = HealthySource();
  *response.add_agents() = AgentWithoutFacts();

  EXPECT_EQ(FormatAgentTable(response, kNow),
            "ID           HOST                          STATE     LAST SEEN   POSTGRESQL   "
            "SYSTEM ID             PGBACKREST   FREE DISK\n"
            "bare         -                             online    never       -            "
            "-                     -            -\n"
            "legacy-db1   legacy-db1.example.internal   online    3s ago      15.18        "
            "7301234567890123456   2.45         41.2 GiB\n"
            "new-db2      new-db2                       offline   5m ago      down         "
            "-                     -            -\n");
}

TEST(AgentTableTest, EmptyRegistryPrintsOneLineHintInsteadOfAHeader) {
  std::string text = FormatAgentTable(v1::ListAgentsResponse(), kNow);
  EXPECT_THAT(text, HasSubstr("pghaul-agent"));
  EXPECT_THAT(text, Not(HasSubstr("HOST")));
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
}

TEST(AgentTableTest, HostileHostnameCannotAddLinesOrEscapeSequences) {
  v1::ListAgentsResponse response;
  v1::AgentInfo* agent = response.add_agents();
  agent->set_agent_id("evil");
  agent->mutable_facts()->set_hostname("db\n\x1b[2Jfake-row");
  std::string text = FormatAgentTable(response, kNow);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  EXPECT_THAT(text, Not(HasSubstr("\x1b")));
  EXPECT_THAT(text, HasSubstr("db\\n\\x1b[2Jfake-row"));
}

TEST(AgentDetailsTest, GroupsEveryFactUnderItsHeading) {
  std::string text = FormatAgentDetails(HealthySource(), kNow);
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  std::vector<std::string> headings;
  for (const std::string& line : lines) {
    if (!line.empty() && line[0] != ' ') headings.push_back(line);
  }
  EXPECT_THAT(headings,
              ElementsAre("Agent", "Host", "PostgreSQL", "Extensions (2)", "Tablespaces (2)"));
  EXPECT_THAT(text, HasSubstr("  ID:                legacy-db1\n"));
  EXPECT_THAT(text, HasSubstr("  State:             online\n"));
  EXPECT_THAT(text, HasSubstr("  Last seen:         2023-11-14 22:13:17 UTC (3s ago)\n"));
  EXPECT_THAT(text, HasSubstr("  Connected since:   2023-11-14 20:43:20 UTC (1h ago)\n"));
  EXPECT_THAT(text, HasSubstr("  pghaul version:    0.1.0 (protocol 1)\n"));
  EXPECT_THAT(text, HasSubstr("  Free disk:         41.2 GiB of 100.0 GiB (41% free)\n"));
  EXPECT_THAT(text, HasSubstr("  glibc:             2.36\n"));
  EXPECT_THAT(text, HasSubstr("  pgBackRest:        2.45\n"));
  EXPECT_THAT(text, HasSubstr("  Version:           15.18 (Debian 15.18-0+deb12u1)\n"));
  EXPECT_THAT(text, HasSubstr("  System identifier: 7301234567890123456\n"));
  EXPECT_THAT(text, HasSubstr("  WAL segment size:  16.0 MiB\n"));
  EXPECT_THAT(text, HasSubstr("  Data checksums:    on\n"));
  EXPECT_THAT(text, HasSubstr("  Archive command:   pgbackrest --stanza=main archive-push %p\n"));
  EXPECT_THAT(text, HasSubstr("  Connected as:      postgres (superuser)\n"));
  // Extensions sorted by database then name; the default tablespace has no location.
  EXPECT_THAT(text,
              HasSubstr("  postgres:          plpgsql 1.0\n  sales:             postgis 3.3.2\n"));
  EXPECT_THAT(text, HasSubstr("  pg_default:        (inside the data directory)\n"));
  EXPECT_THAT(text, HasSubstr("  fast:              /srv/fast\n"));
}

TEST(AgentDetailsTest, OfflineAgentWithPostgresDownSaysWhyInsteadOfShowingEmptyValues) {
  std::string text = FormatAgentDetails(OfflineTargetWithPostgresDown(), kNow);
  EXPECT_THAT(text, HasSubstr("State:          offline\n"));
  EXPECT_THAT(text, HasSubstr("Offline reason: missed 3 heartbeats\n"));
  EXPECT_THAT(text, HasSubstr("Last seen:      2023-11-14 22:08:20 UTC (5m ago)\n"));
  EXPECT_THAT(text, HasSubstr("Reachable:      no\n"));
  EXPECT_THAT(text, HasSubstr("Error:          connection to server on socket"));
  EXPECT_THAT(text, HasSubstr("Free disk:      unknown: statvfs("));
  EXPECT_THAT(text, HasSubstr("pgBackRest:     unavailable: /usr/bin/pgbackrest: No such file"));
  EXPECT_THAT(text, HasSubstr("Extensions\n  (unknown: PostgreSQL is not reachable)\n"));
  // Facts PostgreSQL would have supplied are left out rather than shown as 0 or "off".
  EXPECT_THAT(text, Not(HasSubstr("System identifier")));
  EXPECT_THAT(text, Not(HasSubstr("Data checksums")));
  EXPECT_THAT(text, Not(HasSubstr("Connected since")));
}

TEST(AgentDetailsTest, AgentWithoutFactsSaysSo) {
  std::string text = FormatAgentDetails(AgentWithoutFacts(), kNow);
  EXPECT_THAT(text, HasSubstr("Host\n  (the agent has not reported any facts yet)\n"));
  EXPECT_THAT(text, HasSubstr("PostgreSQL\n  (not reported)\n"));
  EXPECT_THAT(text, HasSubstr("Last seen:       never\n"));
}

TEST(HumanBytesTest, UsesBinaryUnitsWithOneDecimal) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1024), "1.0 KiB");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(16 << 20), "16.0 MiB");
  EXPECT_EQ(HumanBytes(static_cast<uint64_t>(41.2 * kGiB)), "41.2 GiB");
  EXPECT_EQ(HumanBytes(3 * (kGiB << 10)), "3.0 TiB");
  EXPECT_EQ(HumanBytes(std::numeric_limits<uint64_t>::max()), "16.0 EiB");
}

TEST(HumanBytesTest, MovesToTheNextUnitWhenRoundingReaches1024) {
  EXPECT_EQ(HumanBytes((1 << 20) - 1), "1.0 MiB");
  EXPECT_EQ(HumanBytes(kGiB - 1), "1.0 GiB");
}

TEST(HumanAgoTest, PicksTheLargestWholeUnit) {
  EXPECT_EQ(HumanAgo(absl::ZeroDuration()), "just now");
  EXPECT_EQ(HumanAgo(absl::Milliseconds(999)), "just now");
  EXPECT_EQ(HumanAgo(absl::Seconds(3)), "3s ago");
  EXPECT_EQ(HumanAgo(absl::Seconds(59)), "59s ago");
  EXPECT_EQ(HumanAgo(absl::Seconds(60)), "1m ago");
  EXPECT_EQ(HumanAgo(absl::Minutes(59) + absl::Seconds(59)), "59m ago");
  EXPECT_EQ(HumanAgo(absl::Hours(2)), "2h ago");
  EXPECT_EQ(HumanAgo(absl::Hours(72)), "3d ago");
}

TEST(HumanAgoTest, ControllerClockAheadOfOursReadsAsJustNow) {
  EXPECT_EQ(HumanAgo(absl::Seconds(-4)), "just now");
}

TEST(ShortPostgresVersionTest, TakesTheFirstWordOrFallsBackToTheNumber) {
  v1::PostgresFacts postgres;
  postgres.set_server_version("15.18 (Debian 15.18-0+deb12u1)");
  postgres.set_server_version_num(150018);
  EXPECT_EQ(ShortPostgresVersion(postgres), "15.18");
  postgres.clear_server_version();
  EXPECT_EQ(ShortPostgresVersion(postgres), "15.18");
  postgres.set_server_version_num(90624);
  EXPECT_EQ(ShortPostgresVersion(postgres), "9.6.24");
  postgres.clear_server_version_num();
  EXPECT_EQ(ShortPostgresVersion(postgres), "");
}

TEST(PrintableTest, EscapesControlCharactersAndKeepsUtf8) {
  EXPECT_EQ(Printable("a\tb\nc\rd\x1b\x7f"), "a\\tb\\nc\\rd\\x1b\\x7f");
  EXPECT_EQ(Printable("Zürich"), "Zürich");
}

}  // namespace
}  // namespace pghaul::cli
