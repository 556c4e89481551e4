// Who may do what on the controller's CLI service (docs/security.md, "Roles and tokens").
//
// A caller is named by its bearer token when it sends one, else by its CLI certificate
// ("cli:<name>"), else (a plaintext controller) it is anonymous. Its role comes from the `access`
// section of controller.yaml:
//
//   read-only  list and watch: agents, tasks, migrations, status; plan and phase dry runs
//   operator   also apply plans, run preflight, backup, restore and verify, cancel tasks
//   admin      also cutover (and `run` up to it), abort, and raw tasks (`pghaul task submit`)
//
// Without an `access` section every caller is admin (what pghaul did before roles existed); the
// controller warns about that at start-up.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tls_certificates.h"

namespace pghaul::controller {

// Ordered: each role may do what the ones before it may.
enum class Role { kReadOnly = 0, kOperator = 1, kAdmin = 2 };

absl::string_view RoleName(Role role);  // "read-only", "operator", "admin"
std::optional<Role> ParseRole(absl::string_view name);
// The key under `access` listing a role's users: "read_only", "operator", "admin".
absl::string_view RoleConfigKey(Role role);

struct AccessToken {
  std::string name;    // who holds it, for logs and `pghaul whoami`
  Role role = Role::kReadOnly;
  std::string digest;  // "sha256:<hex>" (common/access_tokens.h)
};

struct AccessConfig {
  bool configured = false;  // controller.yaml has an `access` section
  // The role of a caller named nowhere below: a CLI certificate not listed, or an anonymous
  // caller of a plaintext controller. Default admin without an `access` section, else read-only.
  Role default_role = Role::kAdmin;
  std::map<std::string, Role> users;  // CLI certificate name -> role
  std::vector<AccessToken> tokens;
};

struct Caller {
  std::string name;  // "cli:alice", "token:ci-bot" or "anonymous"
  Role role = Role::kReadOnly;
  std::string Describe() const;  // "cli:alice (admin)"
};

class AccessPolicy {
 public:
  // `require_cli_certificates`: the controller serves mutual TLS, so every caller must present
  // a CLI certificate, token or not.
  AccessPolicy(AccessConfig config, bool require_cli_certificates)
      : config_(std::move(config)), require_cli_certificates_(require_cli_certificates) {}

  // Names the caller of one call. `names`: the certificate it presented (null on a plaintext
  // link); `authorization`: the value of its "authorization" metadata, "" when absent. Errors:
  // PermissionDenied for a certificate that is not a CLI one; Unauthenticated for a malformed
  // or unknown token (the message never repeats the token).
  absl::StatusOr<Caller> Identify(const CertificateNames* names,
                                  absl::string_view authorization) const;

  // OK when `caller` may do `what` (e.g. "cutover"), which needs `needed`; else PermissionDenied
  // saying which role it needs and how to get it.
  static absl::Status Authorize(const Caller& caller, Role needed, absl::string_view what);

  // The role that may cancel task `task_id`: admin for a step of a migration's cutover or
  // finish (ids <migration>.cutover.<attempt>.<step>..., .finish. likewise: cancelling one fails
  // the cutover, which lifts the fence, and cutover itself is the admin's), operator for any
  // other task.
  static Role RoleToCancel(absl::string_view task_id);

  const AccessConfig& config() const { return config_; }

 private:
  Role RoleOfUser(const std::string& user) const;

  const AccessConfig config_;
  const bool require_cli_certificates_;
};

}  // namespace pghaul::controller
