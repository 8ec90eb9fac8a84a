// What the rules send for one described row change: the images the logical source would hand
// the engine under the table's replica identity, run through the engine, in explain's order.
#include "pgbust/cli/explain_model.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include "pgbust/core/json.hpp"
#include "pgbust/core/quote.hpp"
#include "pgbust/pipeline/publish.hpp"

namespace pgbust::cli {

std::string redis_cli_arg(std::string_view s) {
  bool bare = !s.empty(), printable = true;
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7F || c == '"' || c == '\'') bare = false;
    if (c < 0x20 || c >= 0x7F) printable = false;
  }
  if (bare) return std::string(s);
  if (printable && s.find('\'') == std::string_view::npos) return "'" + std::string(s) + "'";
  return quote_ascii(s);
}

std::string Command::line() const {
  std::string out = verb + " " + redis_cli_arg(key);
  if (verb == "PUBLISH") out += " " + redis_cli_arg(message);
  if (verb == "XADD") out += " * message " + redis_cli_arg(message);
  return out;
}

ColumnValues parse_row_json(const std::string& what, const std::string& text) {
  json::Value v;
  try {
    v = json::parse(text);
  } catch (const json::ParseError& e) {
    throw BadChange{what + ": invalid JSON at " + e.what()};
  }
  if (!v.is_object())
    throw BadChange{what + ": expected a JSON object of column values, e.g. {\"id\": 5}, found " +
                    std::string(json::to_string(v.type()))};
  ColumnValues out;
  for (const auto& [name, value] : v.members()) {
    switch (value.type()) {
      case json::Value::Type::Null:
        out.emplace_back(name, std::nullopt);
        break;
      case json::Value::Type::Bool:
        out.emplace_back(name, value.as_bool() ? "t" : "f");
        break;
      case json::Value::Type::Number:
      case json::Value::Type::String:
        out.emplace_back(name, value.text());
        break;
      default:
        throw BadChange{what + ": column " + json::quote(name) + " is " +
                        std::string(json::to_string(value.type())) +
                        "; expected the column's PostgreSQL text as a string (or a number, "
                        "boolean or null)"};
    }
  }
  return out;
}

std::optional<Identity> parse_identity(std::string_view text, std::string* error) {
  Identity id;
  if (text == "default") {
    id.kind = Identity::Kind::Default;
    return id;
  }
  if (text == "full") {
    id.kind = Identity::Kind::Full;
    return id;
  }
  if (text.substr(0, 6) == "index:") {
    id.kind = Identity::Kind::Index;
    std::string_view cols = text.substr(6);
    std::size_t start = 0;
    while (start <= cols.size()) {
      std::size_t comma = cols.find(',', start);
      if (comma == std::string_view::npos) comma = cols.size();
      if (comma > start) id.columns.emplace_back(cols.substr(start, comma - start));
      start = comma + 1;
    }
    if (!id.columns.empty()) return id;
  }
  if (error) {
    if (text == "nothing")
      *error =
          "REPLICA IDENTITY NOTHING: PostgreSQL refuses UPDATE and DELETE on a published "
          "table without a replica identity; expected default, full or index:COLUMNS";
    else
      *error = "expected default, full or index:COLUMNS (e.g. index:tenant_id,id)";
  }
  return std::nullopt;
}

std::optional<ChangeSource> parse_source(std::string_view text) {
  if (text == "logical") return ChangeSource::Logical;
  if (text == "notify") return ChangeSource::Notify;
  if (text == "poll") return ChangeSource::Poll;
  return std::nullopt;
}

namespace {

// What the rules asked for, in order, per rule.
struct Recorder : rules::Sink {
  struct Fired {
    const rules::Rule* rule;
    std::vector<std::string> widened;
    std::vector<std::pair<rules::Action, std::string>> keys;
  };
  std::vector<Fired> fired_rules;
  void fired(const rules::Rule& r) override { fired_rules.push_back({&r, {}, {}}); }
  Fired& of(const rules::Rule& r) {
    if (fired_rules.empty() || fired_rules.back().rule != &r) fired_rules.push_back({&r, {}, {}});
    return fired_rules.back();
  }
  void emit(const rules::Rule& r, rules::Action a, std::string_view key) override {
    of(r).keys.emplace_back(a, std::string(key));
  }
  void widened(const rules::Rule& r, Unknown, std::string_view detail) override {
    of(r).widened.emplace_back(detail);
  }
};

const std::optional<std::string>* find(const ColumnValues& values, const std::string& c) {
  for (const auto& [name, v] : values)
    if (name == c) return &v;
  return nullptr;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

Explanation explain(const std::shared_ptr<const rules::RuleSet>& rules, const Change& change) {
  const rules::RuleSet& set = *rules;
  Explanation out;
  std::string err;
  auto name = rules::parse_table_name(change.table, &err);
  if (!name) throw BadChange{"--table '" + change.table + "': " + err};
  const Op op = change.op;
  if (change.old_row && (op == Op::Insert || op == Op::Truncate))
    throw BadChange{"--old: " + std::string(to_string(op)) + " has no old row"};
  if (change.new_row && (op == Op::Delete || op == Op::Truncate))
    throw BadChange{"--new: " + std::string(to_string(op)) + " has no new row"};
  const bool poll = change.source == ChangeSource::Poll;
  const bool notify = change.source == ChangeSource::Notify;
  if (notify && change.identity.kind != Identity::Kind::Unspecified)
    throw BadChange{
        "identity: the notify source's trigger sends the whole old row; the replica identity "
        "matters to the logical source only"};
  if (poll && change.old_row)
    throw BadChange{
        "old: the poll source sees only the row as it is now (an update's old row is its key, "
        "other old values unknown); leave old out"};
  if (poll && change.identity.kind == Identity::Kind::Full)
    throw BadChange{
        "identity full: the poll source reads no WAL; give the key with identity default and "
        "key, or index:COLUMNS"};
  if (notify && (op == Op::Update || op == Op::Delete) && !change.old_row)
    throw BadChange{"old: the notify source's trigger sends the whole old row of an " +
                    std::string(to_string(op)) + "; give it"};
  const ColumnValues no_values;
  const ColumnValues& old_values = change.old_row ? *change.old_row : no_values;
  const ColumnValues& new_values = change.new_row ? *change.new_row : no_values;

  std::string qualified = name->schema + "." + name->table;
  std::vector<std::string> needed = set.columns_needed(name->schema, name->table);
  if (set.rules_for(name->schema, name->table).empty()) {
    out.lines.push_back("# no rule names table " + qualified);
    return out;
  }
  // Columns: those the rules read, then any other given ones. A given column the rules do
  // not read, a typo away from one they read that is not given, is a mistake; other unread
  // columns are fine (a pasted row) and noted.
  TableInfo table;
  table.schema = name->schema;
  table.name = name->table;
  table.columns = needed;
  auto add_column = [&](const std::string& c, const std::string& flag, const ColumnValues& values) {
    if (table.column_index(c) >= 0) return;
    std::string near = rules::suggest(c, needed);
    if (!near.empty() && !find(values, near))
      throw BadChange{flag + ": no rule of " + qualified + " reads column '" + c +
                      "'; did you mean '" + near + "'?"};
    table.columns.push_back(c);
    auto in = [&](const std::vector<std::string>& v) {
      return std::find(v.begin(), v.end(), c) != v.end();
    };
    if (flag != "--key" && !in(change.key) && !in(change.identity.columns))
      out.lines.push_back("# note: no rule of " + qualified + " reads column '" + c + "'");
  };
  for (const auto& [c, v] : old_values) add_column(c, "--old", old_values);
  for (const auto& [c, v] : new_values) add_column(c, "--new", new_values);

  // The replica identity: which columns the WAL's old row carries.
  using Kind = Identity::Kind;
  Kind kind = notify ? Kind::Full : change.identity.kind;
  bool models_wal = kind != Kind::Unspecified || (op == Op::Update && !change.old_row) || poll;
  std::vector<std::string> key = kind == Kind::Index                ? change.identity.columns
                                 : !change.identity.columns.empty() ? change.identity.columns
                                                                    : change.key;
  if (kind == Kind::Full) key = table.columns;
  if (models_wal && key.empty() && (op == Op::Update || op == Op::Delete) &&
      (find(old_values, "id") || find(new_values, "id") || table.column_index("id") >= 0)) {
    key = {"id"};
    out.lines.push_back("# assuming the primary key is (id); give --key or --db to say otherwise");
  } else if (models_wal && key.empty() && (op == Op::Update || op == Op::Delete)) {
    out.lines.push_back(
        "# the primary key is not known (give --key or --db): every old value "
        "is unknown");
  }
  for (const auto& k : key) add_column(k, "--key", {});
  table.key.assign(table.columns.size(), false);
  for (const auto& k : key) table.key[static_cast<std::size_t>(table.column_index(k))] = true;

  std::deque<std::string> texts;
  auto image = [&](const ColumnValues& values, bool key_only, Unknown missing) {
    RowImage img;
    img.values.assign(table.columns.size(), Datum::unknown(missing));
    for (const auto& [c, v] : values) {
      auto i = static_cast<std::size_t>(table.column_index(c));
      if (key_only && !table.key[i]) continue;
      if (!v) {
        img.values[i] = Datum::null();
      } else {
        texts.push_back(*v);
        img.values[i] = Datum::value(texts.back());
      }
    }
    return img;
  };
  const char* ident = kind == Kind::Index ? "USING INDEX" : "DEFAULT";
  std::optional<RowImage> old_row;
  if (poll) {
    if (op == Op::Update) {
      old_row = image(new_values, true, Unknown::Polled);
      out.lines.push_back("# source poll: an update's old row is its key (" + join(key) +
                          ") as now; other old values unknown");
    } else if (op == Op::Delete || op == Op::Truncate) {
      out.lines.push_back("# source poll: a " + std::string(to_string(op)) +
                          " is seen only as rows gone: every rule of the table widens");
    }
  } else if (kind == Kind::Unspecified) {
    if (change.old_row) old_row = image(old_values, false, Unknown::Explicit);
  } else if (kind == Kind::Full) {
    if (op == Op::Update && !change.old_row)
      throw BadChange{
          "--identity full: the WAL carries the whole old row of an update; give "
          "--old"};
    if (op == Op::Update || op == Op::Delete) old_row = image(old_values, false, Unknown::Explicit);
  } else if (op == Op::Update && change.old_row) {
    bool key_changed = false;
    for (const auto& k : key) {
      auto o = find(old_values, k), n = find(new_values, k);
      if (o && n && *o != *n) key_changed = true;
    }
    std::vector<std::string> dropped;
    for (const auto& [c, v] : old_values)
      if (key_changed ? !table.key[static_cast<std::size_t>(table.column_index(c))]
                      : std::find(key.begin(), key.end(), c) == key.end())
        dropped.push_back(c);
    if (key_changed) {
      old_row = image(old_values, true, Unknown::NotInImage);
      if (!dropped.empty())
        out.lines.push_back("# REPLICA IDENTITY " + std::string(ident) + ": the key (" + join(key) +
                            ") changed, so the WAL carries its old value and no "
                            "other: old " +
                            join(dropped) + " unknown");
    } else if (!dropped.empty()) {
      out.lines.push_back("# REPLICA IDENTITY " + std::string(ident) + ": the key (" + join(key) +
                          ") did not change, so the WAL carries no old row: old " + join(dropped) +
                          " unknown");
    }
  } else if (op == Op::Delete) {
    old_row = image(old_values, true, Unknown::NotInImage);
    std::vector<std::string> dropped;
    for (const auto& [c, v] : old_values)
      if (!table.key[static_cast<std::size_t>(table.column_index(c))]) dropped.push_back(c);
    if (!dropped.empty())
      out.lines.push_back("# REPLICA IDENTITY " + std::string(ident) +
                          ": the WAL carries the deleted row's key (" + join(key) +
                          ") and no other value: old " + join(dropped) + " unknown");
  }
  RowImage new_row = image(new_values, false, Unknown::Explicit);
  for (const auto& c : change.unchanged_toast) {
    int i = table.column_index(c);
    if (i < 0 || op != Op::Update) continue;
    new_row.values[static_cast<std::size_t>(i)] = Datum::unknown(Unknown::UnchangedToast);
    out.lines.push_back("# " + c +
                        " is stored out of line (TOAST) and unchanged: the WAL does "
                        "not carry its new value");
  }
  if (op == Op::Delete && !old_row) old_row = image({}, false, Unknown::Explicit);
  ChangeEvent ev;
  ev.source = poll ? SourceKind::Poll : notify ? SourceKind::Notify : SourceKind::Explain;
  ev.op = op;
  ev.table = &table;
  if (old_row) ev.old_row = &*old_row;
  if (op == Op::Insert || op == Op::Update) ev.new_row = &new_row;

  rules::Engine engine(rules, rules::EngineOptions{change.key_prefix});
  Recorder rec;
  if (poll && (op == Op::Delete || op == Op::Truncate))
    engine.widen_table(name->schema, name->table, Unknown::Polled, rec);
  else
    engine.evaluate(ev, rec);
  if (rec.fired_rules.empty()) {
    out.lines.push_back("# no rule matched");
    return out;
  }
  static const char* kCommand[] = {"UNLINK", "SCAN-DELETE", "INCR"};
  std::set<std::pair<rules::Action, std::string>> printed;
  struct Message {
    std::set<std::string> tables;
    std::vector<std::string> lists[3];
  };
  std::map<std::string, Message> publish, stream;  // by channel, by stream key
  // The daemon's order (redis::Target): a transaction's deletes, exact and patterns, then its
  // bumps once every keyspace pass of it has ended, then its messages.
  auto print = [&](const Recorder::Fired& f, rules::Action action) {
    for (const auto& [a, k] : f.keys) {
      if (a != action) continue;
      auto i = static_cast<std::size_t>(a);
      if (printed.insert({a, k}).second) {
        out.commands.push_back(Command{kCommand[i], k, {}});
        out.lines.push_back(out.commands.back().line());
      }
      for (Message* m : {f.rule->publish.empty() ? nullptr : &publish[f.rule->publish],
                         f.rule->stream.empty() ? nullptr : &stream[f.rule->stream]}) {
        if (!m) continue;
        auto& list = m->lists[i];
        if (std::find(list.begin(), list.end(), k) == list.end()) list.push_back(k);
      }
    }
  };
  bool any_pattern = false, any_bump = false;
  for (const auto& f : rec.fired_rules) {
    out.rules.push_back(f.rule->name);
    out.lines.push_back("# rule " + f.rule->name + " matched");
    for (const auto& w : f.widened)
      out.lines.push_back("# widened: rule " + f.rule->name + ": " + w);
    print(f, rules::Action::Delete);
    print(f, rules::Action::DeletePattern);
    for (const auto& [a, k] : f.keys) {
      any_pattern = any_pattern || a == rules::Action::DeletePattern;
      any_bump = any_bump || a == rules::Action::Bump;
    }
    if (f.rule->redelete_after.count() > 0)
      out.lines.push_back("# rule " + f.rule->name + ": its deletes are sent again after " +
                          std::to_string(f.rule->redelete_after.count()) + "ms");
    if (!f.rule->publish.empty()) publish[f.rule->publish].tables.insert(qualified);
    if (!f.rule->stream.empty()) stream[f.rule->stream].tables.insert(qualified);
  }
  if (any_pattern && any_bump)
    out.lines.push_back("# bumps: once the keyspace passes above have ended");
  for (const auto& f : rec.fired_rules) print(f, rules::Action::Bump);
  // The daemon's message (publish_message); source and position are the transaction's there.
  // Streams get the same message as one entry (after the publishes, as the daemon sends them).
  for (const auto* messages : {&publish, &stream})
    for (const auto& [name, m] : *messages) {
      PublishContent content;
      content.tables = m.tables;
      content.keys = m.lists[0];
      content.patterns = m.lists[1];
      content.revisions = m.lists[2];
      out.commands.push_back(Command{messages == &publish ? "PUBLISH" : "XADD", name,
                                     publish_message("explain", "", content)});
      out.lines.push_back(out.commands.back().line());
    }
  return out;
}

}  // namespace pgbust::cli
