#include "agent/pgbackrest_info.h"

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace pghaul::agent {
namespace {

using Json = nlohmann::json;

// An integer field as T. pgBackRest prints integers; a fraction or a value T cannot hold throws
// std::invalid_argument (nlohmann's own conversion of such a number is undefined behaviour).
template <typename T>
T GetInteger(const Json& value, const char* key) {
  if (value.is_number_unsigned()) {
    uint64_t number = value.get<uint64_t>();
    if (std::in_range<T>(number)) return static_cast<T>(number);
  } else if (value.is_number_integer()) {
    int64_t number = value.get<int64_t>();
    if (std::in_range<T>(number)) return static_cast<T>(number);
  } else if (!value.is_number_float()) {
    return value.get<T>();  // not a number: type_error
  }
  throw std::invalid_argument(absl::StrCat("field '", key, "' is not an integer in range"));
}

// A missing or null field reads as the default; a field of the wrong type throws
// nlohmann::json::type_error or std::invalid_argument, which ParsePgBackRestInfo turns into
// InvalidArgument.
template <typename T>
T Get(const Json& object, const char* key, T fallback) {
  if (!object.is_object()) return fallback;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    return GetInteger<T>(*it, key);
  } else {
    return it->get<T>();
  }
}

const Json& Child(const Json& object, const char* key) {
  static const Json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

BackupSetInfo ParseBackup(const Json& backup) {
  BackupSetInfo set;
  set.label = Get<std::string>(backup, "label", "");
  set.type = Get<std::string>(backup, "type", "");
  set.prior = Get<std::string>(backup, "prior", "");
  const Json& reference = Child(backup, "reference");
  if (reference.is_array()) {
    for (const Json& label : reference) set.reference.push_back(label.get<std::string>());
  }
  const Json& timestamp = Child(backup, "timestamp");
  set.timestamp_start = Get<int64_t>(timestamp, "start", 0);
  set.timestamp_stop = Get<int64_t>(timestamp, "stop", 0);
  const Json& info = Child(backup, "info");
  set.database_size = Get<uint64_t>(info, "size", 0);
  set.delta_size = Get<uint64_t>(info, "delta", 0);
  const Json& repository = Child(info, "repository");
  set.repository_size = Get<uint64_t>(repository, "size", 0);
  set.repository_delta = Get<uint64_t>(repository, "delta", 0);
  const Json& archive = Child(backup, "archive");
  set.archive_start = Get<std::string>(archive, "start", "");
  set.archive_stop = Get<std::string>(archive, "stop", "");
  const Json& lsn = Child(backup, "lsn");
  set.lsn_start = Get<std::string>(lsn, "start", "");
  set.lsn_stop = Get<std::string>(lsn, "stop", "");
  set.error = Get<bool>(backup, "error", false);
  set.pgbackrest_version = Get<std::string>(Child(backup, "backrest"), "version", "");
  return set;
}

StanzaInfo ParseStanza(const Json& stanza) {
  if (!stanza.is_object()) throw std::invalid_argument("a stanza entry is not a JSON object");
  StanzaInfo info;
  info.name = Get<std::string>(stanza, "name", "");
  const Json& status = Child(stanza, "status");
  if (!status.is_object() || !status.contains("code")) {
    throw std::invalid_argument(absl::StrCat("stanza '", info.name, "' has no status.code"));
  }
  info.status_code = GetInteger<int>(status.at("code"), "status.code");
  info.status_message = Get<std::string>(status, "message", "");
  info.backup_lock_held = Get<bool>(Child(Child(status, "lock"), "backup"), "held", false);
  info.cipher = Get<std::string>(stanza, "cipher", "");
  for (const Json& db : Child(stanza, "db")) {
    info.databases.push_back(DatabaseInfo{Get<int>(db, "id", 0), Get<uint64_t>(db, "system-id", 0),
                                          Get<std::string>(db, "version", "")});
  }
  for (const Json& archive : Child(stanza, "archive")) {
    info.archives.push_back(ArchiveInfo{Get<std::string>(archive, "id", ""),
                                        Get<std::string>(archive, "min", ""),
                                        Get<std::string>(archive, "max", "")});
  }
  for (const Json& backup : Child(stanza, "backup")) info.backups.push_back(ParseBackup(backup));
  for (const Json& repo : Child(stanza, "repo")) {
    const Json& repo_status = Child(repo, "status");
    info.repos.push_back(RepoStatus{Get<int>(repo, "key", 0), Get<int>(repo_status, "code", 0),
                                    Get<std::string>(repo_status, "message", "")});
  }
  return info;
}

}  // namespace

std::string DescribeStanzaStatusCode(int code) {
  switch (code) {
    case kStanzaStatusOk:
      return "ok";
    case kStanzaStatusMissingStanzaPath:
      return "missing stanza path";
    case kStanzaStatusNoValidBackups:
      return "no valid backups";
    case kStanzaStatusMissingStanzaData:
      return "missing stanza data";
    case kStanzaStatusDifferentAcrossRepos:
      return "different across repos";
    case kStanzaStatusDatabaseMismatch:
      return "database mismatch across repos";
    case kStanzaStatusBackupNotFound:
      return "requested backup not found";
    case kStanzaStatusOther:
      return "other error";
    default:
      return absl::StrCat("unknown status code ", code);
  }
}

int StanzaInfo::ValidBackupCount() const {
  int count = 0;
  for (const BackupSetInfo& set : backups) {
    if (!set.error) ++count;
  }
  return count;
}

const BackupSetInfo* StanzaInfo::LatestValidBackup() const {
  const BackupSetInfo* latest = nullptr;
  for (const BackupSetInfo& set : backups) {
    if (set.error) continue;
    if (latest == nullptr || set.timestamp_stop >= latest->timestamp_stop) latest = &set;
  }
  return latest;
}

std::string StanzaInfo::DescribeStatus() const {
  std::string text = absl::StrCat(
      "status ", status_code, " (",
      status_message.empty() ? DescribeStanzaStatusCode(status_code) : status_message, ")");
  std::vector<std::string> repo_errors;
  for (const RepoStatus& repo : repos) {
    if (repo.code != kStanzaStatusOk && repo.message != status_message) {
      repo_errors.push_back(absl::StrCat("repo", repo.key, ": ", repo.message));
    }
  }
  if (!repo_errors.empty()) absl::StrAppend(&text, ": ", absl::StrJoin(repo_errors, "; "));
  return text;
}

absl::StatusOr<std::vector<StanzaInfo>> ParsePgBackRestInfo(absl::string_view json) {
  Json parsed = Json::parse(json.begin(), json.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InvalidArgumentError("pgbackrest info output is not valid JSON");
  }
  if (!parsed.is_array()) {
    return absl::InvalidArgumentError("pgbackrest info output is not a JSON array of stanzas");
  }
  std::vector<StanzaInfo> stanzas;
  try {
    for (const Json& stanza : parsed) stanzas.push_back(ParseStanza(stanza));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("pgbackrest info output has an unexpected shape: ", e.what()));
  }
  return stanzas;
}

absl::StatusOr<StanzaInfo> ParseStanzaInfo(absl::string_view json, absl::string_view stanza) {
  absl::StatusOr<std::vector<StanzaInfo>> stanzas = ParsePgBackRestInfo(json);
  if (!stanzas.ok()) return stanzas.status();
  for (StanzaInfo& info : *stanzas) {
    if (info.name == stanza) return std::move(info);
  }
  return absl::NotFoundError(absl::StrCat("pgbackrest info output has no stanza '", stanza, "'"));
}

}  // namespace pghaul::agent
