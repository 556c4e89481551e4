#include "cli/progress_bar.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "cli/agent_table.h"
#include "cli/task_table.h"
#include "cli/text_layout.h"

namespace pghaul::cli {
namespace {

constexpr size_t kMaxBarWidth = 40;  // inside the brackets
constexpr size_t kMinBarWidth = 10;
constexpr absl::string_view kGap = "  ";

}  // namespace

double ProgressPercent(const v1::Progress& progress) {
  if (progress.percent() > 0 && std::isfinite(progress.percent())) {
    return std::clamp(progress.percent(), 0.0, 100.0);
  }
  if (progress.bytes_total() > 0) {
    double done = static_cast<double>(std::min(progress.bytes_done(), progress.bytes_total()));
    return 100.0 * done / static_cast<double>(progress.bytes_total());
  }
  return -1;
}

int64_t ProgressEtaSeconds(const v1::Progress& progress) {
  // 0 is also what an agent that does not estimate sends (proto3's default); -1 is "unknown".
  if (progress.eta_seconds() > 0) return progress.eta_seconds();
  double rate = progress.bytes_per_second();
  if (rate > 0 && std::isfinite(rate) && progress.bytes_total() > progress.bytes_done()) {
    double left = static_cast<double>(progress.bytes_total() - progress.bytes_done()) / rate;
    return static_cast<int64_t>(std::ceil(left));
  }
  return -1;
}

namespace {

// The summary; with `aligned`, the percent right-aligned to four characters.
std::string Summary(const v1::Progress& progress, bool aligned) {
  std::vector<std::string> parts;
  double percent = ProgressPercent(progress);
  if (percent >= 0) {
    // Rounded down: "100%" only when it is all done.
    int whole = static_cast<int>(std::floor(percent));
    parts.push_back(aligned ? absl::StrFormat("%3d%%", whole) : absl::StrCat(whole, "%"));
  }
  if (progress.bytes_total() > 0) {
    parts.push_back(
        absl::StrCat(HumanBytes(progress.bytes_done()), " / ", HumanBytes(progress.bytes_total())));
  } else if (progress.bytes_done() > 0) {
    parts.push_back(absl::StrCat(HumanBytes(progress.bytes_done()), " done"));
  }
  if (progress.bytes_per_second() > 0) parts.push_back(HumanRate(progress.bytes_per_second()));
  int64_t eta = ProgressEtaSeconds(progress);
  if (eta > 0) parts.push_back(absl::StrCat("ETA ", HumanDuration(absl::Seconds(eta))));
  return absl::StrJoin(parts, kGap);
}

}  // namespace

std::string ProgressSummary(const v1::Progress& progress) {
  return Summary(progress, /*aligned=*/false);
}

std::string RenderProgressLine(absl::string_view label, const v1::Progress& progress, int width) {
  const size_t max_width = static_cast<size_t>(std::max(width - 1, 0));
  const std::string summary = Summary(progress, /*aligned=*/true);
  std::string prefix = label.empty() ? "" : absl::StrCat(label, kGap);
  std::string line = summary.empty() ? std::string(label) : absl::StrCat(prefix, summary);
  double percent = ProgressPercent(progress);
  if (percent >= 0) {
    // Room for "[" bar "]" and the gap before the summary.
    size_t text = DisplayWidth(line) + 2 + kGap.size();
    if (max_width > text) {
      size_t bar_width = std::min(max_width - text, kMaxBarWidth);
      if (bar_width >= kMinBarWidth) {
        size_t filled = static_cast<size_t>(std::floor(percent / 100.0 * bar_width));
        filled = std::min(filled, bar_width);
        line = absl::StrCat(prefix, "[", std::string(filled, '#'),
                            std::string(bar_width - filled, '-'), "]", kGap, summary);
      }
    }
  }
  if (DisplayWidth(line) > max_width) line = Truncate(line, max_width);
  return line;
}

}  // namespace pghaul::cli
