#include "tests/faults/process_tree.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace pghaul::faults {
namespace {

// The parent PID and state from /proc/<pid>/stat: "pid (comm) state ppid ...", where comm may
// hold spaces and parentheses, so the fields are counted from the last ')'.
bool ReadStat(pid_t pid, pid_t* parent, char* state) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return false;
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  int ppid = 0;
  if (!(rest >> *state >> ppid)) return false;
  *parent = ppid;
  return true;
}

std::vector<std::string> ReadCmdline(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/cmdline"), std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv = absl::StrSplit(raw, '\0', absl::SkipEmpty());
  return argv;
}

}  // namespace

bool ProcessAlive(pid_t pid) {
  pid_t parent = 0;
  char state = 0;
  return ReadStat(pid, &parent, &state) && state != 'Z' && state != 'X';
}

std::vector<ProcessEntry> Descendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/proc", error);
       it != std::filesystem::directory_iterator(); it.increment(error)) {
    if (error) break;
    int pid = 0;
    if (!absl::SimpleAtoi(it->path().filename().string(), &pid)) continue;
    pid_t parent = 0;
    char state = 0;
    if (!ReadStat(pid, &parent, &state) || state == 'Z' || state == 'X') continue;
    children.emplace(parent, pid);
  }
  std::vector<ProcessEntry> found;
  std::vector<pid_t> frontier = {root};
  while (!frontier.empty()) {
    std::vector<pid_t> next;
    for (pid_t parent : frontier) {
      auto [begin, end] = children.equal_range(parent);
      for (auto it = begin; it != end; ++it) {
        found.push_back({it->second, parent, ReadCmdline(it->second)});
        next.push_back(it->second);
      }
    }
    frontier = std::move(next);
  }
  return found;
}

}  // namespace pghaul::faults
