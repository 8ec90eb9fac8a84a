// Loading /etc/pgbust/pgbust.yaml: every key declared once with its type and default,
// unknown keys rejected, every problem reported as FILE:LINE:COL at once.
#include "pgbust/core/config.hpp"

#include <yaml-cpp/yaml.h>

#include "pgbust/core/reference.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace pgbust::config {

ConfigError::ConfigError(std::vector<std::string> problems)
    : Error([&] {
        std::string all;
        for (const auto& p : problems) all += (all.empty() ? "" : "\n") + p;
        return all;
      }()),
      problems_(std::move(problems)) {}

std::string default_state_dir() {
  const char* env = std::getenv("STATE_DIRECTORY");
  if (env == nullptr || *env == '\0') return "/var/lib/pgbust";
  std::string_view dirs(env);
  return std::string(dirs.substr(0, dirs.find(':')));  // systemd separates several with ':'
}

std::optional<milliseconds> parse_duration(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0) return std::nullopt;
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (ec != std::errc() || ptr != text.data() + i || value < 0) return std::nullopt;
  std::string_view unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  double ms;
  if (unit.empty() || unit == "s")
    ms = value * 1000;
  else if (unit == "ms")
    ms = value;
  else if (unit == "m" || unit == "min")
    ms = value * 60000;
  else if (unit == "h")
    ms = value * 3600000;
  else
    return std::nullopt;
  return milliseconds(static_cast<std::int64_t>(std::llround(ms)));
}

std::optional<std::int64_t> parse_size(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0) return std::nullopt;
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (ec != std::errc()) return std::nullopt;
  std::string unit(text.substr(i));
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::int64_t mult = 1;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "KB" || unit == "K")
    mult = 1LL << 10;
  else if (unit == "MB" || unit == "M")
    mult = 1LL << 20;
  else if (unit == "GB" || unit == "G")
    mult = 1LL << 30;
  else if (unit == "TB" || unit == "T")
    mult = 1LL << 40;
  else
    return std::nullopt;
  return value * mult;
}

namespace {

// Collects problems with positions while walking the document.
class Reader {
 public:
  // `seen`: when given, every key each walked mapping accepts ("redis.tls.verify"), for
  // accepted_keys().
  explicit Reader(std::string file, std::vector<std::string>* seen = nullptr)
      : file_(std::move(file)), seen_(seen) {}

  void error(const YAML::Node& at, const std::string& msg) { error(at.Mark(), msg); }
  void error(const YAML::Mark& m, const std::string& msg) {
    if (m.is_null())
      problems_.push_back(file_ + ": error: " + msg);
    else
      problems_.push_back(file_ + ":" + std::to_string(m.line + 1) + ":" +
                          std::to_string(m.column + 1) + ": error: " + msg);
  }
  std::vector<std::string>& problems() { return problems_; }

  static constexpr const char* kRoot = "the config file";

  using Handler = std::function<void(const YAML::Node&)>;
  struct Key {
    const char* name;
    Handler handle;
  };

  // Walks a mapping: each known key goes to its handler, unknown keys are errors.
  void mapping(const YAML::Node& node, const std::string& where, const std::vector<Key>& keys) {
    if (seen_ != nullptr)
      for (const auto& k : keys) seen_->push_back((where == kRoot ? "" : where + ".") + k.name);
    if (!node.IsMap()) {
      error(node, where + " must be a mapping of keys to values");
      return;
    }
    for (const auto& kv : node) {
      std::string name = kv.first.Scalar();
      const Key* found = nullptr;
      for (const auto& k : keys)
        if (name == k.name) found = &k;
      if (found == nullptr) {
        std::string known;
        for (const auto& k : keys) known += (known.empty() ? "" : ", ") + std::string(k.name);
        error(kv.first, "unknown key '" + name + "' in " + where + "; expected one of: " + known);
        continue;
      }
      found->handle(kv.second);
    }
  }

  Handler str(std::string& out, const std::string& what) {
    return [this, &out, what](const YAML::Node& n) {
      if (!n.IsScalar())
        error(n, what + " must be a string");
      else
        out = n.Scalar();
    };
  }
  Handler boolean(bool& out, const std::string& what) {
    return [this, &out, what](const YAML::Node& n) {
      bool v;
      if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v))
        error(n, what + " must be true or false");
      else
        out = v;
    };
  }
  Handler duration(milliseconds& out, const std::string& what) {
    return [this, &out, what](const YAML::Node& n) {
      auto d = n.IsScalar() ? parse_duration(n.Scalar()) : std::nullopt;
      if (!d)
        error(n, what + " must be a duration like 500ms, 2s, 5m or 1h");
      else
        out = *d;
    };
  }
  Handler size(std::int64_t& out, const std::string& what) {
    return [this, &out, what](const YAML::Node& n) {
      auto s = n.IsScalar() ? parse_size(n.Scalar()) : std::nullopt;
      if (!s)
        error(n, what + " must be a size like 1048576, 512MB or 1GB");
      else
        out = *s;
    };
  }
  Handler count(std::size_t& out, const std::string& what) {
    return [this, &out, what](const YAML::Node& n) {
      std::size_t v = 0;
      auto s = n.IsScalar() ? n.Scalar() : std::string();
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v == 0)
        error(n, what + " must be a positive whole number");
      else
        out = v;
    };
  }
  Handler strings(std::vector<std::string>& out, const std::string& what) {
    return [this, &out, what](const YAML::Node& n) {
      if (n.IsScalar()) {
        out = {n.Scalar()};
        return;
      }
      if (!n.IsSequence()) {
        error(n, what + " must be a list of strings");
        return;
      }
      out.clear();
      for (const auto& item : n) {
        if (!item.IsScalar())
          error(item, what + " must contain only strings");
        else
          out.push_back(item.Scalar());
      }
    };
  }
  Handler one_of(std::string& out, const std::string& what, std::vector<std::string> allowed) {
    return [this, &out, what, allowed](const YAML::Node& n) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      if (!n.IsScalar()) {
        error(n, what + " must be one of: " + list);
        return;
      }
      for (const auto& a : allowed)
        if (n.Scalar() == a) {
          out = a;
          return;
        }
      error(n, what + " is '" + n.Scalar() + "'; expected one of: " + list);
    };
  }

 private:
  std::string file_;
  std::vector<std::string>* seen_;
  std::vector<std::string> problems_;
};

void split_table(const std::string& qualified, std::string& schema, std::string& table) {
  auto dot = qualified.find('.');
  if (dot == std::string::npos) {
    table = qualified;
  } else {
    schema = qualified.substr(0, dot);
    table = qualified.substr(dot + 1);
  }
}

void read_poll_tables(Reader& r, const YAML::Node& n, Poll& poll) {
  if (!n.IsSequence()) {
    r.error(n, "sources.poll.tables must be a list of {table, watermark, ...} mappings");
    return;
  }
  for (const auto& item : n) {
    PollTable t;
    t.line = item.Mark().line + 1;
    std::string qualified;
    r.mapping(item, "sources.poll.tables[]",
              {{"table", r.str(qualified, "table")},
               {"watermark", r.strings(t.watermark, "watermark")},
               {"key", r.strings(t.key, "key")},
               {"overlap", r.duration(t.overlap, "overlap")},
               {"deletes", r.one_of(t.deletes, "deletes", {"count", "none"})}});
    if (!item.IsMap()) continue;
    if (qualified.empty()) r.error(item, "sources.poll.tables[] needs 'table: schema.name'");
    if (t.watermark.empty() || t.watermark.size() > 2)
      r.error(item,
              "sources.poll.tables[] needs 'watermark: [id]', '[updated_at]' or "
              "'[updated_at, id]'");
    split_table(qualified, t.schema, t.table);
    poll.tables.push_back(std::move(t));
  }
}

// A target's default name: host:port (or the socket path) from its URL, never the userinfo;
// for a cluster URL with several seeds, the first.
std::string derived_name(const std::string& url) {
  std::string_view rest(url);
  if (auto scheme = rest.find("://"); scheme != std::string_view::npos)
    rest.remove_prefix(scheme + 3);
  const bool unix_socket = std::string_view(url).starts_with("unix://");
  if (unix_socket) {
    if (auto at = rest.find("@/"); at != std::string_view::npos) rest.remove_prefix(at + 1);
    return std::string(rest.substr(0, rest.find('?')));
  }
  if (auto slash = rest.find('/'); slash != std::string_view::npos) rest = rest.substr(0, slash);
  if (auto at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  rest = rest.substr(0, rest.find(','));  // a cluster URL's seeds: named after the first
  std::string name(rest.empty() ? "redis" : rest);
  if (name.find(':') == std::string::npos || name.back() == ']') name += ":6379";
  return name;
}
// A Sentinel target is named after its master's name.
std::string derived_name(const Redis& t) {
  return t.sentinel && !t.sentinel->master.empty() ? t.sentinel->master : derived_name(t.url);
}

// A tls: mapping (redis.tls, redis.sentinel.tls) at `w`.
RedisTls read_tls(Reader& r, const YAML::Node& t, const std::string& w) {
  RedisTls tls;
  r.mapping(t, w,
            {{"ca_file", r.str(tls.ca_file, w + ".ca_file")},
             {"ca_path", r.str(tls.ca_path, w + ".ca_path")},
             {"cert_file", r.str(tls.cert_file, w + ".cert_file")},
             {"key_file", r.str(tls.key_file, w + ".key_file")},
             {"server_name", r.str(tls.server_name, w + ".server_name")},
             {"verify", r.one_of(tls.verify, w + ".verify", {"full", "ca", "none"})},
             {"min_version", r.one_of(tls.min_version, w + ".min_version", {"1.2", "1.3"})}});
  if (t.IsMap() && tls.cert_file.empty() != tls.key_file.empty())
    r.error(t, w + " needs both cert_file and key_file for a client certificate (or neither)");
  return tls;
}

// "host:port" or "[v6]:port" with a port 1-65535.
bool is_host_port(const std::string& a) {
  const auto colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == a.size() || colon + 6 < a.size())
    return false;
  const std::string host = a.substr(0, colon);
  if (host.front() == '[' ? host.size() < 3 || host.back() != ']'
                          : host.find(':') != std::string::npos)
    return false;
  int port = 0;
  for (char c : a.substr(colon + 1)) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + (c - '0');
  }
  return port >= 1 && port <= 65535;
}

// redis.sentinel at `w`: master and addresses required, each address host:port.
RedisSentinel read_sentinel(Reader& r, const YAML::Node& n, const std::string& w) {
  RedisSentinel s;
  r.mapping(n, w,
            {{"master", r.str(s.master, w + ".master")},
             {"addresses",
              [&](const YAML::Node& a) {
                r.strings(s.addresses, w + ".addresses")(a);
                if (a.IsSequence() && a.size() == 0)
                  r.error(a, w + ".addresses must list at least one sentinel (host:port)");
                for (std::size_t i = 0; a.IsSequence() && i < a.size(); ++i)
                  if (a[i].IsScalar() && !is_host_port(a[i].Scalar()))
                    r.error(a[i], w + ".addresses: '" + a[i].Scalar() +
                                      "' is not host:port (an IPv6 address as [addr]:port)");
                if (a.IsScalar() && !is_host_port(a.Scalar()))
                  r.error(a, w + ".addresses: '" + a.Scalar() +
                                 "' is not host:port (an IPv6 address as [addr]:port)");
              }},
             {"user", r.str(s.user, w + ".user")},
             {"password_file", r.str(s.password_file, w + ".password_file")},
             {"tls", [&](const YAML::Node& t) { s.tls = read_tls(r, t, w + ".tls"); }}});
  if (!n.IsMap()) return s;
  if (!n["master"] || s.master.empty())
    r.error(n, w + " needs 'master: NAME' (the name the sentinels monitor the master by)");
  if (!n["addresses"]) r.error(n, w + " needs 'addresses: [host:port, ...]' (the sentinels)");
  return s;
}

// One target's keys (`where`: "redis" or "redis[2]"); the name node's position in *name_at.
void read_redis(Reader& r, const YAML::Node& n, const std::string& where, Redis& out,
                std::optional<YAML::Mark>* name_at) {
  std::optional<YAML::Mark> sentinel_at;
  r.mapping(n, where,
            {{"url", r.str(out.url, where + ".url")},
             {"password_file", r.str(out.password_file, where + ".password_file")},
             {"key_prefix", r.str(out.key_prefix, where + ".key_prefix")},
             {"connect_timeout", r.duration(out.connect_timeout, where + ".connect_timeout")},
             {"command_timeout", r.duration(out.command_timeout, where + ".command_timeout")},
             {"cluster", r.boolean(out.cluster, where + ".cluster")},
             {"tls", [&, where](const YAML::Node& t) { out.tls = read_tls(r, t, where + ".tls"); }},
             {"sentinel",
              [&, where](const YAML::Node& t) {
                sentinel_at = t.Mark();
                out.sentinel = read_sentinel(r, t, where + ".sentinel");
              }},
             {"name",
              [&, where](const YAML::Node& v) {
                r.str(out.name, where + ".name")(v);
                if (v.IsScalar() && out.name.empty()) r.error(v, where + ".name must not be empty");
                *name_at = v.Mark();
              }},
             {"stream_maxlen", r.count(out.stream_maxlen, where + ".stream_maxlen")}});
  if (sentinel_at) {
    const std::string& u = out.url;
    if (out.cluster || u.starts_with("redis+cluster://") || u.starts_with("rediss+cluster://"))
      r.error(*sentinel_at, where +
                                ".sentinel: a Sentinel-managed master is not a Redis Cluster; "
                                "drop " +
                                where + ".cluster or the +cluster URL");
    else if (u.starts_with("unix://"))
      r.error(*sentinel_at, where + ".sentinel: the sentinels name a TCP master; " + where +
                                ".url must be redis:// or rediss:// (for the user, password "
                                "and db; its host:port is replaced by the master's)");
  }
}

// `redis:` is one target (a mapping) or a list of them. Explicit names must be unique;
// derived ones are made unique.
void read_redis_targets(Reader& r, const YAML::Node& n, Config& c) {
  if (!n.IsSequence()) {
    std::optional<YAML::Mark> name_at;
    read_redis(r, n, "redis", c.redis, &name_at);
    if (c.redis.name.empty()) c.redis.name = derived_name(c.redis);
    return;
  }
  if (n.size() == 0) {
    r.error(n, "redis must be a mapping (one target) or a non-empty list of targets");
    return;
  }
  std::vector<Redis> targets;
  std::vector<std::optional<YAML::Mark>> name_marks;
  for (std::size_t i = 0; i < n.size(); ++i) {
    Redis t;
    std::optional<YAML::Mark> name_at;
    read_redis(r, n[i], "redis[" + std::to_string(i + 1) + "]", t, &name_at);
    targets.push_back(std::move(t));
    name_marks.push_back(name_at);
  }
  std::map<std::string, std::size_t> named;  // explicit name -> its entry
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (targets[i].name.empty()) continue;
    auto [it, added] = named.emplace(targets[i].name, i);
    if (!added)
      r.error(name_marks[i] ? *name_marks[i] : n[i].Mark(),
              "redis[" + std::to_string(i + 1) + "].name '" + targets[i].name +
                  "' is already the name of redis[" + std::to_string(it->second + 1) +
                  "]; every target needs its own name");
  }
  std::set<std::string> used;
  for (const auto& [name, i] : named) used.insert(name);
  for (auto& t : targets) {
    if (!t.name.empty()) continue;
    std::string base = derived_name(t), name = base;
    for (int k = 2; used.contains(name); ++k) name = base + "-" + std::to_string(k);
    t.name = name;
    used.insert(name);
  }
  c.redis = std::move(targets.front());
  c.more_redis.assign(std::make_move_iterator(targets.begin() + 1),
                      std::make_move_iterator(targets.end()));
}

}  // namespace

std::vector<Redis> redis_targets(const Config& c) {
  std::vector<Redis> all{c.redis};
  all.insert(all.end(), c.more_redis.begin(), c.more_redis.end());
  return all;
}

namespace {

Config parse(const std::string& text, const std::filesystem::path& file,
             std::vector<std::string>* seen) {
  Reader r(file.string(), seen);
  Config c;
  c.file = file;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    r.error(e.mark, "invalid YAML: " + e.msg);
    throw ConfigError(r.problems());
  }
  if (!root.IsDefined() || root.IsNull()) {
    r.error(YAML::Mark::null_mark(),
            "the file is empty; expected at least 'postgres', "
            "'sources', 'redis' and 'rules'");
    throw ConfigError(r.problems());
  }
  std::string rules_path;
  bool have_rules = false, have_sources = false;
  r.mapping(
      root, Reader::kRoot,
      {{"postgres",
        [&](const YAML::Node& n) {
          r.mapping(n, "postgres", {{"conninfo", r.str(c.conninfo, "postgres.conninfo")}});
        }},
       {"sources",
        [&](const YAML::Node& n) {
          have_sources = true;
          r.mapping(
              n, "sources",
              {{"logical",
                [&](const YAML::Node& s) {
                  Logical l;
                  r.mapping(
                      s, "sources.logical",
                      {{"slot", r.str(l.slot, "sources.logical.slot")},
                       {"publication", r.str(l.publication, "sources.logical.publication")},
                       {"create_slot", r.boolean(l.create_slot, "sources.logical.create_slot")},
                       {"status_interval",
                        r.duration(l.status_interval, "sources.logical.status_interval")},
                       {"state_dir", r.str(l.state_dir, "sources.logical.state_dir")},
                       {"coverage_interval",
                        r.duration(l.coverage_interval, "sources.logical.coverage_interval")},
                       {"on_gap", r.one_of(l.on_gap, "sources.logical.on_gap",
                                           {"widen", "fail", "widen_at_start"})}});
                  c.logical = l;
                }},
               {"notify",
                [&](const YAML::Node& s) {
                  Notify nt;
                  r.mapping(s, "sources.notify",
                            {{"channels", r.strings(nt.channels, "sources.notify.channels")},
                             {"on_gap",
                              r.one_of(nt.on_gap, "sources.notify.on_gap", {"widen", "ignore"})},
                             {"verify", r.boolean(nt.verify, "sources.notify.verify")},
                             {"tables", [&](const YAML::Node& t) {
                                r.strings(nt.tables, "sources.notify.tables")(t);
                                for (auto& q : nt.tables) {
                                  std::string schema = "public", table;
                                  split_table(q, schema, table);
                                  if (schema.empty() || table.empty())
                                    r.error(t, "sources.notify.tables entry '" + q +
                                                   "' is not a table name (schema.table)");
                                  q = schema + "." + table;
                                }
                              }}});
                  if (nt.channels.empty()) r.error(s, "sources.notify.channels must not be empty");
                  c.notify = nt;
                }},
               {"poll", [&](const YAML::Node& s) {
                  Poll p;
                  r.mapping(s, "sources.poll",
                            {{"interval", r.duration(p.interval, "sources.poll.interval")},
                             {"state_dir", r.str(p.state_dir, "sources.poll.state_dir")},
                             {"page_size", r.count(p.page_size, "sources.poll.page_size")},
                             {"tables", [&](const YAML::Node& t) { read_poll_tables(r, t, p); }}});
                  if (s.IsMap() && p.tables.empty())
                    r.error(s, "sources.poll needs at least one entry in 'tables'");
                  c.poll = p;
                }}});
        }},
       {"redis", [&](const YAML::Node& n) { read_redis_targets(r, n, c); }},
       {"rules",
        [&](const YAML::Node& n) {
          have_rules = true;
          r.str(rules_path, "rules (a file or a rules.d directory)")(n);
        }},
       {"status",
        [&](const YAML::Node& n) {
          r.mapping(n, "status",
                    {{"interval", r.duration(c.status.interval, "status.interval")},
                     {"listen", r.str(c.status.listen, "status.listen")},
                     {"wal_warn_bytes", r.size(c.status.wal_warn_bytes, "status.wal_warn_bytes")}});
        }},
       {"limits",
        [&](const YAML::Node& n) {
          r.mapping(n, "limits",
                    {{"max_keys_per_transaction", r.count(c.limits.max_keys_per_transaction,
                                                          "limits.max_keys_per_transaction")},
                     {"max_batch_keys", r.count(c.limits.max_batch_keys, "limits.max_batch_keys")},
                     {"max_queued_batches",
                      r.count(c.limits.max_queued_batches, "limits.max_queued_batches")}});
        }},
       {"log", [&](const YAML::Node& n) {
          r.mapping(n, "log",
                    {{"level", r.one_of(c.log_level, "log.level",
                                        {"trace", "debug", "info", "warn", "error", "off"})},
                     {"format", r.one_of(c.log_format, "log.format", {"text", "json"})},
                     {"journal", r.one_of(c.log_journal, "log.journal", {"auto", "yes", "no"})}});
        }}});
  if (root.IsMap()) {
    if (!have_rules) r.error(root, "missing 'rules: PATH' (a rules file or rules.d directory)");
    if (have_sources && !c.logical && !c.notify && !c.poll)
      r.error(root["sources"], "sources must configure at least one of logical, notify, poll");
  }
  if (!r.problems().empty()) throw ConfigError(r.problems());
  if (c.redis.name.empty()) c.redis.name = derived_name(c.redis.url);
  if (!have_sources) c.logical = Logical{};
  if (!rules_path.empty()) {
    std::filesystem::path p(rules_path);
    c.rules = p.is_relative() && file.has_parent_path() ? file.parent_path() / p : p;
  }
  return c;
}

}  // namespace

Config parse(const std::string& text, const std::filesystem::path& file) {
  return parse(text, file, nullptr);
}

std::vector<std::string> accepted_keys(const std::string& text) {
  std::vector<std::string> seen;
  try {
    parse(text, "accepted_keys", &seen);
  } catch (const ConfigError&) {
  }
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  return seen;
}

Config load(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in)
    throw ConfigError(
        {file.string() + ": error: cannot read the config file: " + std::strerror(errno)});
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), file);
}

}  // namespace pgbust::config
