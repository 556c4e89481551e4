#include "controller/access_policy.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/access_tokens.h"
#include "common/status_macros.h"
#include "common/tls_credentials.h"

namespace pghaul::controller {

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kReadOnly:
      return "read-only";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "read-only";
}

std::optional<Role> ParseRole(absl::string_view name) {
  for (Role role : {Role::kReadOnly, Role::kOperator, Role::kAdmin}) {
    if (name == RoleName(role)) return role;
  }
  return std::nullopt;
}

absl::string_view RoleConfigKey(Role role) {
  return role == Role::kReadOnly ? "read_only" : RoleName(role);
}

std::string Caller::Describe() const { return absl::StrCat(name, " (", RoleName(role), ")"); }

Role AccessPolicy::RoleOfUser(const std::string& user) const {
  auto it = config_.users.find(user);
  return it == config_.users.end() ? config_.default_role : it->second;
}

absl::StatusOr<Caller> AccessPolicy::Identify(const CertificateNames* names,
                                              absl::string_view authorization) const {
  std::optional<std::string> certificate_user;
  if (require_cli_certificates_) {
    if (names == nullptr) {
      return absl::PermissionDeniedError("this call needs a CLI certificate and came without one");
    }
    PGH_ASSIGN_OR_RETURN(certificate_user, CliUserOf(*names));
  }
  if (!authorization.empty()) {
    if (!absl::StartsWith(authorization, kBearerPrefix)) {
      return absl::UnauthenticatedError(
          "the call's authorization is not a bearer token (\"Bearer <token>\")");
    }
    absl::string_view token = authorization.substr(kBearerPrefix.size());
    if (absl::Status s = ValidateAccessToken(token); !s.ok()) {
      return absl::UnauthenticatedError(absl::StrCat("the token sent is malformed: ", s.message()));
    }
    const std::string digest = AccessTokenDigest(token);
    // Every entry is compared, so that the time taken does not say which one matched.
    const AccessToken* match = nullptr;
    for (const AccessToken& entry : config_.tokens) {
      if (DigestsEqual(digest, entry.digest) && match == nullptr) match = &entry;
    }
    if (match == nullptr) {
      return absl::UnauthenticatedError(
          "the token sent is not one of this controller's access.tokens (revoked, or meant for "
          "another controller?): check PGHAUL_TOKEN_FILE / PGHAUL_TOKEN, or drop the token to "
          "use the certificate's role");
    }
    return Caller{absl::StrCat("token:", match->name), match->role};
  }
  if (certificate_user.has_value()) {
    return Caller{absl::StrCat(kCliNamePrefix, *certificate_user), RoleOfUser(*certificate_user)};
  }
  return Caller{"anonymous", config_.default_role};
}

absl::Status AccessPolicy::Authorize(const Caller& caller, Role needed, absl::string_view what) {
  if (caller.role >= needed) return absl::OkStatus();
  std::string fix;
  if (absl::StartsWith(caller.name, kCliNamePrefix)) {
    fix = absl::StrCat("an admin can list ", caller.name.substr(kCliNamePrefix.size()),
                       " under access.", RoleConfigKey(needed), " in controller.yaml and restart the controller");
  } else if (absl::StartsWith(caller.name, "token:")) {
    fix = absl::StrCat("use a token made with --role ", RoleName(needed),
                       " (pghaul token create), or a CLI certificate with that role");
  } else {
    fix = absl::StrCat("this plaintext controller's access.default_role is ",
                       RoleName(caller.role), "; send a token (PGHAUL_TOKEN_FILE) with role ",
                       RoleName(needed));
  }
  return absl::PermissionDeniedError(absl::StrCat(caller.Describe(), " may not ", what, ": it needs the ",
                                                  RoleName(needed), " role; ", fix));
}

Role AccessPolicy::RoleToCancel(absl::string_view task_id) {
  const std::vector<absl::string_view> parts = absl::StrSplit(task_id, '.');
  for (size_t i = 1; i + 2 < parts.size(); ++i) {
    if (parts[i] != "cutover" && parts[i] != "finish") continue;
    uint32_t attempt = 0;
    if (absl::SimpleAtoi(parts[i + 1], &attempt)) return Role::kAdmin;
  }
  return Role::kOperator;
}

}  // namespace pghaul::controller
