#include "cli/commands_demo.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "cli/demo_setup.h"

namespace pghaul::cli {

CLI::App* AddDemoSubcommand(CLI::App& app, DemoOptions& options) {
  CLI::App* demo = app.add_subcommand(
      "demo",
      "Run a whole migration on this machine: two throwaway PostgreSQL 15 clusters, a pgBackRest "
      "repository, a controller and two agents; sample data, plan, backup, restore, verify, "
      "cutover, and a summary. Cleans up unless --keep");
  options.scale = kDemoDefaultScale;
  demo->add_flag("--keep", options.keep,
                 "Leave the clusters, controller and agents running at the end (and after a "
                 "failed step), and print how to reach and stop them");
  demo->add_option(
          "--scale", options.scale,
          absl::StrCat("pgbench scale factor of the sample data (default ", kDemoDefaultScale,
                       ": about 150 MB; each unit is 100000 rows, about 15 MB)"))
      ->check(CLI::Range(1, kDemoMaxScale))
      ->type_name("N");
  demo->add_option("--dir", options.dir,
                   "Put everything here: a new or empty directory (default: a new "
                   "/tmp/pghaul-demo-XXXXXX); letters, digits and / . _ - only")
      ->type_name("DIR");
  demo->footer(
      "Needs PostgreSQL 15 (/usr/lib/postgresql/15/bin), pgBackRest, and pghaul-agent and "
      "pghaul-controller beside pghaul. As root, PostgreSQL and the agents run as the postgres "
      "user. Exit status: 0 success, 1 a step failed, 64 bad usage, 130 interrupted. "
      "See docs/demo.md.");
  return demo;
}

PluggedDemoCommand AddDemoCommand(CLI::App& app) {
  // Shared by CLI11 (which writes the flags into it while parsing) and the runner.
  auto options = std::make_shared<DemoOptions>();
  CLI::App* demo = AddDemoSubcommand(app, *options);
  return {demo,
          [options](std::ostream& out, std::ostream& err) { return RunDemo(*options, out, err); }};
}

}  // namespace pghaul::cli
