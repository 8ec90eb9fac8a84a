// A throwaway Sentinel setup for integration tests: one master, one replica and three
// redis-sentinel processes on free loopback ports, with a short down-after-milliseconds and
// failover-timeout so a failover completes in seconds.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness.hpp"

namespace pgbust::test {

class SentinelSet {
 public:
  static constexpr const char* kName = "mymaster";

  SentinelSet() {
    replicas_.push_back(std::make_unique<Redis>(
        RedisOptions{{},
                     {},
                     {},
                     false,
                     {"--replicaof", "127.0.0.1", std::to_string(master_.port()),
                      "--repl-diskless-sync-delay", "0"}}));
    for (int i = 0; i < 3; ++i) {
      RedisOptions o;
      o.sentinel = true;
      o.extra_args = {"--sentinel",
                      "monitor",
                      kName,
                      "127.0.0.1",
                      std::to_string(master_.port()),
                      "2",
                      "--sentinel",
                      "down-after-milliseconds",
                      kName,
                      "1000",
                      "--sentinel",
                      "failover-timeout",
                      kName,
                      "5000",
                      "--sentinel",
                      "parallel-syncs",
                      kName,
                      "1"};
      sentinels_.push_back(std::make_unique<Redis>(o));
    }
    // Every sentinel knows the replica and the two other sentinels, and the replica is in sync:
    // only then can a failover (manual or after a crash) pick it.
    std::string last;
    bool ready = eventually(
        [&] {
          auto link = replicas_[0]->command({"INFO", "replication"}).value_or("");
          if (link.find("master_link_status:up") == std::string::npos) return false;
          for (auto& s : sentinels_) {
            last = s->command({"SENTINEL", "MASTER", kName}).value_or("");
            if (field(last, "num-slaves") != "1" || field(last, "num-other-sentinels") != "2")
              return false;
          }
          return true;
        },
        30s);
    if (!ready) throw std::runtime_error("the sentinels did not settle: " + last);
  }

  // "host:port" the first answering sentinel names as the master ("" when none answers).
  std::string master_address() const {
    for (const auto& s : sentinels_) {
      try {
        auto r = s->command({"SENTINEL", "GET-MASTER-ADDR-BY-NAME", kName});
        if (!r) continue;
        const auto nl = r->find('\n');
        return r->substr(0, nl) + ":" + r->substr(nl + 1);
      } catch (const std::exception&) {
      }
    }
    return "";
  }
  // The server the sentinels name as master.
  Redis& master() { return at(master_address()); }
  Redis& original_master() { return master_; }
  Redis& replica() { return *replicas_[0]; }
  Redis& sentinel(std::size_t i) { return *sentinels_[i]; }
  Redis& at(const std::string& addr) {
    if (addr == "127.0.0.1:" + std::to_string(master_.port())) return master_;
    for (auto& r : replicas_)
      if (addr == "127.0.0.1:" + std::to_string(r->port())) return *r;
    throw std::runtime_error("no server at '" + addr + "'");
  }
  static bool is_master(const Redis& r) {
    try {
      auto role = r.command({"ROLE"}).value_or("");
      return role.starts_with("master\n");
    } catch (const std::exception&) {
      return false;
    }
  }
  // 127.0.0.1:P1, 127.0.0.1:P2, 127.0.0.1:P3 as a YAML flow list.
  std::string addresses() const {
    std::string s = "[";
    for (std::size_t i = 0; i < sentinels_.size(); ++i)
      s += (i ? ", " : "") + std::string("\"127.0.0.1:") + std::to_string(sentinels_[i]->port()) +
           "\"";
    return s + "]";
  }
  std::string logs() const {
    std::string out;
    for (std::size_t i = 0; i < sentinels_.size(); ++i)
      out += "\nsentinel " + std::to_string(i + 1) + " log tail:\n" + tail(sentinels_[i]->log());
    out += "\nmaster log tail:\n" + tail(master_.log());
    out += "\nreplica log tail:\n" + tail(replicas_[0]->log());
    return out;
  }

 private:
  static std::string tail(const std::string& s, std::size_t n = 3000) {
    return s.size() > n ? s.substr(s.size() - n) : s;
  }
  // A field of SENTINEL MASTER's flat name/value reply (rendered one per line).
  static std::string field(const std::string& reply, const std::string& name) {
    auto l = lines(reply);
    for (std::size_t i = 0; i + 1 < l.size(); i += 2)
      if (l[i] == name) return l[i + 1];
    return "";
  }

  Redis master_{
      RedisOptions{{}, {}, {}, false, {"--repl-diskless-sync-delay", "0"}}};  // sync at once
  std::vector<std::unique_ptr<Redis>> replicas_;
  std::vector<std::unique_ptr<Redis>> sentinels_;
};

}  // namespace pgbust::test
