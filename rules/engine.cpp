// The per-change hot path: bind table layouts to rules, resolve row images, test op /
// changed / when, render keys (escaping, widening, fallback) and hand them to a Sink.
#include <algorithm>
#include <optional>
#include <unordered_map>

#include "rule_impl.hpp"

namespace pgbust::rules {

using namespace detail;

std::string_view to_string(Action a) {
  switch (a) {
    case Action::Delete:
      return "delete";
    case Action::DeletePattern:
      return "delete_pattern";
    case Action::Bump:
      return "bump";
  }
  return "?";
}

void append_glob_escaped(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
}

std::string glob_escape(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 4);
  append_glob_escaped(out, value);
  return out;
}

bool fires_on(const Rule& rule, Op op) {
  return (rule.impl->ops & op_bit(op)) != 0;
}

IdentityCost default_identity_cost(const Rule& rule, const std::vector<std::string>& key_columns,
                                   bool for_update) {
  const RuleImpl& impl = *rule.impl;
  IdentityCost cost;
  if (!(impl.ops & (op_bit(Op::Update) | op_bit(Op::Delete)))) return cost;
  auto add = [](std::vector<std::string>& list, const std::string& item) {
    for (const auto& x : list)
      if (x == item) return;
    list.push_back(item);
  };
  auto unknown_ref = [&](const ColumnRef& r) {
    if (r.image == Image::New) return false;
    const std::string& col = impl.slots.names[static_cast<std::size_t>(r.slot)];
    for (const auto& k : key_columns)
      if (k == col) return false;
    if (for_update)
      for (const auto& k : rule.stable)
        if (k == col) return false;
    return true;
  };
  auto unknown = [&](const Part& p) {  // a group is unknown when one value inside is
    bool any = false;
    for_each_ref(p, [&](const ColumnRef& r) { any = any || unknown_ref(r); });
    return any;
  };
  const std::pair<const std::vector<Template>*, bool> lists[] = {
      {&impl.actions.deletes, false}, {&impl.actions.patterns, true}, {&impl.actions.bumps, false}};
  for (const auto& [list, is_pattern] : lists)
    for (const Template& t : *list) {
      bool widens = false;
      for (const Part& p : t.parts)
        for_each_ref(p, [&](const ColumnRef& r) {
          if (!unknown_ref(r)) return;
          widens = true;
          add(cost.columns, impl.slots.names[static_cast<std::size_t>(r.slot)]);
        });
      if (!widens) continue;
      if (impl.fallback) {
        cost.fallback = true;
        continue;
      }
      std::string pattern;
      for (const Part& p : t.parts) {
        if (!p.placeholder && is_pattern)
          pattern.append(p.literal);
        else if (!p.placeholder)
          append_glob_escaped(pattern, p.literal);
        else if (unknown(p))
          pattern.push_back('*');
        else
          pattern.append(p.source);
      }
      add(cost.patterns, pattern);
    }
  return cost;
}

namespace {

// What one rule sees of one event: per-slot values of each image.
struct EventView {
  std::optional<Op> op;  // nullopt: widening a whole rule, any op
  bool has_old = false, has_new = false;
  bool whole = false;                       // every value unknown (TRUNCATE, widen_rule)
  Image ctx[2] = {Image::New, Image::New};  // images unqualified columns read
  int nctx = 1;
  const Datum* old_v = nullptr;  // per slot
  const Datum* new_v = nullptr;
};

class EventValues : public ValueSource {
 public:
  EventValues(const EventView& e, Image ctx) : e_(e), ctx_(ctx) {}
  CondValue get(const ColumnRef& r) const override {
    Image im = r.image == Image::Row ? ctx_ : r.image;
    if (!(im == Image::Old ? e_.has_old : e_.has_new)) return {CondValue::State::Null, {}};
    const Datum& d = (im == Image::Old ? e_.old_v : e_.new_v)[r.slot];
    switch (d.state) {
      case Datum::State::Unknown:
        return {CondValue::State::Unknown, {}};
      case Datum::State::Null:
        return {CondValue::State::Null, {}};
      case Datum::State::Value:
        break;
    }
    return {CondValue::State::Text, d.text};
  }

 private:
  const EventView& e_;
  Image ctx_;
};

bool is_toast(const Datum& d) {
  return d.state == Datum::State::Unknown && d.why == Unknown::UnchangedToast;
}

bool differs(const Datum& a, const Datum& b) {
  if (is_toast(a) || is_toast(b)) return false;  // 'unchanged TOAST' means unchanged
  if (a.state == Datum::State::Unknown || b.state == Datum::State::Unknown) return true;
  if (a.state != b.state) return true;
  return a.state == Datum::State::Value && a.text != b.text;
}

// Why a placeholder's value is not known, for the widening report.
struct Note {
  Image image;
  int slot;  // -1: not a column (${op}, a group, metadata): `source` names it
  Unknown why;
  std::string failed;       // a filter that could not read the value
  std::string_view source;  // the placeholder as written (lives in the rule)
};

// One placeholder's value: its text, no key at all (NULL without null_as, or no such row),
// or unknown (the key widens).
enum class Resolved : std::uint8_t { Text, Skip, Unknown };

}  // namespace

struct Engine::Impl {
  struct BoundRule {
    const Rule* rule;
    std::vector<int> index;    // slot -> column index in the table, -1 when missing
    std::vector<char> key;     // slot -> column is part of the replica identity
    std::vector<char> stable;  // slot -> the rule declares the column stable
  };
  struct Binding {
    std::uint64_t generation = 0;
    std::string schema, name;
    std::vector<BoundRule> rules;
  };

  std::string prefix, prefix_glob;
  // By schema + '\0' + table: names may contain dots, never NUL.
  std::unordered_map<std::string, std::vector<const Rule*>> by_table;
  std::unordered_map<const TableInfo*, Binding> cache;

  // Buffers reused per event, so the hot path does not allocate once warmed up. One per
  // nesting level: a Sink may call back into the engine (the pipeline widens a rule from
  // inside emit()), and the inner call must not clobber the outer one's state.
  struct State {
    std::vector<Datum> old_v, new_v;  // per slot
    std::vector<std::string> part_text;
    std::vector<char> part_unknown;
    std::string key, scratch;
    std::vector<std::pair<Action, std::string>> emitted;  // this rule's keys for this event
    std::size_t n_emitted = 0;
    std::vector<Note> notes, pending;
    bool need_fallback = false, widened_pattern = false;
    // Per group nesting level: the sub-template's text, and one placeholder's value in it.
    std::vector<std::string> group_text = std::vector<std::string>(kMaxGroupDepth + 1);
    std::vector<std::string> group_value = std::vector<std::string>(kMaxGroupDepth + 1);
  };
  std::vector<std::unique_ptr<State>> states;
  std::size_t depth = 0;

  class Use {  // takes the next free State for the duration of one call
   public:
    explicit Use(Impl& m) : m_(m) {
      if (m_.depth == m_.states.size()) m_.states.push_back(std::make_unique<State>());
      s_ = m_.states[m_.depth++].get();
    }
    ~Use() { --m_.depth; }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    State& operator*() const { return *s_; }

   private:
    Impl& m_;
    State* s_;
  };

  const Binding& bind(const TableInfo& t);
  bool run(State& st, const Rule& rule, const EventView& e, Sink& sink);
  bool widen(const Rule& rule, Unknown why, Sink& sink);
  void render_list(State& st, const Rule& rule, const EventView& e,
                   const std::vector<Template>& list, Action action, bool allow_fallback,
                   Sink& sink);
  void render(State& st, const Rule& rule, const EventView& e, const Template& t, Image ctx,
              Action action, bool allow_fallback, Sink& sink);
  Resolved resolve(State& st, const Rule& rule, const EventView& e, const Part& p, Image ctx,
                   std::string& out, std::size_t depth);
  void emit(State& st, const Rule& rule, Action action, Sink& sink, bool widened_bump = false);
  void report(State& st, const Rule& rule, const EventView& e, Sink& sink);
};

const Engine::Impl::Binding& Engine::Impl::bind(const TableInfo& t) {
  auto it = cache.find(&t);
  if (it != cache.end() && it->second.generation == t.generation && it->second.name == t.name &&
      it->second.schema == t.schema)
    return it->second;
  Binding& b = cache[&t];
  b.generation = t.generation;
  b.schema = t.schema;
  b.name = t.name;
  b.rules.clear();
  auto rules = by_table.find(t.schema + '\0' + t.name);
  if (rules == by_table.end()) return b;
  for (const Rule* r : rules->second) {
    BoundRule br{r, {}, {}, {}};
    for (const std::string& col : r->impl->slots.names) {
      int idx = t.column_index(col);
      br.index.push_back(idx);
      br.key.push_back(idx >= 0 && static_cast<std::size_t>(idx) < t.key.size() && t.key[idx]);
      br.stable.push_back(std::find(r->stable.begin(), r->stable.end(), col) != r->stable.end());
    }
    b.rules.push_back(std::move(br));
  }
  return b;
}

void Engine::Impl::emit(State& st, const Rule& rule, Action action, Sink& sink, bool widened_bump) {
  for (std::size_t i = 0; i < st.n_emitted; ++i)
    if (st.emitted[i].first == action && st.emitted[i].second == st.key) return;
  if (st.n_emitted == st.emitted.size()) st.emitted.emplace_back();
  st.emitted[st.n_emitted].first = action;
  st.emitted[st.n_emitted].second.assign(st.key);
  ++st.n_emitted;
  if (widened_bump)
    sink.emit_widened_bump(rule, st.key);
  else
    sink.emit(rule, action, st.key);
}

// The value of placeholder `p` (filters applied) into `out`; a group renders its sub-template
// into group_text[depth] first. Unknown values are noted in st.pending.
Resolved Engine::Impl::resolve(State& st, const Rule& rule, const EventView& e, const Part& p,
                               Image ctx, std::string& out, std::size_t depth) {
  const RuleImpl& impl = *rule.impl;
  std::string_view value;
  bool is_null = false;
  Image im = Image::Row;
  if (p.meta == Meta::Group) {
    std::string& text = st.group_text[depth];
    text.clear();
    bool unknown = false;
    for (const Part& q : p.group) {
      if (!q.placeholder) {
        text.append(q.literal);
        continue;
      }
      std::string& v = st.group_value[depth];
      switch (resolve(st, rule, e, q, ctx, v, depth + 1)) {
        case Resolved::Skip:
          return Resolved::Skip;
        case Resolved::Unknown:
          unknown = true;  // go on: the notes name every unknown column, a NULL still skips
          break;
        case Resolved::Text:
          text.append(v);
          break;
      }
    }
    if (unknown) return Resolved::Unknown;
    value = text;
  } else if (p.meta != Meta::None) {
    if (p.meta == Meta::Op && !e.op) {
      st.pending.push_back(Note{Image::Row, -1, Unknown::None, {}, p.source});
      return Resolved::Unknown;
    }
    value = p.meta == Meta::Table    ? std::string_view(rule.table)
            : p.meta == Meta::Schema ? std::string_view(rule.schema)
                                     : to_string(*e.op);
  } else {
    im = p.ref.image == Image::Row ? ctx : p.ref.image;
    if (!(im == Image::Old ? e.has_old : e.has_new)) return Resolved::Skip;  // no such row
    const Datum& d = (im == Image::Old ? e.old_v : e.new_v)[p.ref.slot];
    if (d.state == Datum::State::Unknown) {
      st.pending.push_back(Note{im, p.ref.slot, d.why, {}, p.source});
      return Resolved::Unknown;
    }
    is_null = d.state == Datum::State::Null;
    value = d.text;
  }
  FilterResult r = p.filters.empty()
                       ? (is_null ? FilterResult::Null : FilterResult::Value)
                       : apply_filters(p.filters, is_null ? nullptr : &value, out, st.scratch);
  if (p.filters.empty() && !is_null) out.assign(value);
  if (r == FilterResult::Null) {
    if (!impl.null_as) return Resolved::Skip;  // NULL: the application has no such key
    out.assign(*impl.null_as);
  } else if (r == FilterResult::Failed) {
    st.pending.push_back(
        Note{im, p.meta == Meta::None ? p.ref.slot : -1, Unknown::Explicit, out, p.source});
    return Resolved::Unknown;
  }
  return Resolved::Text;
}

void Engine::Impl::render(State& st, const Rule& rule, const EventView& e, const Template& t,
                          Image ctx, Action action, bool allow_fallback, Sink& sink) {
  const RuleImpl& impl = *rule.impl;
  if (st.part_text.size() < t.parts.size()) {
    st.part_text.resize(t.parts.size());
    st.part_unknown.resize(t.parts.size());
  }
  st.pending.clear();
  bool unknown = false;
  for (std::size_t i = 0; i < t.parts.size(); ++i) {
    const Part& p = t.parts[i];
    st.part_unknown[i] = 0;
    if (!p.placeholder) continue;
    switch (resolve(st, rule, e, p, ctx, st.part_text[i], 0)) {
      case Resolved::Skip:
        return;
      case Resolved::Unknown:
        st.part_unknown[i] = 1;
        unknown = true;
        break;
      case Resolved::Text:
        break;
    }
  }
  if (unknown && allow_fallback && impl.fallback) {
    st.need_fallback = true;
    st.notes.insert(st.notes.end(), st.pending.begin(), st.pending.end());
    return;
  }
  bool pattern = unknown || action == Action::DeletePattern;
  st.key.assign(pattern ? prefix_glob : prefix);
  for (std::size_t i = 0; i < t.parts.size(); ++i) {
    const Part& p = t.parts[i];
    if (!p.placeholder) {
      if (unknown && action != Action::DeletePattern)
        append_glob_escaped(st.key, p.literal);  // an exact key's text is not a pattern
      else
        st.key.append(p.literal);
    } else if (st.part_unknown[i]) {
      if (st.key.empty() || st.key.back() != '*' ||
          (st.key.size() >= 2 && st.key[st.key.size() - 2] == '\\'))
        st.key.push_back('*');
    } else if (pattern) {
      append_glob_escaped(st.key, st.part_text[i]);
    } else {
      st.key.append(st.part_text[i]);
    }
  }
  if (unknown) {
    st.widened_pattern = true;
    st.notes.insert(st.notes.end(), st.pending.begin(), st.pending.end());
  }
  emit(st, rule, unknown ? Action::DeletePattern : action, sink, unknown && action == Action::Bump);
}

void Engine::Impl::render_list(State& st, const Rule& rule, const EventView& e,
                               const std::vector<Template>& list, Action action,
                               bool allow_fallback, Sink& sink) {
  for (const Template& t : list) {
    if (t.uses_row) {
      for (int c = 0; c < e.nctx; ++c)
        render(st, rule, e, t, e.ctx[c], action, allow_fallback, sink);
    } else {
      render(st, rule, e, t, e.ctx[0], action, allow_fallback, sink);
    }
  }
}

void Engine::Impl::report(State& st, const Rule& rule, const EventView& e, Sink& sink) {
  // "old.a, old.b unknown (reason), new.c: filter date cannot read 'x'; keys widened to patterns"
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;  // reason -> columns
  for (const Note& n : st.notes) {
    std::string column, reason;
    if (n.slot < 0) {
      column = std::string(n.source);
      reason = n.failed.empty() ? ": any operation (the whole table is widened)" : ": " + n.failed;
    } else {
      if (!e.whole) column = n.image == Image::Old ? "old." : "new.";
      column += rule.impl->slots.names[static_cast<std::size_t>(n.slot)];
      reason =
          n.failed.empty() ? " unknown (" + std::string(to_string(n.why)) + ")" : ": " + n.failed;
    }
    auto g = std::find_if(groups.begin(), groups.end(),
                          [&](const auto& x) { return x.first == reason; });
    if (g == groups.end()) g = groups.insert(groups.end(), {reason, {}});
    if (std::find(g->second.begin(), g->second.end(), column) == g->second.end())
      g->second.push_back(column);
  }
  std::string detail;
  for (const auto& [reason, columns] : groups) {
    if (!detail.empty()) detail += ", ";
    for (std::size_t i = 0; i < columns.size(); ++i) detail += (i ? ", " : "") + columns[i];
    detail += reason;
  }
  if (st.need_fallback) detail += "; ran fallback";
  if (st.widened_pattern) detail += "; keys widened to patterns";
  Unknown why = Unknown::Explicit;
  for (const Note& n : st.notes)
    if (n.why != Unknown::None) {
      why = n.why;
      break;
    }
  sink.widened(rule, why, detail);
}

bool Engine::Impl::run(State& st, const Rule& rule, const EventView& e, Sink& sink) {
  const RuleImpl& impl = *rule.impl;
  if (e.op && !(impl.ops & op_bit(*e.op))) return false;
  if (e.op == Op::Update && !impl.changed.empty()) {
    bool any = false;
    for (int s : impl.changed) any = any || differs(e.old_v[s], e.new_v[s]);
    if (!any) return false;
  }
  const Condition* when = impl.when ? &*impl.when : nullptr;
  // A condition that reads only images this op lacks (new.* on delete) cannot judge it.
  if (when && !when->uses_row && when->slots.size() > 0 && !(when->uses_old && e.has_old) &&
      !(when->uses_new && e.has_new))
    when = nullptr;
  if (when) {
    bool fires = false;
    int n = when->uses_row ? e.nctx : 1;
    for (int c = 0; c < n && !fires; ++c) fires = may_be_true(*when, EventValues(e, e.ctx[c]));
    if (!fires) return false;
  }
  sink.fired(rule);
  st.n_emitted = 0;
  st.notes.clear();
  st.need_fallback = st.widened_pattern = false;
  render_list(st, rule, e, impl.actions.deletes, Action::Delete, true, sink);
  render_list(st, rule, e, impl.actions.patterns, Action::DeletePattern, true, sink);
  render_list(st, rule, e, impl.actions.bumps, Action::Bump, true, sink);
  if (st.need_fallback) {
    render_list(st, rule, e, impl.fallback->deletes, Action::Delete, false, sink);
    render_list(st, rule, e, impl.fallback->patterns, Action::DeletePattern, false, sink);
    render_list(st, rule, e, impl.fallback->bumps, Action::Bump, false, sink);
  }
  if (!st.notes.empty()) report(st, rule, e, sink);
  return true;
}

Engine::Engine(std::shared_ptr<const RuleSet> rules, EngineOptions options)
    : rules_(std::move(rules)), options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  impl_->prefix = options_.key_prefix;
  impl_->prefix_glob = glob_escape(options_.key_prefix);
  for (const Rule& r : rules_->rules()) impl_->by_table[r.schema + '\0' + r.table].push_back(&r);
}

Engine::~Engine() = default;

bool Engine::has_rules(const TableInfo& table) {
  return !impl_->bind(table).rules.empty();
}

int Engine::evaluate(const ChangeEvent& event, Sink& sink) {
  if (event.table == nullptr) return 0;
  const Impl::Binding& b = impl_->bind(*event.table);
  if (b.rules.empty()) return 0;
  Impl& m = *impl_;
  EventView e;
  e.op = event.op;
  switch (event.op) {
    case Op::Insert:
      e.has_new = true;
      e.ctx[0] = Image::New;
      break;
    case Op::Delete:
      e.has_old = true;
      e.ctx[0] = Image::Old;
      break;
    case Op::Update:
      e.has_old = e.has_new = true;
      e.ctx[0] = Image::Old;
      e.ctx[1] = Image::New;
      e.nctx = 2;
      break;
    case Op::Truncate:
      e.has_old = e.has_new = e.whole = true;
      break;
  }
  Impl::Use use(m);
  Impl::State& st = *use;
  int fired = 0;
  for (const Impl::BoundRule& br : b.rules) {
    std::size_t n = br.index.size();
    if (st.old_v.size() < n || st.new_v.size() < n) {  // widen() grows old_v alone
      st.old_v.resize(n);
      st.new_v.resize(n);
    }
    for (std::size_t s = 0; s < n; ++s) {
      int idx = br.index[s];
      if (event.op == Op::Truncate || idx < 0) {
        Datum d = Datum::unknown(idx < 0 ? Unknown::ColumnMissing : Unknown::Truncate);
        st.old_v[s] = st.new_v[s] = d;
        continue;
      }
      auto i = static_cast<std::size_t>(idx);
      Datum nd = event.new_row ? event.new_row->at(i) : Datum::unknown(Unknown::NotInImage);
      Datum od = event.old_row ? event.old_row->at(i) : Datum::unknown(Unknown::NotInImage);
      if (event.op == Op::Update) {
        // No old tuple: the replica identity (key) did not change, so old key = new key.
        if (!event.old_row && br.key[s]) od = nd;
        // A stable column (the DBA asserts it never changes) is the new value wherever the
        // source could not say the old one (not in the WAL's old row, or polled).
        if (br.stable[s] && od.state == Datum::State::Unknown &&
            (od.why == Unknown::NotInImage || od.why == Unknown::Polled) &&
            nd.state != Datum::State::Unknown)
          od = nd;
        if (is_toast(nd) && od.state != Datum::State::Unknown) nd = od;
        if (is_toast(od) && nd.state != Datum::State::Unknown) od = nd;
      }
      st.old_v[s] = od;
      st.new_v[s] = nd;
    }
    e.old_v = st.old_v.data();
    e.new_v = st.new_v.data();
    if (m.run(st, *br.rule, e, sink)) ++fired;
  }
  return fired;
}

bool Engine::Impl::widen(const Rule& rule, Unknown why, Sink& sink) {
  Use use(*this);
  State& st = *use;
  st.old_v.assign(std::max<std::size_t>(rule.impl->slots.names.size(), 1), Datum::unknown(why));
  EventView e;
  e.has_old = e.has_new = e.whole = true;
  e.old_v = e.new_v = st.old_v.data();
  return run(st, rule, e, sink);
}

void Engine::widen_rule(const Rule& rule, Unknown why, Sink& sink) {
  impl_->widen(rule, why, sink);
}

int Engine::widen_table(std::string_view schema, std::string_view table, Unknown why, Sink& sink) {
  std::string q(schema);
  q.push_back('\0');
  q.append(table);
  auto it = impl_->by_table.find(q);
  if (it == impl_->by_table.end()) return 0;
  int fired = 0;
  for (const Rule* r : it->second)
    if (impl_->widen(*r, why, sink)) ++fired;
  return fired;
}

}  // namespace pgbust::rules
