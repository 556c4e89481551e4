// Builds the argv and environment of one pgBackRest command from validated task fields: the only
// way pghaul runs pgBackRest. There is no free-form option anywhere; every value passed is
// checked against its grammar first (agent/validators.h).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/pgbackrest_config.h"
#include "common/task_names.h"
#include "pghaul/v1/tasks.pb.h"

namespace pghaul::agent {

// {binary, "--config=<ConfigPath>", "--config-include-path=<ConfigIncludePath>",
// "--stanza=<stanza>", <command>, options...}; `version` is just {binary, "version"}. The include
// path holds the repository secrets (secrets.conf); restore copies it, with --config and
// --stanza, into the restore_command it writes, so PostgreSQL's archive-get finds them too.
// Options per command:
//   info:    --output=json
//   backup:  --type=full|diff|incr (required), [--process-max=N], [--compress-type=T]
//   restore: [--delta], [--type=T], [--target=X] (only and always for time/lsn),
//            [--target-action=A] (immediate/time/lsn only), [--set=LABEL],
//            [--target-timeline=TL] (default/standby/time/lsn only), [--process-max=N],
//            and always --archive-mode=off: a restored copy must never archive into the
//            source's stanza.
//   expire:  [--set=LABEL]
//   stanza-create, check, verify: none.
// env.run_as_prefix is NOT included (see WithRunAsPrefix). Errors: InvalidArgument for an unset
// command, a bad migration id or stanza, or any option failing its grammar; the message names
// the field and what was expected.
absl::StatusOr<std::vector<std::string>> BuildPgBackRestArgv(const PgBackRestEnvironment& env,
                                                             const v1::PgBackRestCommand& command,
                                                             const std::string& stanza);

// env.run_as_prefix followed by `argv`.
std::vector<std::string> WithRunAsPrefix(const PgBackRestEnvironment& env,
                                         std::vector<std::string> argv);

// The child's whole environment: PATH=/usr/bin:/bin, LANG=C.UTF-8, HOME=<state_dir>, then
// SecretEnvironment(secrets) (the same values as secrets.conf; kept so that a child never
// depends on the file alone). Nothing is inherited from the agent.
std::vector<std::string> PgBackRestChildEnvironment(const PgBackRestEnvironment& env,
                                                    const v1::Secrets& secrets);

}  // namespace pghaul::agent
