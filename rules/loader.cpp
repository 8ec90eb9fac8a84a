// Loading and validating YAML rule files into a RuleSet, with GCC-style diagnostics that
// point at the file, line and column (inside template and condition strings where possible).
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "digest.hpp"
#include "rule_impl.hpp"

namespace pgbust::rules {

using detail::ParseError;
using detail::RuleImpl;

std::string Diagnostic::str() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += warning ? ": warning: " : ": error: ";
  out += message;
  return out;
}

bool detail::Actions::uses_columns() const {
  for (const auto* list : {&deletes, &patterns, &bumps})
    for (const auto& t : *list)
      if (t.uses_columns) return true;
  return false;
}

namespace {

constexpr std::string_view kTopKeys[] = {"version", "rules"};

std::string too_large() {
  return "rules are too large: more than " + std::to_string(kMaxRulesBytes) + " bytes (" +
         std::to_string(kMaxRulesBytes >> 20) + " MiB), the limit for all rule files together";
}

constexpr std::string_view kRuleKeys[] = {
    "name",    "table",          "on",       "changed", "when",
    "delete",  "delete_pattern", "bump",     "publish", "redelete_after",
    "null_as", "fallback",       "timezone", "stream",  "stable"};
constexpr std::string_view kFallbackKeys[] = {"delete", "delete_pattern", "bump"};

std::string list_keys(const std::string_view* keys, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    if (i) out += i + 1 == n ? " or " : ", ";
    out += keys[i];
  }
  return out;
}

std::string_view kind_name(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "an undefined node";
  }
}

// One file being read: its text (to place columns inside quoted strings) and the diagnostics.
class FileReader {
 public:
  FileReader(std::string file, std::string_view text, std::vector<Diagnostic>& errors,
             std::vector<Diagnostic>& warnings, detail::ZoneCache& zones)
      : file_(std::move(file)), text_(text), errors_(errors), warnings_(warnings), zones_(zones) {}

  void read(std::vector<Rule>& out);

 private:
  std::string file_;
  std::string_view text_;
  std::vector<Diagnostic>& errors_;
  std::vector<Diagnostic>& warnings_;
  detail::ZoneCache& zones_;          // shared by every file of one rule set
  detail::ZoneContext zone_context_;  // of the rule being read

  Diagnostic at(const YAML::Mark& m, std::string msg) const {
    Diagnostic d;
    d.file = file_;
    if (!m.is_null()) {
      d.line = m.line + 1;
      d.column = m.column + 1;
    }
    d.message = std::move(msg);
    return d;
  }
  void error(const YAML::Mark& m, std::string msg) { errors_.push_back(at(m, std::move(msg))); }
  void warn(const YAML::Mark& m, std::string msg) {
    Diagnostic d = at(m, std::move(msg));
    d.warning = true;
    warnings_.push_back(std::move(d));
  }
  // The mark of byte `offset` of a scalar's value, following the source text through
  // quotes and escapes where it can.
  YAML::Mark inside(const YAML::Node& scalar, std::size_t offset) const;
  void error_in(const YAML::Node& scalar, const ParseError& e, const std::string& what) {
    errors_.push_back(at(inside(scalar, e.offset), what + ": " + e.message));
  }

  // Checks a mapping's keys: unknown (with a suggestion) and duplicate keys are errors.
  std::map<std::string, std::pair<YAML::Node, YAML::Node>> keys(const YAML::Node& map,
                                                                const std::string_view* known,
                                                                std::size_t n, const char* where);
  bool scalar(const YAML::Node& n, const std::string& key, const char* expected);
  std::vector<YAML::Node> scalar_list(const YAML::Node& n, const std::string& key,
                                      const char* expected);
  void templates(const YAML::Node& n, const std::string& key, detail::Slots& slots,
                 std::vector<detail::Template>& out);
  void rule(const YAML::Node& item, std::vector<Rule>& out);
  void check_images(const Rule& r, const YAML::Node& item);
};

YAML::Mark FileReader::inside(const YAML::Node& scalar, std::size_t offset) const {
  YAML::Mark m = scalar.Mark();
  if (m.is_null() || m.pos < 0 || static_cast<std::size_t>(m.pos) >= text_.size()) return m;
  std::size_t r = static_cast<std::size_t>(m.pos);
  char quote = text_[r];
  if (quote == '|' || quote == '>') return m;  // block scalar: the start is the best we know
  const std::string& value = scalar.Scalar();
  if (quote == '"' || quote == '\'') {
    ++r;
    ++m.column;
  } else {
    quote = 0;
  }
  std::size_t v = 0;
  while (v < offset && v < value.size() && r < text_.size()) {
    if (text_[r] == '\n') break;  // folded lines: stop at the end of the first line
    if (quote == '\'' && text_[r] == '\'' && r + 1 < text_.size() && text_[r + 1] == '\'') {
      r += 2;
      m.column += 2;
      ++v;
      continue;
    }
    if (quote == '"' && text_[r] == '\\' && r + 1 < text_.size()) {
      char e = text_[r + 1];
      std::size_t len = e == 'x' ? 4 : e == 'u' ? 6 : e == 'U' ? 10 : 2;
      r += len;
      m.column += static_cast<int>(len);
      ++v;
      continue;
    }
    if (text_[r] != value[v]) break;
    ++r;
    ++m.column;
    ++v;
  }
  m.pos = static_cast<int>(r);
  return m;
}

std::map<std::string, std::pair<YAML::Node, YAML::Node>> FileReader::keys(
    const YAML::Node& map, const std::string_view* known, std::size_t n, const char* where) {
  std::map<std::string, std::pair<YAML::Node, YAML::Node>> out;
  for (auto it = map.begin(); it != map.end(); ++it) {
    YAML::Node k = it->first;
    if (!k.IsScalar()) {
      error(k.Mark(), std::string("expected a key name in ") + where + ", found " +
                          std::string(kind_name(k)));
      continue;
    }
    const std::string& name = k.Scalar();
    if (std::find(known, known + n, name) == known + n) {
      std::string hint = detail::closest(name, std::vector<std::string_view>(known, known + n));
      error(k.Mark(), "unknown key '" + name + "' in " + where +
                          (hint.empty() ? ";" : "; did you mean '" + hint + "'?") + " expected " +
                          list_keys(known, n));
      continue;
    }
    auto [pos, inserted] = out.emplace(name, std::make_pair(k, it->second));
    if (!inserted) {
      YAML::Mark first = pos->second.first.Mark();
      error(k.Mark(), "duplicate key '" + name + "' in " + where + "; first given at line " +
                          std::to_string(first.line + 1));
    }
  }
  return out;
}

bool FileReader::scalar(const YAML::Node& n, const std::string& key, const char* expected) {
  if (n.IsScalar()) return true;
  error(n.Mark(), key + ": expected " + expected + ", found " + std::string(kind_name(n)));
  return false;
}

std::vector<YAML::Node> FileReader::scalar_list(const YAML::Node& n, const std::string& key,
                                                const char* expected) {
  std::vector<YAML::Node> out;
  if (n.IsScalar()) {
    out.push_back(n);
  } else if (n.IsSequence()) {
    if (n.size() == 0) error(n.Mark(), key + ": empty list; expected " + expected);
    for (const auto& item : n) {
      if (item.IsScalar())
        out.push_back(item);
      else
        error(item.Mark(),
              key + ": expected " + expected + ", found " + std::string(kind_name(item)));
    }
  } else {
    error(n.Mark(), key + ": expected " + expected + " or a list of them, found " +
                        std::string(kind_name(n)));
  }
  return out;
}

void FileReader::templates(const YAML::Node& n, const std::string& key, detail::Slots& slots,
                           std::vector<detail::Template>& out) {
  for (const YAML::Node& item : scalar_list(n, key, "a key template string")) {
    if (item.Scalar().size() > kMaxTemplateBytes) {
      error(item.Mark(), key + ": template is " + std::to_string(item.Scalar().size()) +
                             " bytes; the limit is " + std::to_string(kMaxTemplateBytes));
      continue;
    }
    detail::Template t;
    if (auto e = detail::parse_template(item.Scalar(), slots, t, zone_context_)) {
      error_in(item, *e, key);
      continue;
    }
    out.push_back(std::move(t));
  }
}

bool uses_rule_zone(const std::vector<detail::Part>& parts) {
  for (const detail::Part& p : parts) {
    for (const detail::Filter& f : p.filters)
      if (f.zone_from_rule) return true;
    if (uses_rule_zone(p.group)) return true;
  }
  return false;
}

// Whether some filter of the rule's templates takes its zone from the rule's `timezone:`.
bool uses_rule_zone(const RuleImpl& impl) {
  for (const detail::Actions* a : {&impl.actions, impl.fallback ? &*impl.fallback : nullptr}) {
    if (!a) continue;
    for (const auto* list : {&a->deletes, &a->patterns, &a->bumps})
      for (const auto& t : *list)
        if (uses_rule_zone(t.parts)) return true;
  }
  return false;
}

std::optional<TableName> table_name(std::string_view s, std::optional<ParseError>& err) {
  std::size_t i = 0;
  auto first = detail::parse_identifier(s, i, err);
  std::optional<std::string> second;
  if (!err && first && i < s.size() && s[i] == '.') {
    ++i;
    second = detail::parse_identifier(s, i, err);
    if (!err && !second) err = ParseError{i, "expected a table name after '.'"};
  }
  if (!err && !first) err = ParseError{0, "expected a table name (schema.table or table)"};
  if (!err && i != s.size())
    err = ParseError{i,
                     std::string("unexpected '") + s[i] + "' in table name; expected schema.table"};
  if (err) return std::nullopt;
  return second ? TableName{*first, *second} : TableName{"public", *first};
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
  std::size_t i = 0;
  std::int64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9' && v < 100000000) v = v * 10 + (s[i++] - '0');
  if (i == 0) return std::nullopt;
  std::string_view unit = s.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  if (unit == "ms") return std::chrono::milliseconds(v);
  if (unit == "s") return std::chrono::milliseconds(v * 1000);
  if (unit == "m" || unit == "min") return std::chrono::milliseconds(v * 60000);
  return std::nullopt;
}

void FileReader::rule(const YAML::Node& item, std::vector<Rule>& out) {
  if (!item.IsMap()) {
    error(item.Mark(), "rules: expected a rule (a mapping with name, table and actions), found " +
                           std::string(kind_name(item)));
    return;
  }
  std::size_t errors_before = errors_.size();
  auto k = keys(item, kRuleKeys, std::size(kRuleKeys), "a rule");
  auto impl = std::make_shared<RuleImpl>();
  Rule r;
  r.file = file_;
  r.line = item.Mark().line + 1;
  r.column = item.Mark().column + 1;

  auto get = [&](const char* key) -> const YAML::Node* {
    auto it = k.find(key);
    return it == k.end() ? nullptr : &it->second.second;
  };
  zone_context_ = detail::ZoneContext{&zones_, nullptr};
  if (const YAML::Node* n = get("timezone")) {  // before the templates, whose filters use it
    if (scalar(*n, "timezone", "a time zone name like Europe/Berlin")) {
      std::string why;
      zone_context_.rule_zone = zones_.get(n->Scalar(), why);
      if (zone_context_.rule_zone)
        impl->timezone = n->Scalar();
      else
        error(n->Mark(), "timezone: " + why);
    }
    // Already reported: keep the filters from also saying they have no zone.
    if (!zone_context_.rule_zone) zone_context_.rule_zone = detail::Zone::fixed("UTC", 0);
  }
  if (const YAML::Node* n = get("name")) {
    if (scalar(*n, "name", "a rule name")) {
      r.name = n->Scalar();
      if (r.name.empty()) error(n->Mark(), "name: empty rule name");
      for (char c : r.name)
        if (static_cast<unsigned char>(c) < 0x20) {
          error(n->Mark(), "name: control character in rule name");
          break;
        }
    }
  } else {
    error(item.Mark(), "rule has no 'name'; expected a unique name for logs, metrics and explain");
  }
  if (const YAML::Node* n = get("table")) {
    if (scalar(*n, "table", "a table name (schema.table or table)")) {
      std::optional<ParseError> err;
      auto name = table_name(n->Scalar(), err);
      if (err) {
        error_in(*n, *err, "table");
      } else {
        r.schema = name->schema;
        r.table = name->table;
      }
    }
  } else {
    error(item.Mark(), "rule has no 'table'; expected schema.table or table");
  }
  if (const YAML::Node* n = get("on")) {
    impl->ops = 0;
    for (const YAML::Node& op : scalar_list(*n, "on", "insert, update, delete or truncate")) {
      auto parsed = parse_op(op.Scalar());
      if (!parsed) {
        std::string hint = detail::closest(op.Scalar(), {"insert", "update", "delete", "truncate"});
        error(op.Mark(), "on: unknown operation '" + op.Scalar() + "'" +
                             (hint.empty() ? ";" : "; did you mean '" + hint + "'?") +
                             " expected insert, update, delete or truncate");
        continue;
      }
      impl->ops |= detail::op_bit(*parsed);
    }
    if (impl->ops == 0) impl->ops = detail::kAllOps;  // already reported
  }
  if (const YAML::Node* n = get("changed")) {
    for (const YAML::Node& c : scalar_list(*n, "changed", "a column name")) {
      std::optional<ParseError> err;
      auto id = detail::identifier_from(c.Scalar(), err);
      if (err) {
        error_in(c, *err, "changed");
        continue;
      }
      int slot = impl->slots.intern(*id);
      if (std::find(impl->changed.begin(), impl->changed.end(), slot) == impl->changed.end())
        impl->changed.push_back(slot);
    }
    if (!(impl->ops & detail::op_bit(Op::Update)))
      error(k["changed"].first.Mark(),
            "changed: only applies to updates, but this rule's 'on' does not include update");
  }
  if (const YAML::Node* n = get("when")) {
    if (scalar(*n, "when", "a condition string, e.g. \"new.status <> 'draft'\"")) {
      detail::Condition c;
      if (auto e = detail::parse_condition(n->Scalar(), impl->slots, c)) {
        error_in(*n, *e, "when");
      } else {
        for (const auto& node : c.nodes)
          if (node.kind == detail::CondNode::Kind::Cmp &&
              (node.a.kind == detail::Operand::Kind::Null ||
               node.b.kind == detail::Operand::Kind::Null))
            warn(n->Mark(),
                 "when: a comparison with NULL is never true (SQL); use IS NULL or IS NOT NULL");
        impl->when = std::move(c);
      }
    }
  }
  if (const YAML::Node* n = get("delete"))
    templates(*n, "delete", impl->slots, impl->actions.deletes);
  if (const YAML::Node* n = get("delete_pattern"))
    templates(*n, "delete_pattern", impl->slots, impl->actions.patterns);
  if (const YAML::Node* n = get("bump")) templates(*n, "bump", impl->slots, impl->actions.bumps);
  if (const YAML::Node* n = get("publish")) {
    if (scalar(*n, "publish", "a channel name")) {
      r.publish = n->Scalar();
      if (r.publish.empty()) error(n->Mark(), "publish: empty channel name");
    }
  }
  if (const YAML::Node* n = get("stream")) {
    if (scalar(*n, "stream", "a stream key name")) {
      r.stream = n->Scalar();
      if (r.stream.empty()) error(n->Mark(), "stream: empty stream name");
    }
  }
  if (const YAML::Node* n = get("redelete_after")) {
    if (scalar(*n, "redelete_after", "a duration like 500ms or 2s")) {
      auto d = parse_duration(n->Scalar());
      if (!d || d->count() <= 0 || *d > std::chrono::hours(1))
        error(n->Mark(), "redelete_after: '" + n->Scalar() +
                             "' is not a duration; expected a number with ms, s or m, from 1ms to "
                             "1 hour (e.g. 500ms, 2s)");
      else
        r.redelete_after = *d;
    }
  }
  if (const YAML::Node* n = get("null_as")) {
    if (n->IsNull())
      error(n->Mark(),
            "null_as: expected the text the application writes for NULL (quote it: null_as: "
            "\"null\")");
    else if (scalar(*n, "null_as", "a string"))
      impl->null_as = n->Scalar();
  }
  if (const YAML::Node* n = get("fallback")) {
    if (!n->IsMap()) {
      error(n->Mark(), "fallback: expected a mapping with delete, delete_pattern or bump, found " +
                           std::string(kind_name(*n)));
    } else {
      auto fk = keys(*n, kFallbackKeys, std::size(kFallbackKeys), "fallback");
      detail::Actions fb;
      if (fk.count("delete"))
        templates(fk["delete"].second, "fallback.delete", impl->slots, fb.deletes);
      if (fk.count("delete_pattern"))
        templates(fk["delete_pattern"].second, "fallback.delete_pattern", impl->slots, fb.patterns);
      if (fk.count("bump")) templates(fk["bump"].second, "fallback.bump", impl->slots, fb.bumps);
      if (fb.empty() && fk.size() == std::size_t(0))
        error(n->Mark(), "fallback: no action; expected delete, delete_pattern or bump");
      impl->fallback = std::move(fb);
    }
  }
  if (const YAML::Node* n = get("stable")) {
    // After the templates: a stable column no key reads changes nothing, which is worth saying.
    for (const YAML::Node& c : scalar_list(*n, "stable", "a column name")) {
      std::optional<ParseError> err;
      auto id = detail::identifier_from(c.Scalar(), err);
      if (err) {
        error_in(c, *err, "stable");
        continue;
      }
      if (std::find(r.stable.begin(), r.stable.end(), *id) != r.stable.end()) continue;
      const auto& names = impl->slots.names;
      if (std::find(names.begin(), names.end(), *id) == names.end())
        warn(c.Mark(), "stable: this rule reads no column '" + *id + "'; it changes nothing");
      r.stable.push_back(*id);
    }
    if (!(impl->ops & detail::op_bit(Op::Update)))
      error(k["stable"].first.Mark(),
            "stable: only applies to updates, but this rule's 'on' does not include update");
  }
  bool has_action =
      get("delete") || get("delete_pattern") || get("bump") || get("publish") || get("stream");
  if (!has_action)
    error(item.Mark(),
          "rule has no action; expected at least one of delete, delete_pattern, "
          "bump, publish or stream");
  if (!impl->timezone.empty() && !uses_rule_zone(*impl))
    warn(k["timezone"].first.Mark(),
         "timezone: no date, month, week_start or tz filter of this rule uses it (a filter "
         "with its own :ZONE does not)");
  r.impl = impl;
  // A rule with errors still takes part in the duplicate-name check; no RuleSet is built.
  if (errors_.size() == errors_before) check_images(r, item);
  out.push_back(std::move(r));
}

// Warnings and errors about which row images a rule can read for the ops it runs on.
void FileReader::check_images(const Rule& r, const YAML::Node& item) {
  const RuleImpl& impl = *r.impl;
  auto has = [&](Op op) { return (impl.ops & detail::op_bit(op)) != 0; };
  bool old_possible = has(Op::Update) || has(Op::Delete) || has(Op::Truncate);
  bool new_possible = has(Op::Insert) || has(Op::Update) || has(Op::Truncate);
  bool uses_old = impl.when && impl.when->uses_old, uses_new = impl.when && impl.when->uses_new;
  for (const detail::Actions* a : {&impl.actions, impl.fallback ? &*impl.fallback : nullptr}) {
    if (!a) continue;
    for (const auto* list : {&a->deletes, &a->patterns, &a->bumps})
      for (const auto& t : *list) {
        uses_old = uses_old || t.uses_old;
        uses_new = uses_new || t.uses_new;
      }
  }
  if (uses_old && !old_possible)
    errors_.push_back(at(
        item.Mark(),
        "rule '" + r.name + "' reads old.* values but only runs on insert, which has no old row"));
  if (uses_new && !new_possible)
    errors_.push_back(at(
        item.Mark(),
        "rule '" + r.name + "' reads new.* values but only runs on delete, which has no new row"));
  if (impl.when && impl.when->uses_new && !impl.when->uses_row && !impl.when->uses_old &&
      has(Op::Delete))
    warn(item.Mark(), "rule '" + r.name +
                          "': 'when' reads only new.* values, which a delete does not have, so the "
                          "rule fires on every delete; use unqualified columns (the old row on "
                          "delete) to filter deletes too");
  if (impl.when && impl.when->uses_old && !impl.when->uses_row && !impl.when->uses_new &&
      has(Op::Insert))
    warn(item.Mark(),
         "rule '" + r.name +
             "': 'when' reads only old.* values, which an insert does not have, so the "
             "rule fires on every insert; use unqualified columns (the new row on "
             "insert) to filter inserts too");
  if (impl.fallback && !impl.actions.uses_columns())
    warn(item.Mark(),
         "rule '" + r.name +
             "': 'fallback' never runs: no key template of this rule reads a row value");
  for (const auto& t : impl.actions.bumps)
    if (t.uses_columns && !impl.fallback)
      warn(item.Mark(),
           "rule '" + r.name + "': bump '" + t.text +
               "' reads row values; when one is unknown (TRUNCATE, old value not in the "
               "WAL, NOTIFY gap) pgbust deletes every counter matching the pattern; add "
               "'fallback:' to choose what to do instead");
}

void FileReader::read(std::vector<Rule>& out) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text_));
  } catch (const YAML::Exception& e) {
    error(e.mark, "YAML syntax error: " + e.msg);
    return;
  }
  try {
    if (root.IsNull()) {
      Diagnostic d =
          at(YAML::Mark::null_mark(), "empty rule file; expected 'version: 1' and 'rules:'");
      errors_.push_back(std::move(d));
      return;
    }
    if (!root.IsMap()) {
      error(root.Mark(), "expected a mapping with 'version: 1' and 'rules:', found " +
                             std::string(kind_name(root)));
      return;
    }
    auto k = keys(root, kTopKeys, std::size(kTopKeys), "the rule file");
    if (!k.count("version")) {
      error(root.Mark(), "missing 'version: 1' (the rule language version)");
    } else {
      const YAML::Node& v = k["version"].second;
      if (!v.IsScalar() || v.Scalar() != "1")
        error(v.Mark(), "version: unsupported rule language version '" +
                            (v.IsScalar() ? v.Scalar() : std::string(kind_name(v))) +
                            "'; expected 1");
    }
    if (!k.count("rules")) {
      error(root.Mark(), "missing 'rules:' (a list of rules)");
      return;
    }
    const YAML::Node& rules = k["rules"].second;
    if (!rules.IsSequence()) {
      error(rules.Mark(),
            "rules: expected a list of rules, found " + std::string(kind_name(rules)));
      return;
    }
    if (rules.size() == 0) warn(rules.Mark(), "rules: empty list; this file invalidates nothing");
    for (const auto& item : rules) rule(item, out);
  } catch (const YAML::Exception& e) {
    error(e.mark, "cannot read rule file: " + e.msg);
  }
}

std::string canonical(const Rule& r) {
  const RuleImpl& impl = *r.impl;
  std::ostringstream o;
  auto list = [&](const char* tag, const std::vector<detail::Template>& ts) {
    o << tag << ts.size() << '\x1f';
    for (const auto& t : ts) o << t.text << '\x1f';
  };
  o << r.name << '\x1f' << r.schema << '\x1f' << r.table << '\x1f' << int(impl.ops) << '\x1f';
  o << "changed" << impl.changed.size() << '\x1f';
  for (int s : impl.changed) o << impl.slots.names[static_cast<std::size_t>(s)] << '\x1f';
  o << "when" << (impl.when ? impl.when->text : "\x01") << '\x1f';
  list("d", impl.actions.deletes);
  list("p", impl.actions.patterns);
  list("b", impl.actions.bumps);
  if (impl.fallback) {
    list("fd", impl.fallback->deletes);
    list("fp", impl.fallback->patterns);
    list("fb", impl.fallback->bumps);
  }
  o << "pub" << r.publish << '\x1f' << "re" << r.redelete_after.count() << '\x1f';
  o << "null" << (impl.null_as ? "=" + *impl.null_as : "\x01");
  if (!impl.timezone.empty()) o << '\x1f' << "tz" << impl.timezone;  // older hashes unchanged
  if (!r.stream.empty()) o << '\x1f' << "st" << r.stream;
  if (!r.stable.empty()) {  // older hashes unchanged
    o << '\x1f' << "stable";
    for (const auto& c : r.stable) o << c << '\x1f';
  }
  o << '\x1e';
  return o.str();
}

LoadResult finish(std::vector<Rule> rules, std::vector<Diagnostic> errors,
                  std::vector<Diagnostic> warnings) {
  std::map<std::string, const Rule*> seen;
  for (const Rule& r : rules) {
    if (r.name.empty()) continue;  // reported already
    auto [it, inserted] = seen.emplace(r.name, &r);
    if (!inserted) {
      Diagnostic d;
      d.file = r.file;
      d.line = r.line;
      d.column = r.column;
      d.message = "duplicate rule name '" + r.name + "'; first defined at " + it->second->file +
                  ":" + std::to_string(it->second->line) + ":" + std::to_string(it->second->column);
      errors.push_back(std::move(d));
    }
  }
  LoadResult result;
  result.errors = std::move(errors);
  result.warnings = std::move(warnings);
  if (!result.errors.empty()) return result;
  auto set = std::make_shared<RuleSet>();
  std::string all;
  for (const Rule& r : rules) all += canonical(r);
  set->hash_.clear();
  detail::append_sha256_hex(set->hash_, all, 8);
  set->rules_ = std::move(rules);
  result.rules = std::move(set);
  return result;
}

}  // namespace

std::optional<TableName> parse_table_name(std::string_view text, std::string* error) {
  std::optional<ParseError> err;
  auto name = table_name(text, err);
  if (err && error) *error = err->message;
  return name;
}

std::string suggest(std::string_view word, const std::vector<std::string>& candidates) {
  return detail::closest(word, std::vector<std::string_view>(candidates.begin(), candidates.end()));
}

LoadResult RuleSet::parse(std::string_view yaml, const std::string& file) {
  std::vector<Rule> rules;
  std::vector<Diagnostic> errors, warnings;
  if (yaml.size() > kMaxRulesBytes) {
    Diagnostic d;
    d.file = file;
    d.message = too_large();
    errors.push_back(std::move(d));
    return finish(std::move(rules), std::move(errors), std::move(warnings));
  }
  detail::ZoneCache zones;
  FileReader(file, yaml, errors, warnings, zones).read(rules);
  return finish(std::move(rules), std::move(errors), std::move(warnings));
}

LoadResult RuleSet::load(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::vector<Rule> rules;
  std::vector<Diagnostic> errors, warnings;
  auto fail = [&](const std::string& file, const std::string& msg) {
    Diagnostic d;
    d.file = file;
    d.message = msg;
    errors.push_back(std::move(d));
  };
  std::error_code ec;
  detail::ZoneCache zones;
  std::vector<fs::path> files;
  if (fs::is_directory(path, ec)) {
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      auto ext = it->path().extension();
      if ((ext == ".yaml" || ext == ".yml") && it->is_regular_file(ec)) files.push_back(it->path());
    }
    if (ec) fail(path.string(), "cannot read rule directory: " + ec.message());
    std::sort(files.begin(), files.end(),
              [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
    if (!ec && files.empty())
      fail(path.string(), "no rule files (*.yaml or *.yml) in this directory");
  } else {
    files.push_back(path);
  }
  std::size_t total = 0;  // bytes of every file so far: the cap is on the whole rule set
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string text;
    // Read at most one byte past what is left under the cap (a size from stat could lie:
    // a FIFO, /dev/zero, a file still growing).
    std::size_t room = kMaxRulesBytes - total;
    if (in) {
      char buf[65536];
      while (text.size() <= room && in.read(buf, sizeof buf).gcount() > 0)
        text.append(buf, static_cast<std::size_t>(in.gcount()));
    }
    if (!in.eof() && (!in || in.bad()) && text.size() <= room) {
      std::error_code exists_ec;
      fail(f.string(), fs::exists(f, exists_ec)
                           ? "cannot read rule file"
                           : "cannot read rule file: no such file or directory");
      continue;
    }
    if (text.size() > room) {
      fail(f.string(), too_large() + (total ? " (counting the files before this one)" : ""));
      break;
    }
    total += text.size();
    FileReader(f.string(), text, errors, warnings, zones).read(rules);
  }
  return finish(std::move(rules), std::move(errors), std::move(warnings));
}

std::vector<std::string> RuleSet::tables() const {
  std::set<std::string> out;
  for (const Rule& r : rules_) out.insert(r.schema + "." + r.table);
  return {out.begin(), out.end()};
}

std::vector<const Rule*> RuleSet::rules_for(std::string_view schema, std::string_view table) const {
  std::vector<const Rule*> out;
  for (const Rule& r : rules_)
    if (r.schema == schema && r.table == table) out.push_back(&r);
  return out;
}

std::vector<std::string> RuleSet::columns_needed(std::string_view schema,
                                                 std::string_view table) const {
  std::set<std::string> out;
  for (const Rule* r : rules_for(schema, table))
    for (const auto& name : r->impl->slots.names) out.insert(name);
  return {out.begin(), out.end()};
}

std::vector<OldValueNeed> RuleSet::old_values_needed(std::string_view schema,
                                                     std::string_view table) const {
  std::vector<OldValueNeed> out;
  auto need = [&](const Rule* r, int slot, bool widens) {
    const std::string& col = r->impl->slots.names[static_cast<std::size_t>(slot)];
    for (auto& n : out)
      if (n.rule == r && n.column == col) {
        n.widens = n.widens || widens;
        return;
      }
    out.push_back(OldValueNeed{r, col, widens});
  };
  for (const Rule* r : rules_for(schema, table)) {
    const RuleImpl& impl = *r->impl;
    bool update = impl.ops & detail::op_bit(Op::Update);
    bool old_ops = update || (impl.ops & detail::op_bit(Op::Delete));
    if (!old_ops) continue;
    for (const detail::Actions* a : {&impl.actions, impl.fallback ? &*impl.fallback : nullptr}) {
      if (!a) continue;
      for (const auto* list : {&a->deletes, &a->patterns, &a->bumps})
        for (const auto& t : *list)
          for (const auto& p : t.parts)
            detail::for_each_ref(p, [&](const detail::ColumnRef& ref) {
              if (ref.image != detail::Image::New) need(r, ref.slot, true);
            });
    }
    if (impl.when)
      for (const auto& node : impl.when->nodes) {
        for (const detail::Operand* o : {&node.a, &node.b})
          if (o->kind == detail::Operand::Kind::Column && o->ref.image != detail::Image::New)
            need(r, o->ref.slot, false);
        for (const auto& o : node.list)
          if (o.kind == detail::Operand::Kind::Column && o.ref.image != detail::Image::New)
            need(r, o.ref.slot, false);
      }
    if (update)
      for (int s : impl.changed) need(r, s, false);
  }
  return out;
}

}  // namespace pgbust::rules
