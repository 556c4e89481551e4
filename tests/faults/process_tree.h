// The processes below a PID, read from /proc: how the suite finds a pgBackRest an agent runs, or
// a postmaster's children, without ever looking a process up by its name.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace pghaul::faults {

struct ProcessEntry {
  pid_t pid = 0;
  pid_t parent = 0;
  std::vector<std::string> argv;  // from /proc/<pid>/cmdline; empty for a zombie
};

// Every live descendant of `root` (children, their children, ...), parents before children.
// Processes that exit while /proc is read are left out.
std::vector<ProcessEntry> Descendants(pid_t root);

// Whether `pid` still exists and is not a zombie.
bool ProcessAlive(pid_t pid);

}  // namespace pghaul::faults
