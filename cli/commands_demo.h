// `pghaul demo [--keep] [--scale N] [--dir DIR]`: its place in the command tree. What it does is
// in demo_runner.h.
//
// app.cc plugs it in with one line, among its other plugged commands:
//
//   plugged.push_back(AddDemoCommand(app));
//
// The demo starts its own controller, so the global --controller, --output and --timeout do not
// apply to it.
#pragma once

#include <functional>
#include <ostream>
#include <utility>

#include "CLI/CLI.hpp"
#include "cli/demo_runner.h"

namespace pghaul::cli {

// The subcommand, and what runs it once it was parsed (given stdout and stderr, returning the
// exit status): app.cc's PluggedCommand.
using PluggedDemoCommand =
    std::pair<CLI::App*, std::function<int(std::ostream& out, std::ostream& err)>>;

// Adds `demo` to `app`. The returned function runs RunDemo with the parsed flags; it must not
// outlive `app`'s parse results (app.cc calls it right after parsing).
PluggedDemoCommand AddDemoCommand(CLI::App& app);

// The same subcommand with its flags parsed into `options` (which must outlive the parse), for
// tests of the flags. Returns the subcommand.
CLI::App* AddDemoSubcommand(CLI::App& app, DemoOptions& options);

}  // namespace pghaul::cli
