// Layout of text for people: aligned columns and "Key: value" sections. Pure functions, shared
// by the agent and task formatting.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace pghaul::cli {

// Display width of a UTF-8 string: its code points (continuation bytes do not count). Wide
// characters are rare in hostnames and paths and are not worth a Unicode width table.
size_t DisplayWidth(absl::string_view text);

// `text` padded with spaces to `width` code points; longer text is returned unchanged.
std::string PadRight(absl::string_view text, size_t width);

// `text` cut to at most `max_width` code points, ending in "..." when it was cut. Never splits a
// UTF-8 sequence. `max_width` below 4 is treated as 4.
std::string Truncate(absl::string_view text, size_t max_width);

// Lays out rows as columns separated by three spaces, each line starting with `indent`. The last
// column is not padded, so no line ends in spaces.
std::string RenderColumns(const std::vector<std::vector<std::string>>& rows,
                          absl::string_view indent = "");

// One group of "Key: value" lines under a heading. An entry with an empty key is a note printed
// as it is, e.g. "(none)".
struct Section {
  std::string heading;
  std::vector<std::pair<std::string, std::string>> entries;

  void Add(std::string key, std::string value) {
    entries.emplace_back(std::move(key), std::move(value));
  }
  void Note(std::string note) { entries.emplace_back("", std::move(note)); }
};

// The sections one after the other, separated by blank lines, entries indented by two spaces
// with their values lined up across all sections.
std::string RenderSections(const std::vector<Section>& sections);

}  // namespace pghaul::cli
