#include "agent/patroni_rest.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/http_client.h"
#include "common/status_macros.h"
#include "common/time_proto.h"
#include "nlohmann/json.hpp"

namespace pghaul::agent {
namespace {

using Json = nlohmann::json;

// Patroni's JSON is small; anything much larger is not Patroni.
constexpr size_t kMaxResponseBytes = 256 * 1024;
constexpr size_t kMaxPasswordFileBytes = 4096;

absl::Status WrongType(absl::string_view key, absl::string_view expected) {
  return absl::DataLossError(absl::StrCat("Patroni's status: \"", key, "\" is not ", expected));
}

absl::Status ReadString(const Json& object, const char* key, std::string* out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return WrongType(key, "a string");
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status ReadBool(const Json& object, const char* key, bool* out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return WrongType(key, "a boolean");
  *out = it->get<bool>();
  return absl::OkStatus();
}

template <typename T>
absl::Status ReadInteger(const Json& object, const char* key, T* out) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return absl::OkStatus();
  if (it->is_number_unsigned()) {
    uint64_t value = it->get<uint64_t>();
    if (std::in_range<T>(value)) {
      *out = static_cast<T>(value);
      return absl::OkStatus();
    }
  } else if (it->is_number_integer()) {
    int64_t value = it->get<int64_t>();
    if (std::in_range<T>(value)) {
      *out = static_cast<T>(value);
      return absl::OkStatus();
    }
  }
  return WrongType(key, "an integer in range");
}

// The start of a response body, printable, for error messages.
std::string Excerpt(absl::string_view body) { return absl::CHexEscape(body.substr(0, 200)); }

}  // namespace

absl::StatusOr<PatroniStatus> ParsePatroniStatus(absl::string_view text) {
  Json json = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::DataLossError(
        absl::StrCat("Patroni's status is not a JSON object: \"", Excerpt(text), "\""));
  }
  PatroniStatus status;
  PGH_RETURN_IF_ERROR(ReadString(json, "state", &status.state));
  PGH_RETURN_IF_ERROR(ReadString(json, "role", &status.role));
  PGH_RETURN_IF_ERROR(ReadInteger(json, "timeline", &status.timeline));
  PGH_RETURN_IF_ERROR(ReadInteger(json, "server_version", &status.server_version));
  PGH_RETURN_IF_ERROR(ReadBool(json, "pause", &status.paused));
  PGH_RETURN_IF_ERROR(ReadBool(json, "pending_restart", &status.pending_restart));
  PGH_RETURN_IF_ERROR(ReadBool(json, "cluster_unlocked", &status.cluster_unlocked));
  std::string system_identifier;
  PGH_RETURN_IF_ERROR(ReadString(json, "database_system_identifier", &system_identifier));
  if (!system_identifier.empty() &&
      !absl::SimpleAtoi(system_identifier, &status.system_identifier)) {
    return WrongType("database_system_identifier", "a decimal 64-bit number");
  }
  PGH_RETURN_IF_ERROR(ReadInteger(json, "dcs_last_seen", &status.dcs_last_seen));
  auto patroni = json.find("patroni");
  if (patroni != json.end() && !patroni->is_null()) {
    if (!patroni->is_object()) return WrongType("patroni", "an object");
    PGH_RETURN_IF_ERROR(ReadString(*patroni, "version", &status.version));
    PGH_RETURN_IF_ERROR(ReadString(*patroni, "scope", &status.scope));
  }
  return status;
}

absl::StatusOr<std::string> PatroniRestClient::Call(absl::string_view method,
                                                    absl::string_view target,
                                                    absl::string_view body, int* status_code,
                                                    absl::Duration timeout) const {
  HttpRequest request;
  request.method = std::string(method);
  request.host = config_->rest_api_host;
  request.port = config_->rest_api_port;
  request.target = std::string(target);
  request.timeout = timeout > absl::ZeroDuration() ? timeout : config_->request_timeout;
  request.max_response_bytes = kMaxResponseBytes;
  request.headers.emplace_back("Accept", "application/json");
  if (!body.empty()) {
    request.body = std::string(body);
    request.headers.emplace_back("Content-Type", "application/json");
  }
  if (!config_->rest_api_username.empty()) {
    absl::StatusOr<std::string> password =
        ReadFile(config_->rest_api_password_file, kMaxPasswordFileBytes);
    if (!password.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot read patroni.rest_api.password_file: ", password.status().message()));
    }
    // One line; a trailing line break is not part of the password.
    std::string secret(absl::StripTrailingAsciiWhitespace(*password));
    request.headers.emplace_back(
        "Authorization", absl::StrCat("Basic ", absl::Base64Escape(absl::StrCat(
                                                    config_->rest_api_username, ":", secret))));
  }
  absl::StatusOr<HttpResponse> response = SendHttpRequest(request);
  if (!response.ok()) {
    return absl::Status(response.status().code(),
                        absl::StrCat("Patroni's REST API at ", config_->RestApiAddress(), ": ",
                                     response.status().message()));
  }
  *status_code = response->status_code;
  return std::move(response->body);
}

absl::StatusOr<PatroniStatus> PatroniRestClient::GetStatus() const {
  int code = 0;
  PGH_ASSIGN_OR_RETURN(std::string body, Call("GET", "/patroni", "", &code));
  if (code != 200) {
    return absl::FailedPreconditionError(absl::StrCat("GET /patroni on ", config_->RestApiAddress(),
                                                      " answered ", code, ": ", Excerpt(body)));
  }
  return ParsePatroniStatus(body);
}

absl::StatusOr<bool> PatroniRestClient::HoldsLeaderLock() const {
  int code = 0;
  PGH_ASSIGN_OR_RETURN(std::string body, Call("GET", "/leader", "", &code));
  if (code == 200) return true;
  if (code == 503) return false;
  return absl::FailedPreconditionError(absl::StrCat("GET /leader on ", config_->RestApiAddress(),
                                                    " answered ", code, ": ", Excerpt(body)));
}

absl::Status PatroniRestClient::CheckDcs() const {
  int code = 0;
  PGH_ASSIGN_OR_RETURN(std::string body, Call("GET", "/cluster", "", &code));
  if (code == 200) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("GET /cluster on ", config_->RestApiAddress(),
                                                    " answered ", code, ": ", Excerpt(body)));
}

absl::Status PatroniRestClient::SetPause(bool paused) const {
  return PatchConfig(paused ? R"({"pause":true})" : R"({"pause":null})");
}

absl::Status PatroniRestClient::PatchConfig(absl::string_view patch) const {
  int code = 0;
  PGH_ASSIGN_OR_RETURN(std::string body, Call("PATCH", "/config", patch, &code));
  if (code == 200) return absl::OkStatus();
  std::string hint;
  if (code == 401 || code == 403) {
    hint =
        " (check patroni.rest_api.username and password_file against Patroni's "
        "restapi.authentication and allowlist)";
  } else if (code == 503) {
    hint = " (Patroni has no dynamic configuration in the DCS yet)";
  }
  return absl::FailedPreconditionError(absl::StrCat("PATCH /config on ", config_->RestApiAddress(),
                                                    " answered ", code, hint, ": ", Excerpt(body)));
}

absl::Status PatroniRestClient::Restart(absl::Duration timeout) const {
  int code = 0;
  PGH_ASSIGN_OR_RETURN(std::string body, Call("POST", "/restart", "{}", &code, timeout));
  if (code == 200) return absl::OkStatus();
  if (code == 503 && absl::StrContains(body, "already in progress")) {
    return absl::UnavailableError(absl::StrCat("POST /restart on ", config_->RestApiAddress(),
                                               " answered 503: ", Excerpt(body)));
  }
  return absl::FailedPreconditionError(absl::StrCat("POST /restart on ", config_->RestApiAddress(),
                                                    " answered ", code, ": ", Excerpt(body)));
}

absl::Status PatroniRestClient::Reload() const {
  int code = 0;
  PGH_ASSIGN_OR_RETURN(std::string body, Call("POST", "/reload", "{}", &code));
  if (code == 200 || code == 202) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("POST /reload on ", config_->RestApiAddress(),
                                                    " answered ", code, ": ", Excerpt(body)));
}

v1::PatroniFacts GatherPatroniFacts(const PatroniConfig& config) {
  v1::PatroniFacts facts;
  facts.set_rest_api(config.RestApiAddress());
  facts.set_config_file(config.config_file);
  facts.set_dcs(config.dcs);
  absl::StatusOr<PatroniFileSettings> settings = ReadPatroniFileSettings(config.config_file);
  if (settings.ok()) {
    facts.set_config_read(true);
    facts.set_superuser(settings->superuser);
    facts.set_replication_user(settings->replication);
    facts.set_rewind_user(settings->rewind);
    for (const std::string& line : settings->pg_hba) facts.add_pg_hba(line);
  } else {
    facts.set_config_error(std::string(settings.status().message()));
  }
  PatroniRestClient client(&config);
  absl::StatusOr<PatroniStatus> status = client.GetStatus();
  if (!status.ok()) {
    facts.set_reachable(false);
    facts.set_error(std::string(status.status().message()));
    return facts;
  }
  facts.set_reachable(true);
  facts.set_version(status->version);
  facts.set_scope(status->scope);
  facts.set_state(status->state);
  facts.set_role(status->role);
  facts.set_timeline(status->timeline);
  facts.set_server_version(status->server_version);
  facts.set_paused(status->paused);
  facts.set_system_identifier(status->system_identifier);
  facts.set_cluster_unlocked(status->cluster_unlocked);
  facts.set_pending_restart(status->pending_restart);
  if (status->dcs_last_seen > 0) {
    *facts.mutable_dcs_last_seen() = ToProto(absl::FromUnixSeconds(status->dcs_last_seen));
  }
  absl::Status dcs = client.CheckDcs();
  facts.set_dcs_reachable(dcs.ok());
  if (!dcs.ok()) facts.set_dcs_error(std::string(dcs.message()));
  absl::StatusOr<bool> leader = client.HoldsLeaderLock();
  if (leader.ok()) {
    facts.set_leader(*leader);
  } else {
    facts.set_error(std::string(leader.status().message()));
  }
  return facts;
}

bool RestApiAnswers(const PatroniRestClient& client) {
  absl::StatusOr<PatroniStatus> status = client.GetStatus();
  return status.ok() ||
         !(absl::IsUnavailable(status.status()) || absl::IsDeadlineExceeded(status.status()));
}

}  // namespace pghaul::agent
