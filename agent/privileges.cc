#include "agent/privileges.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace pghaul::agent {
namespace {

// The passwd entry of `name` or `uid`, with its own buffer.
struct Account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
};

absl::StatusOr<Account> LookUp(const std::string* name, uid_t uid) {
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  int rc = name != nullptr
               ? getpwnam_r(name->c_str(), &entry, buffer.data(), buffer.size(), &found)
               : getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("looking up the OS user: ", strerror(rc)));
  }
  if (found == nullptr) {
    return absl::NotFoundError(
        name != nullptr
            ? absl::StrCat("run_as: no OS user '", *name,
                           "' on this host; name the database's OS user (e.g. postgres)")
            : absl::StrCat("no OS user has uid ", uid));
  }
  return Account{entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir};
}

}  // namespace

absl::StatusOr<PrivilegeAction> DecidePrivileges(uid_t euid, const std::string& current_user,
                                                 const std::string& run_as) {
  if (euid == 0) {
    if (run_as.empty()) {
      return absl::FailedPreconditionError(
          "refusing to run as root: the agent runs pgBackRest, SQL and pg_ctl for the "
          "controller, which must not get root on this host. Start it as the database's OS user "
          "(systemd: User=postgres), or set 'run_as: postgres' in the config so that it drops "
          "to that user at start");
    }
    if (run_as == "root") {
      return absl::FailedPreconditionError(
          "run_as: root is refused: name the database's OS user (e.g. postgres)");
    }
    return PrivilegeAction::kDrop;
  }
  if (!run_as.empty() && run_as != current_user) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run_as: '", run_as, "', but the agent was started as '",
        current_user.empty() ? absl::StrCat("uid ", euid) : current_user,
        "' and only root can switch users: start it as '", run_as,
        "' or remove run_as from the config"));
  }
  return PrivilegeAction::kKeep;
}

absl::Status ApplyPrivileges(const std::string& run_as) {
  const uid_t euid = geteuid();
  std::string current;
  if (absl::StatusOr<Account> me = LookUp(nullptr, euid); me.ok()) current = me->name;
  PGH_ASSIGN_OR_RETURN(PrivilegeAction action, DecidePrivileges(euid, current, run_as));
  if (action == PrivilegeAction::kKeep) return absl::OkStatus();

  PGH_ASSIGN_OR_RETURN(Account account, LookUp(&run_as, 0));
  if (account.uid == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("run_as: '", run_as, "' has uid 0, which is root: name an unprivileged user"));
  }
  auto failed = [&](const char* call) {
    return absl::InternalError(absl::StrCat("dropping privileges to '", run_as, "': ", call,
                                            " failed: ", strerror(errno)));
  };
  if (initgroups(account.name.c_str(), account.gid) != 0) return failed("initgroups");
  if (setgid(account.gid) != 0) return failed("setgid");
  if (setuid(account.uid) != 0) return failed("setuid");
  if (setuid(0) == 0 || geteuid() == 0) {
    return absl::InternalError(
        absl::StrCat("dropping privileges to '", run_as, "': root could be regained"));
  }
  setenv("HOME", account.home.c_str(), 1);
  setenv("USER", account.name.c_str(), 1);
  setenv("LOGNAME", account.name.c_str(), 1);
  return absl::OkStatus();
}

}  // namespace pghaul::agent
