// The agent's end of the link: dials the controller, says Hello, keeps the stream alive with
// heartbeats, answers tasks, and reconnects forever.
//
// Lifecycle of Run():
//
//   +--> CONNECTING --Welcome--> LINKED --stream ends / controller silent--+
//   |        |                                                             |
//   |        +--call fails / no Welcome in time---+                        |
//   |                                             v                        v
//   +---------------------------- WAITING (jittered, capped backoff) <-----+
//
// Each failed attempt is logged once ("attempt N to ADDR failed ...; next attempt in D"). The
// backoff starts over after a Welcome, i.e. once the link proved healthy. The incarnation is
// fixed for the life of the process, so the controller tells a reconnect from a restart.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/task_manager.h"
#include "grpcpp/security/credentials.h"
#include "pghaul/v1/agent_link.pb.h"

namespace pghaul::agent {

struct LinkOptions {
  std::string agent_id;
  std::string incarnation;
  std::string controller_address;
  // Mutual TLS credentials (common/tls_credentials.h); null: a plaintext link.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // The name the controller's certificate must hold; "" = the host of controller_address.
  std::string tls_server_name;
  absl::Duration reconnect_initial = absl::Seconds(1);
  absl::Duration reconnect_max = absl::Seconds(30);
  absl::Duration facts_interval = absl::Seconds(30);
  // How long to wait for Welcome after opening a stream before giving up on the attempt.
  absl::Duration hello_timeout = absl::Seconds(10);
  // The controller's Welcome sets the real interval; this is used until then.
  int missed_heartbeats = 3;
};

class ControllerLink {
 public:
  // `gather_facts` may block (it asks PostgreSQL and pgBackRest); it is never called on a gRPC
  // thread.
  using FactsProvider = std::function<v1::HostFacts()>;

  // `tasks` runs the tasks the controller sends; it must outlive the link.
  ControllerLink(LinkOptions options, FactsProvider gather_facts, TaskManager* tasks);

  // Connects and reconnects until Stop() is called. Blocks.
  void Run();
  // Thread-safe; makes Run() return soon.
  void Stop() { stopping_.Notify(); }

 private:
  class Stream;
  // Serves one stream until it ends; returns whether the controller welcomed it.
  bool Serve(Stream& stream, const v1::HostFacts& initial_facts);

  const LinkOptions options_;
  const FactsProvider gather_facts_;
  TaskManager* const tasks_;
  absl::Notification stopping_;
};

}  // namespace pghaul::agent
