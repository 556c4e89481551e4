// The example configurations in deploy/examples must stay loadable by the daemons that read them.
#include <fstream>
#include <sstream>
#include <string>

#include "agent/agent_config.h"
#include "controller/controller_config.h"
#include "gtest/gtest.h"

namespace pghaul {
namespace {

// deploy/examples/<name>, found from this file's path (CMake compiles sources by absolute path).
std::string ReadExample(const std::string& name) {
  std::string here = __FILE__;
  std::string root = here.substr(0, here.rfind("/tests/unit/"));
  std::ifstream file(root + "/deploy/examples/" + name);
  EXPECT_TRUE(file.good()) << "cannot open " << root << "/deploy/examples/" << name;
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

TEST(DeployExamplesTest, AgentExampleParsesWithTheDocumentedValues) {
  absl::StatusOr<agent::AgentConfig> config =
      agent::ParseAgentConfig(ReadExample("agent.yaml"), "deploy/examples/agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->agent_id, "legacy-db1");
  EXPECT_EQ(config->controller_address, "controller.example.internal:7400");
  EXPECT_TRUE(config->controller_insecure);
  EXPECT_EQ(config->postgres.socket_dir, "/var/run/postgresql");
  EXPECT_EQ(config->data_directory, "/var/lib/postgresql/15/main");
  EXPECT_EQ(config->state_dir, "/var/lib/pghaul-agent");
  EXPECT_EQ(config->facts_interval, absl::Seconds(30));
  EXPECT_EQ(config->reconnect_max, absl::Seconds(30));
  EXPECT_EQ(config->log_format, "json");
}

TEST(DeployExamplesTest, ControllerExampleParsesWithTheDocumentedValues) {
  absl::StatusOr<controller::ControllerConfig> config = controller::ParseControllerConfig(
      ReadExample("controller.yaml"), "deploy/examples/controller.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen_address, "0.0.0.0:7400");
  EXPECT_TRUE(config->insecure);
  EXPECT_EQ(config->controller_id, "pghaul-controller-1");
  EXPECT_EQ(config->state_dir, "/var/lib/pghaul");
  EXPECT_EQ(config->heartbeat_interval, absl::Seconds(2));
  EXPECT_EQ(config->missed_heartbeats, 3);
}

}  // namespace
}  // namespace pghaul
