// `pghaul demo`: a whole migration on one machine, from nothing to a verified, promoted target.
//
// Steps, in order; a step that fails says which one it was, shows the end of the logs that tell
// why, and the demo cleans up (or, with --keep, leaves everything for inspection):
//
//   1. check the environment     pghaul-agent/-controller beside this binary, PostgreSQL 15,
//                                pgBackRest; as root, the postgres OS user
//   2. create the demo directory DIR/{legacy,target,repo,controller}
//   3. create the clusters       initdb + start "legacy" (port 5433) and "target" (port 5434),
//                                Unix sockets in DIR/<name>/run, no TCP
//   4. load the sample data      pgbench -i -s SCALE and a varied schema (demo_data.h)
//   5. start the controller      127.0.0.1, a free port
//   6. start the agents          "legacy" and "target"; wait until both are online
//   7. apply the plan            pghaul plan apply DIR/plan.yaml
//   8. run the migration         pghaul run demo (its progress on this terminal)
//   9. summarize                 pghaul -o json status demo: phase durations, bytes, downtime
//  10. check the target          promoted, writable, same pgbench data as legacy had
//
// As root, PostgreSQL, pgBackRest and the agents run as the postgres OS user (the controller and
// the pghaul commands as root); otherwise everything runs as the current user. SIGINT, SIGTERM
// and SIGHUP stop whatever runs, clean up, and end the demo with 128 + the signal (130 for
// Ctrl-C), --keep or not.
#pragma once

#include <ostream>
#include <string>

#include "cli/demo_setup.h"

namespace pghaul::cli {

struct DemoOptions {
  bool keep = false;              // leave everything running at the end (and after a failed step)
  int scale = kDemoDefaultScale;  // pgbench scale factor: 10 is about 150 MB
  std::string dir;  // "": a new /tmp/pghaul-demo-XXXXXX; else a new or empty directory
};

// Runs the demo; headings, progress and the summary go to `out`, errors to `err`. The pghaul
// commands it runs write to this process's own stdout and stderr, so `out` and `err` should be
// std::cout and std::cerr (they are flushed before each such command). Returns the exit status:
// 0 success, 1 a step failed, 64 a bad --dir, 128 + signal when interrupted.
int RunDemo(const DemoOptions& options, std::ostream& out, std::ostream& err);

}  // namespace pghaul::cli
