#include "agent/pgbackrest_progress.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace pghaul::agent {
namespace {

// What follows "DETAIL: " on a per-file line. 2.45 logs these at detail level; older releases
// used info, which costs nothing to accept too.
constexpr absl::string_view kFileLinePrefixes[] = {
    "backup file ",
    "match file from prior backup ",
    "checksum resumed file ",
    "restore file ",
};

// 2^63 as a double: larger values do not convert to int64_t, nor sums of two to uint64_t.
constexpr double kTwoToThe63 = 9223372036854775808.0;

// `value` rounded, saturated to [0, max]: converting a double out of range is undefined.
template <typename T>
T RoundSaturated(double value) {
  const double rounded = std::round(value);
  if (!(rounded > 0)) return 0;
  if (rounded >= kTwoToThe63) return std::numeric_limits<T>::max();
  return static_cast<T>(rounded);
}

std::optional<double> ParsePercent(absl::string_view text) {
  if (!absl::ConsumeSuffix(&text, "%")) return std::nullopt;
  double value = 0;
  if (text.empty() || !absl::SimpleAtod(text, &value) || !(value >= 0 && value <= 100)) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::optional<uint64_t> ParseSizeText(absl::string_view text) {
  struct Unit {
    absl::string_view suffix;
    double factor;
  };
  // Longest suffixes first: "KB" must not be read as "B".
  static constexpr Unit kUnits[] = {
      {"PB", 1125899906842624.0}, {"TB", 1099511627776.0}, {"GB", 1073741824.0},
      {"MB", 1048576.0},          {"KB", 1024.0},          {"B", 1.0},
  };
  for (const Unit& unit : kUnits) {
    absl::string_view number = text;
    if (!absl::ConsumeSuffix(&number, unit.suffix)) continue;
    if (number.empty()) return std::nullopt;
    for (char c : number) {
      if (!absl::ascii_isdigit(c) && c != '.') return std::nullopt;
    }
    double value = 0;
    if (!absl::SimpleAtod(number, &value) || value < 0) return std::nullopt;
    // 8 EiB and more is no file's size, and would not fit the conversion.
    const double bytes = std::round(value * unit.factor);
    if (!(bytes < kTwoToThe63)) return std::nullopt;
    return static_cast<uint64_t>(bytes);
  }
  return std::nullopt;
}

std::optional<FileProgress> ParseFileProgressLine(absl::string_view line) {
  size_t level = line.find("DETAIL: ");
  size_t skip = 8;
  if (level == absl::string_view::npos) {
    level = line.find("INFO: ");
    skip = 6;
  }
  if (level == absl::string_view::npos) return std::nullopt;
  absl::string_view message = line.substr(level + skip);
  bool known = false;
  for (absl::string_view prefix : kFileLinePrefixes) {
    if (absl::StartsWith(message, prefix)) known = true;
  }
  if (!known) return std::nullopt;

  // The last "(..., size, pct%)" group; the path before it may itself hold parentheses.
  size_t close = message.rfind("%)");
  if (close == absl::string_view::npos) return std::nullopt;
  size_t open = message.rfind('(', close);
  if (open == absl::string_view::npos) return std::nullopt;
  std::vector<absl::string_view> parts =
      absl::StrSplit(message.substr(open + 1, close + 1 - (open + 1)), ", ");
  if (parts.size() < 2) return std::nullopt;
  std::optional<double> percent = ParsePercent(parts.back());
  std::optional<uint64_t> bytes = ParseSizeText(parts[parts.size() - 2]);
  if (!percent.has_value() || !bytes.has_value()) return std::nullopt;
  return FileProgress{*percent, *bytes};
}

std::optional<LockFileProgress> ParseBackupLockFile(absl::string_view contents) {
  nlohmann::json parsed = nlohmann::json::parse(contents.begin(), contents.end(),
                                                /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) return std::nullopt;
  LockFileProgress progress;
  auto exec_id = parsed.find("execId");
  if (exec_id == parsed.end() || !exec_id->is_string()) return std::nullopt;
  progress.exec_id = exec_id->get<std::string>();
  auto pct = parsed.find("pctCplt");
  if (pct != parsed.end()) {
    if (!pct->is_number()) return std::nullopt;
    double value = pct->get<double>() / 100.0;
    if (!(value >= 0 && value <= 100)) return std::nullopt;
    progress.percent = value;
  }
  return progress;
}

std::optional<std::string> ParseExecIdFromBeginLine(absl::string_view line) {
  if (!absl::StrContains(line, " command begin ")) return std::nullopt;
  constexpr absl::string_view kOption = "--exec-id=";
  size_t at = line.find(kOption);
  if (at == absl::string_view::npos) return std::nullopt;
  absl::string_view rest = line.substr(at + kOption.size());
  absl::string_view id = rest.substr(0, rest.find(' '));
  if (id.empty()) return std::nullopt;
  return std::string(id);
}

ProgressTracker::ProgressTracker(Clock* clock, Emit emit, absl::Duration min_interval)
    : clock_(clock), emit_(std::move(emit)), min_interval_(min_interval) {
  absl::MutexLock lock(&mu_);
  first_time_ = clock_->Now();
}

void ProgressTracker::AddFile(const FileProgress& file) {
  absl::MutexLock lock(&mu_);
  percent_of_bytes_ = std::max(percent_of_bytes_, file.percent);
  Record(file.percent, file.file_bytes);
  MaybeEmit(/*force=*/false);
}

void ProgressTracker::AddPercent(double percent) {
  absl::MutexLock lock(&mu_);
  Record(percent, 0);
  MaybeEmit(/*force=*/false);
}

void ProgressTracker::Complete() {
  absl::MutexLock lock(&mu_);
  Record(100, 0);
  MaybeEmit(/*force=*/true);
}

void ProgressTracker::Tick() {
  absl::MutexLock lock(&mu_);
  MaybeEmit(/*force=*/false);
}

void ProgressTracker::Flush() {
  absl::MutexLock lock(&mu_);
  MaybeEmit(/*force=*/true);
}

v1::Progress ProgressTracker::Current() const {
  absl::MutexLock lock(&mu_);
  return Build(clock_->Now());
}

void ProgressTracker::Record(double percent, uint64_t added_bytes) {
  percent = std::clamp(percent, 0.0, 100.0);
  if (!started_ || percent > percent_ || added_bytes > 0) pending_ = true;
  started_ = true;
  percent_ = std::max(percent_, percent);
  // Saturates: rounded sizes of absurd files must not wrap the sum around to a smaller one.
  bytes_done_ = added_bytes > std::numeric_limits<uint64_t>::max() - bytes_done_
                    ? std::numeric_limits<uint64_t>::max()
                    : bytes_done_ + added_bytes;
}

v1::Progress ProgressTracker::Build(absl::Time now) const {
  v1::Progress progress;
  progress.set_percent(percent_);
  progress.set_bytes_done(bytes_done_);
  if (percent_of_bytes_ >= 100) {
    progress.set_bytes_total(bytes_done_);
  } else if (percent_of_bytes_ >= 1) {
    progress.set_bytes_total(
        RoundSaturated<uint64_t>(static_cast<double>(bytes_done_) * 100.0 / percent_of_bytes_));
  }
  double elapsed = absl::ToDoubleSeconds(now - first_time_);
  if (elapsed > 0) progress.set_bytes_per_second(static_cast<double>(bytes_done_) / elapsed);
  if (percent_ >= 100) {
    progress.set_eta_seconds(0);
  } else if (percent_ > 0 && elapsed > 0) {
    // A tiny percentage makes a huge estimate, saturated rather than wrapped negative.
    progress.set_eta_seconds(RoundSaturated<int64_t>(elapsed * (100.0 - percent_) / percent_));
  } else {
    progress.set_eta_seconds(-1);
  }
  return progress;
}

void ProgressTracker::MaybeEmit(bool force) {
  if (!pending_) return;
  absl::Time now = clock_->Now();
  if (!force && emitted_any_ && now - last_emit_ < min_interval_) return;
  emit_(Build(now));
  pending_ = false;
  emitted_any_ = true;
  last_emit_ = now;
}

}  // namespace pghaul::agent
