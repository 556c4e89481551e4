// The progress of a running backup or restore as one line of text: with a bar for a terminal
// (`pghaul watch` redraws it in place), or without one for logs. Pure functions of the Progress
// the agent last reported, so that every shape of the line is unit-tested.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "pghaul/v1/agent_link.pb.h"

namespace pghaul::cli {

// The percent done: `progress.percent` when the agent reported one, else bytes_done of
// bytes_total; clamped to 0..100. Negative when neither is known.
double ProgressPercent(const v1::Progress& progress);

// Seconds left: the agent's eta_seconds when positive, else estimated from the rate and the
// bytes left. Negative when unknown.
int64_t ProgressEtaSeconds(const v1::Progress& progress);

// The parts of the line that are known, two spaces apart, without a bar:
// "45%  1.8 GiB / 4.0 GiB  120 MiB/s  ETA 1m20s" (percent rounded down). "" when nothing is
// known.
std::string ProgressSummary(const v1::Progress& progress);

// One line for a terminal `width` columns wide, never longer than width - 1 (a line that fills
// the last column wraps on some terminals and could then not be redrawn):
//
//   backup  [##########----------]  45%  1.8 GiB / 4.0 GiB  120 MiB/s  ETA 1m20s
//
// `label` (the phase) comes first when not empty; the percent is right-aligned to four
// characters so that a redrawn line does not jitter. The bar takes the room the text leaves, at
// most 40 characters; below 10 it is left out, and when even the text does not fit it is cut,
// ending in "...". Without a known percent there is no bar; with nothing known, only the label.
// No newline, no escape sequences.
std::string RenderProgressLine(absl::string_view label, const v1::Progress& progress, int width);

}  // namespace pghaul::cli
