#include "agent/patroni_config.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace pghaul::agent {
namespace {

// A systemd unit name: letters, digits and "@:._-\", not starting with '-'.
bool IsUnitName(absl::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '-') return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        absl::string_view("@:._-\\").find(c) == absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string PatroniConfig::RestApiAddress() const {
  const bool ipv6 = rest_api_host.find(':') != std::string::npos;
  return absl::StrCat(ipv6 ? "[" : "", rest_api_host, ipv6 ? "]" : "", ":", rest_api_port);
}

absl::Status SplitHostPort(absl::string_view address, std::string* host, int* port) {
  if (!IsHostPort(address, /*allow_port_zero=*/false)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", address, "\" is not host:port"));
  }
  size_t colon = address.rfind(':');
  absl::string_view host_part = address.substr(0, colon);
  if (!host_part.empty() && host_part.front() == '[') {
    host_part = host_part.substr(1, host_part.size() - 2);
  }
  *host = std::string(host_part);
  if (!absl::SimpleAtoi(address.substr(colon + 1), port)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", address, "\" has no valid port"));
  }
  return absl::OkStatus();
}

void ReadPatroniSection(ConfigReader section, PatroniConfig& out) {
  const StringRule absolute_path = AbsolutePathRule();
  const StringRule host_port = HostPortRule(/*allow_port_zero=*/false);
  const StringRule non_empty = NonEmptyRule();
  const StringRule unit_name{IsUnitName,
                             "a systemd unit name (letters, digits, '@', ':', '.', '_', '-', "
                             "'\\'), e.g. patroni.service"};

  section.String("config_file", &out.config_file, kRequired, &absolute_path);
  if (section.Has("dcs")) {
    std::string dcs;
    section.String("dcs", &dcs);
    if (dcs == "etcd") {
      section.AddError("dcs",
                       "etcd (the v2 API) is not supported: etcd 3.4 serves no v2 API by "
                       "default; configure Patroni with an etcd3: section and say dcs: etcd3");
    } else if (dcs != "etcd3") {
      section.AddError("dcs", absl::StrCat("expected etcd3 (the only DCS pghaul supports so "
                                           "far), got \"",
                                           dcs, "\""));
    }
    out.dcs = "etcd3";
  }

  ConfigReader rest_api = section.Section("rest_api");
  std::string address;
  if (rest_api.String("address", &address, kRequired, &host_port) && !address.empty()) {
    absl::Status split = SplitHostPort(address, &out.rest_api_host, &out.rest_api_port);
    if (!split.ok()) rest_api.AddError("address", split.message());
  }
  const bool has_user = rest_api.String("username", &out.rest_api_username, kOptional, &non_empty);
  const bool has_file =
      rest_api.String("password_file", &out.rest_api_password_file, kOptional, &absolute_path);
  if (has_user && has_file) {
    if (!out.rest_api_username.empty() && out.rest_api_password_file.empty()) {
      rest_api.AddError("password_file",
                        "is required with username (Patroni's restapi.authentication)");
    } else if (out.rest_api_username.empty() && !out.rest_api_password_file.empty()) {
      rest_api.AddError("username", "is required with password_file");
    }
  }
  rest_api.Duration("timeout", &out.request_timeout, absl::Milliseconds(100), absl::Seconds(60));

  ConfigReader control = section.Section("control");
  std::string method = "systemd";
  control.OneOf("method", &method, {"systemd", "command"});
  out.control =
      method == "command" ? PatroniConfig::Control::kCommand : PatroniConfig::Control::kSystemd;
  control.String("systemctl", &out.systemctl, kOptional, &absolute_path);
  control.String("unit", &out.unit, kOptional, &unit_name);
  control.StringList("command", &out.command, kOptional, &non_empty);
  control.String("log_file", &out.log_file, kOptional, &absolute_path);
  if (out.control == PatroniConfig::Control::kSystemd) {
    for (const char* key : {"command", "log_file"}) {
      if (control.Has(key)) {
        control.AddError(key, "is only for method command (method is systemd)");
      }
    }
    return;
  }
  for (const char* key : {"unit", "systemctl"}) {
    if (control.Has(key)) control.AddError(key, "is only for method systemd (method is command)");
  }
  if (out.command.empty()) {
    control.AddError("command",
                     "is required with method command: Patroni's argv, e.g. "
                     "[/usr/bin/patroni, /etc/patroni/patroni.yml]");
  } else if (out.command.front().empty() || out.command.front().front() != '/') {
    control.AddError("command", absl::StrCat("its first element must be an absolute path, got \"",
                                             out.command.front(), "\""));
  }
  if (out.log_file.empty()) {
    control.AddError("log_file",
                     "is required with method command: Patroni's output is appended there");
  }
}

}  // namespace pghaul::agent
