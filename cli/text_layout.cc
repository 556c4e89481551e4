#include "cli/text_layout.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace pghaul::cli {
namespace {

constexpr absl::string_view kColumnGap = "   ";
constexpr absl::string_view kEllipsis = "...";

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

size_t DisplayWidth(absl::string_view text) {
  size_t width = 0;
  for (char c : text) width += !IsContinuationByte(c);
  return width;
}

std::string PadRight(absl::string_view text, size_t width) {
  std::string padded(text);
  size_t current = DisplayWidth(text);
  if (current < width) padded.append(width - current, ' ');
  return padded;
}

std::string Truncate(absl::string_view text, size_t max_width) {
  max_width = std::max<size_t>(max_width, kEllipsis.size() + 1);
  if (DisplayWidth(text) <= max_width) return std::string(text);
  size_t keep = max_width - kEllipsis.size();  // code points to keep
  size_t end = 0;
  for (size_t seen = 0; end < text.size(); ++end) {
    if (!IsContinuationByte(text[end]) && seen++ == keep) break;
  }
  return absl::StrCat(text.substr(0, end), kEllipsis);
}

std::string RenderColumns(const std::vector<std::vector<std::string>>& rows,
                          absl::string_view indent) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (row.size() > widths.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  std::string out;
  for (const auto& row : rows) {
    absl::StrAppend(&out, indent);
    for (size_t i = 0; i < row.size(); ++i) {
      if (i + 1 == row.size()) {
        absl::StrAppend(&out, row[i]);
      } else {
        absl::StrAppend(&out, PadRight(row[i], widths[i]), kColumnGap);
      }
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

std::string RenderSections(const std::vector<Section>& sections) {
  // Values line up across all sections, which reads better than per-section alignment.
  size_t key_width = 0;
  for (const Section& section : sections) {
    for (const auto& [key, value] : section.entries) {
      key_width = std::max(key_width, DisplayWidth(key) + 1);  // + 1 for the colon
    }
  }
  std::string out;
  for (size_t i = 0; i < sections.size(); ++i) {
    if (i > 0) absl::StrAppend(&out, "\n");
    absl::StrAppend(&out, sections[i].heading, "\n");
    for (const auto& [key, value] : sections[i].entries) {
      if (key.empty()) {
        absl::StrAppend(&out, "  ", value, "\n");
      } else {
        absl::StrAppend(&out, "  ", PadRight(absl::StrCat(key, ":"), key_width), " ", value, "\n");
      }
    }
  }
  return out;
}

}  // namespace pghaul::cli
