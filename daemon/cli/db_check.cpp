// `pgbust check --db`: reads the catalog once, then checks rule tables and columns, the
// publication, the slot, replica identities, NOTIFY triggers and poll watermark indexes.
#include "pgbust/cli/db_check.hpp"
#include "pgbust/core/text.hpp"

#include <algorithm>
#include <set>

#include "pgbust/cli/setup_sql.hpp"
#include "pgbust/pg/async.hpp"

namespace pgbust::cli::db_check {

namespace {

using Strings = std::vector<std::string>;

bool contains(const Strings& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

std::string dq(const std::string& s) {
  return "\"" + s + "\"";
}

// "rule 'a' reads" / "rules 'a', 'b' read"
std::string readers(const std::vector<const rules::Rule*>& list) {
  Strings names;
  for (const auto* r : list) names.push_back("'" + r->name + "'");
  return names.size() == 1 ? "rule " + names[0] + " reads" : "rules " + join(names) + " read";
}

// The columns one rule reads (templates, when, changed): columns_needed of a set of one.
Strings rule_columns(const rules::Rule& rule) {
  rules::RuleSet one;
  one.rules_.push_back(rule);
  return one.columns_needed(rule.schema, rule.table);
}

// An abbreviation of exactly one candidate, word by word ("assigned_dept_id" for
// "assigned_department_id"): each '_'-separated part starts like the candidate's part and
// the rest of its letters follow in order.
std::string abbreviation_of(const std::string& word, const Strings& candidates) {
  auto split = [](const std::string& s) {
    Strings parts{""};
    for (char c : s) {
      if (c == '_')
        parts.emplace_back();
      else
        parts.back().push_back(c);
    }
    return parts;
  };
  auto abbreviates = [](const std::string& a, const std::string& b) {
    if (a.empty() || b.empty() || a[0] != b[0]) return a == b;
    std::size_t j = 0;
    for (char c : b)
      if (j < a.size() && a[j] == c) ++j;
    return j == a.size();
  };
  Strings w = split(word), found;
  for (const auto& c : candidates) {
    Strings p = split(c);
    bool match = p.size() == w.size();
    for (std::size_t i = 0; match && i < p.size(); ++i) match = abbreviates(w[i], p[i]);
    if (match) found.push_back(c);
  }
  return found.size() == 1 ? found.front() : "";
}

std::string did_you_mean(const std::string& word, const Strings& candidates, bool quote) {
  std::string s = rules::suggest(word, candidates);
  if (s.empty()) s = abbreviation_of(word, candidates);
  if (s.empty() || s == word) return "";
  return "; did you mean " + (quote ? dq(s) : s) + "?";
}

const char* kind_name(char kind) {
  switch (kind) {
    case 'v':
      return "view";
    case 'm':
      return "materialized view";
    case 'f':
      return "foreign table";
    case 'S':
      return "sequence";
    case 'i':
    case 'I':
      return "index";
    case 'c':
      return "composite type";
    default:
      return "relation that is not a table";
  }
}

class Checker {
 public:
  Checker(const Snapshot& db, const config::Config& cfg, const rules::RuleSet& rules,
          const Options& opt)
      : db_(db), cfg_(cfg), rules_(rules), opt_(opt) {}

  std::vector<Finding> run() {
    tables_and_columns();
    if (cfg_.logical) {
      publication();
      slot();
      identity();
    }
    stable_assertions();
    if (cfg_.notify) notify();
    if (cfg_.poll) poll();
    return std::move(out_);
  }

 private:
  // "rule 'NAME'" + rest, at the rule.
  void at(const rules::Rule& r, bool error, const std::string& rest) {
    out_.push_back({error, r.file, r.line, r.column, "rule '" + r.name + "'" + rest});
  }
  void plain(bool error, const std::string& message) { out_.push_back({error, "", 0, 0, message}); }

  // The rule table, when it exists and is a table (else the first check reported it).
  const pgcatalog::Table* table(const std::string& qualified) const {
    auto it = db_.tables.find(qualified);
    if (it == db_.tables.end() || !it->second.exists) return nullptr;
    if (it->second.kind != 'r' && it->second.kind != 'p') return nullptr;
    return &it->second;
  }

  void tables_and_columns() {
    for (const rules::Rule& r : rules_.rules()) {
      std::string q = r.schema + "." + r.table;
      auto it = db_.tables.find(q);
      if (it == db_.tables.end() || !it->second.exists) {
        at(r, true, ": table " + q + " does not exist" + did_you_mean(q, db_.table_names, false));
        continue;
      }
      const pgcatalog::Table& t = it->second;
      if (t.kind != 'r' && t.kind != 'p') {
        at(r, true,
           ": " + q + " is a " + kind_name(t.kind) +
               ", not a table: pgbust sees changes to tables only");
        continue;
      }
      for (const auto& col : rule_columns(r)) {
        if (contains(t.columns, col)) continue;
        bad_columns_.insert(&r);
        at(r, true,
           ": column " + dq(col) + " does not exist in " + q + did_you_mean(col, t.columns, true));
      }
    }
  }

  std::vector<const rules::Rule*> rules_for(const std::string& q) const {
    auto dot = q.find('.');
    return rules_.rules_for(q.substr(0, dot), q.substr(dot + 1));
  }

  // Columns of `q` the rules read that the table has, in table order.
  Strings needed_columns(const std::string& q, const pgcatalog::Table& t) const {
    auto dot = q.find('.');
    Strings needed = rules_.columns_needed(q.substr(0, dot), q.substr(dot + 1)), out;
    for (const auto& c : t.columns)
      if (contains(needed, c)) out.push_back(c);
    return out;
  }

  void publication() {
    const std::string& name = cfg_.logical->publication;
    if (!db_.publication || !db_.publication->exists) {
      plain(true, "publication " + dq(name) + " does not exist in database " +
                      dq(db_.server.database) + ": " + opt_.setup_command +
                      " prints the SQL that creates it for the rule tables (--apply runs it)");
      return;
    }
    const pgcatalog::Publication& p = *db_.publication;
    Strings missing;
    if (!p.insert) missing.push_back("insert");
    if (!p.update) missing.push_back("update");
    if (!p.del) missing.push_back("delete");
    if (!p.truncate) missing.push_back("truncate");
    if (!missing.empty()) {
      bool only_truncate = missing.size() == 1 && !p.truncate;
      plain(!only_truncate, "publication " + dq(name) + " does not publish " + join(missing) +
                                ": the rules never see those changes; ALTER PUBLICATION " +
                                p.sql_name +
                                " SET (publish = 'insert, update, delete, truncate');");
    }
    for (const std::string& q : rules_.tables()) {
      const pgcatalog::Table* t = table(q);
      if (!t) continue;
      auto it = p.tables.find(q);
      if (t->kind == 'p' && !p.via_root && it == p.tables.end()) {
        // Each partition's changes arrive under the partition's name, and pgbust maps each
        // partition to `q` itself; it needs every partition published.
        Strings unlisted;
        for (const auto& leaf : t->leaves)
          if (p.tables.find(leaf) == p.tables.end()) unlisted.push_back(leaf);
        if (!unlisted.empty()) {
          plain(true, "publication " + dq(name) + " does not cover " + q + " (partition" +
                          (unlisted.size() == 1 ? " " : "s ") + join(unlisted) +
                          " unpublished), which " + readers(rules_for(q)) +
                          ": those changes are never seen; ALTER PUBLICATION " + p.sql_name +
                          " ADD TABLE " + t->sql_name + ";");
          continue;
        }
        plain(false, q + " is partitioned and publication " + dq(name) +
                         " publishes its changes under each partition's name "
                         "(publish_via_partition_root is off): pgbust maps each partition to " +
                         q + " itself, looking it up when it first appears in the stream, and " +
                         "widens the rules of " + q + " when it cannot tell (a partition " +
                         "detached or dropped before pgbust read its changes); publishing via " +
                         "the root avoids both: ALTER PUBLICATION " + p.sql_name +
                         " SET (publish_via_partition_root = true);");
        continue;
      }
      if (it == p.tables.end()) {
        plain(true, "publication " + dq(name) + " does not cover " + q + ", which " +
                        readers(rules_for(q)) + ": its changes are never seen; ALTER PUBLICATION " +
                        p.sql_name + " ADD TABLE " + t->sql_name + ";");
        continue;
      }
      const pgcatalog::Publication::Entry& e = it->second;
      if (!e.columns.empty()) column_list(name, p, q, *t, e.columns);
      if (!e.row_filter.empty())
        plain(false, "publication " + dq(name) + " publishes only the rows of " + q + " WHERE " +
                         e.row_filter + ": changes to other rows invalidate nothing");
    }
  }

  // The publication's column list for `q` must name what the rules read and the replica
  // identity (else UPDATE and DELETE on the table fail).
  void column_list(const std::string& name, const pgcatalog::Publication& p, const std::string& q,
                   const pgcatalog::Table& t, const Strings& published) {
    Strings lacking_identity, lacking_rules, all;
    for (const auto& c : t.identity_columns())
      if (!contains(published, c)) lacking_identity.push_back(c);
    for (const auto& c : needed_columns(q, t))
      if (!contains(published, c) && !contains(lacking_identity, c)) lacking_rules.push_back(c);
    if (lacking_rules.empty() && lacking_identity.empty()) return;
    std::string msg = "publication " + dq(name) + "'s column list for " + q + " leaves out ";
    if (!lacking_rules.empty())
      msg += join(lacking_rules) + ", which the rules read (they widen on every change)";
    if (!lacking_rules.empty() && !lacking_identity.empty()) msg += ", and ";
    if (!lacking_identity.empty())
      msg += "replica identity column" + std::string(lacking_identity.size() == 1 ? " " : "s ") +
             join(lacking_identity) + " (UPDATE and DELETE on the table fail)";
    for (const auto& c : t.columns)
      if (contains(published, c) || contains(lacking_rules, c) || contains(lacking_identity, c))
        all.push_back(pg::quote_ident(c));
    msg += "; BEGIN; ALTER PUBLICATION " + p.sql_name + " DROP TABLE " + t.sql_name +
           "; ALTER PUBLICATION " + p.sql_name + " ADD TABLE " + t.sql_name + " (" + join(all) +
           "); COMMIT;";
    plain(true, msg);
  }

  void slot() {
    const config::Logical& l = *cfg_.logical;
    const pgcatalog::Server& s = db_.server;
    std::string role = "role " + dq(s.user) +
                       " has neither REPLICATION nor SUPERUSER (ALTER ROLE " + s.user_sql +
                       " REPLICATION;)";
    std::string wal =
        "wal_level is " + s.wal_level +
        ", not logical (ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL)";
    bool role_ok = s.superuser || s.replication, wal_ok = s.wal_level == "logical";
    std::string slot = "replication slot " + dq(l.slot);
    if (db_.slot && db_.slot->exists) {
      const pgcatalog::Slot& x = *db_.slot;
      if (x.type != "logical" || x.plugin != "pgoutput")
        plain(true, slot + " is a " + x.type + " slot" +
                        (x.plugin.empty() ? "" : " with plugin " + x.plugin) +
                        ": pgbust needs a logical slot with plugin pgoutput (drop it, or name "
                        "another in sources.logical.slot)");
      else if (x.database != s.database)
        plain(true, slot + " belongs to database " + dq(x.database) + ", not " + dq(s.database) +
                        " (name another in sources.logical.slot)");
    } else if (!l.create_slot) {
      plain(true, slot + " does not exist and sources.logical.create_slot is false: " +
                      opt_.setup_command +
                      " prints the SQL that creates it (or set create_slot: true)");
    } else {
      Strings why;
      if (!role_ok) why.push_back(role);
      if (!wal_ok) why.push_back(wal);
      if (s.slots_used >= s.max_replication_slots)
        why.push_back("all " + std::to_string(s.max_replication_slots) +
                      " replication slots (max_replication_slots) are in use");
      if (!why.empty()) {
        plain(true, slot + " does not exist and cannot be created: " + join(why, "; "));
        return;
      }
    }
    if (!role_ok) plain(true, "the logical source cannot stream: " + role);
    if (!wal_ok) plain(true, "the logical source cannot stream: " + wal);
    if (role_ok && db_.replication_error)
      plain(true,
            "the logical source cannot stream: a replication connection (replication=database) "
            "fails: " +
                *db_.replication_error);
  }

  // REPLICA IDENTITY FULL, as SQL that is safe to paste in order. With FULL, a column list on
  // the table must name every column, or every UPDATE and DELETE on it fails ("column list
  // used by the publication does not cover the replica identity"): the publication change
  // goes first, in one transaction with the ALTER TABLE.
  std::string identity_full_fix(const std::string& q, const pgcatalog::Table& t) const {
    std::string alter = "ALTER TABLE " + t.sql_name + " REPLICA IDENTITY FULL;";
    if (!db_.publication || !db_.publication->exists) return alter;
    const pgcatalog::Publication& p = *db_.publication;
    auto it = p.tables.find(q);
    if (it == p.tables.end() || it->second.columns.empty()) return alter;
    for (const auto& c : t.columns)
      if (!contains(it->second.columns, c)) {
        const std::string& filter = it->second.row_filter;
        return "BEGIN; ALTER PUBLICATION " + p.sql_name + " DROP TABLE " + t.sql_name +
               "; ALTER PUBLICATION " + p.sql_name + " ADD TABLE " + t.sql_name +
               (filter.empty() ? "" : " WHERE " + filter) + "; " + alter + " COMMIT; (or " +
               opt_.setup_command + " --identity-full --apply)";
      }
    return alter;
  }

  // The cheapest exact replica identity for `q`, whose rules read the old values of `wanted`:
  // USING INDEX on the smallest unique NOT NULL index covering them (the WAL then carries
  // just those columns), else FULL; as SQL safe to paste in order (a column list that lacks
  // the index columns is widened first, in one transaction). Empty when the table already has it.
  std::string exact_identity_fix(const std::string& q, const pgcatalog::Table& t,
                                 const Strings& wanted) const {
    const pgcatalog::IdentityIndex* best = nullptr;
    auto found = db_.identity_indexes.find(q);
    const pgcatalog::Publication::Entry* entry = nullptr;
    if (db_.publication && db_.publication->exists) {
      auto it = db_.publication->tables.find(q);
      if (it != db_.publication->tables.end()) entry = &it->second;
    }
    if (found != db_.identity_indexes.end())
      for (const auto& ix : found->second) {
        bool covers = std::all_of(wanted.begin(), wanted.end(),
                                  [&](const std::string& c) { return contains(ix.columns, c); });
        // A row filter may only read identity columns (else UPDATE and DELETE fail): any other
        // column named in it rules the index out.
        if (covers && entry && !entry->row_filter.empty())
          for (const auto& c : t.columns)
            if (!contains(ix.columns, c) && entry->row_filter.find(c) != std::string::npos)
              covers = false;
        if (covers && (!best || ix.columns.size() < best->columns.size())) best = &ix;
      }
    if (!best) return identity_full_fix(q, t);
    if (t.replica_identity == 'i' && t.identity_index_name == best->name) return "";
    std::string alter =
        "ALTER TABLE " + t.sql_name + " REPLICA IDENTITY USING INDEX " + best->sql_name + ";";
    std::string why = " (unique index " + best->name + " on (" + join(best->columns) +
                      "), NOT NULL: the WAL then carries exactly those old values)";
    if (!entry || entry->columns.empty() ||
        std::all_of(best->columns.begin(), best->columns.end(),
                    [&](const std::string& c) { return contains(entry->columns, c); }))
      return alter + why;
    const pgcatalog::Publication& p = *db_.publication;
    Strings list;
    for (const auto& c : t.columns)
      if (contains(entry->columns, c) || contains(best->columns, c))
        list.push_back(pg::quote_ident(c));
    return "BEGIN; ALTER PUBLICATION " + p.sql_name + " DROP TABLE " + t.sql_name +
           "; ALTER PUBLICATION " + p.sql_name + " ADD TABLE " + t.sql_name + " (" + join(list) +
           ")" + (entry->row_filter.empty() ? "" : " WHERE " + entry->row_filter) + "; " + alter +
           " COMMIT;" + why;
  }

  // What an UPDATE and a DELETE cost rule `r` without the old values it needs, for the
  // identity warning; empty when neither widens.
  static std::string widening_effect(const rules::Rule& r, const Strings& key) {
    const bool upd = rules::fires_on(r, Op::Update), del = rules::fires_on(r, Op::Delete);
    rules::IdentityCost u = rules::default_identity_cost(r, key, true);
    rules::IdentityCost d = rules::default_identity_cost(r, key);
    if (!upd) u = rules::IdentityCost{};
    if (!del) d = rules::IdentityCost{};
    if (u.empty() && d.empty()) return "";
    auto effect = [](const rules::IdentityCost& c) {
      return c.fallback ? std::string("runs its fallback")
                        : "widens to SCAN-DELETE " + join(c.patterns);
    };
    Strings used;  // stable columns that keep an update's old values known
    const Strings needed = rules::default_identity_cost(r, key).columns;
    for (const auto& c : r.stable)
      if (contains(needed, c)) used.push_back(c);
    if (used.empty()) return "without them the rule " + effect(u.empty() ? d : u);
    std::string stable = " (stable: " + join(used) + ")";
    if (u.empty()) return "without them a DELETE " + effect(d) + "; an UPDATE is exact" + stable;
    if (d.empty()) return "without them an UPDATE " + effect(u) + stable;
    return "without them an UPDATE " + effect(u) + stable + " and a DELETE " + effect(d);
  }

  void identity() {
    for (const std::string& q : rules_.tables()) {
      const pgcatalog::Table* t = table(q);
      if (!t) continue;
      Strings key = t->identity_columns();
      auto dot = q.find('.');
      auto olds = rules_.old_values_needed(q.substr(0, dot), q.substr(dot + 1));
      if (key.empty()) {
        std::string why = t->replica_identity == 'n' ? "REPLICA IDENTITY NOTHING"
                          : t->replica_identity == 'i'
                              ? "REPLICA IDENTITY USING INDEX of an index "
                                "that no longer exists"
                              : "REPLICA IDENTITY DEFAULT and no primary key";
        plain(true, q + " has " + why +
                        ": a published table without a replica identity refuses "
                        "UPDATE and DELETE; " +
                        identity_full_fix(q, *t));
        continue;
      }
      if (t->replica_identity == 'f') continue;
      // Every old value the table's rules read, in table order: what an exact identity carries.
      Strings wanted;
      for (const auto& c : t->columns)
        for (const auto& n : olds)
          if (n.column == c && !bad_columns_.count(n.rule) && !contains(wanted, c))
            wanted.push_back(c);
      std::string fix;
      bool fix_made = false;
      std::string has =
          t->replica_identity == 'i'
              ? "REPLICA IDENTITY USING INDEX " + t->identity_index_name +
                    " puts only the index columns (" + join(key) + ")"
              : "REPLICA IDENTITY DEFAULT puts only the primary key (" + join(key) + ")";
      for (const rules::Rule* r : rules_for(q)) {
        if (bad_columns_.count(r)) continue;  // reported already; its old values are moot
        rules::IdentityCost cost = rules::default_identity_cost(*r, key);
        Strings compared;
        for (const auto& n : olds)
          if (n.rule == r && !n.widens && !contains(key, n.column) &&
              !contains(cost.columns, n.column) && !contains(compared, n.column))
            compared.push_back(n.column);
        std::string widening = widening_effect(*r, key);
        if (widening.empty() && compared.empty()) continue;
        Strings all = cost.columns;
        all.insert(all.end(), compared.begin(), compared.end());
        Strings effects;
        if (!widening.empty()) effects.push_back(widening);
        if (!compared.empty())
          effects.push_back("its when/changed cannot compare old " + join(compared) +
                            ", so it fires whenever it cannot tell");
        if (!fix_made) fix = exact_identity_fix(q, *t, wanted);
        fix_made = true;
        at(*r, false,
           " needs old values of " + join(all) + " on update/delete, but on " + q + " " + has +
               " in the WAL; " + join(effects, "; ") + "; to avoid it: " + fix);
      }
    }
  }

  // `stable:` is the DBA's assertion; a BEFORE UPDATE trigger that raises when the column
  // changes is evidence it holds. Without one it is said to be unchecked, with the trigger
  // that would enforce it.
  void stable_assertions() {
    for (const rules::Rule& r : rules_.rules()) {
      if (r.stable.empty() || bad_columns_.count(&r)) continue;
      std::string q = r.schema + "." + r.table;
      const pgcatalog::Table* t = table(q);
      if (!t) continue;
      Strings unchecked;
      auto it = db_.triggers.find(q);
      for (const auto& c : r.stable) {
        if (!contains(t->columns, c)) continue;  // reads no such column: the loader warned
        bool enforced = false;
        if (it != db_.triggers.end())
          for (const auto& tr : it->second) {
            if (tr.enabled == 'D' || !(tr.type & 1) || !(tr.type & 2) || !(tr.type & 16))
              continue;  // not a row-level BEFORE UPDATE trigger that fires
            std::string src = lower(tr.function_source);
            if (src.find("raise") != std::string::npos &&
                (src.find("old." + lower(c)) != std::string::npos ||
                 src.find("old." + lower(pg::quote_ident(c))) != std::string::npos))
              enforced = true;
          }
        if (!enforced) unchecked.push_back(c);
      }
      if (unchecked.empty()) continue;
      Strings changed, cols;
      for (const auto& c : unchecked) {
        std::string qc = pg::quote_ident(c);
        changed.push_back("NEW." + qc + " IS DISTINCT FROM OLD." + qc);
        cols.push_back(qc);
      }
      std::string fn =
          pg::quote_ident(r.schema) + "." + pg::quote_ident("pgbust_stable_" + r.table);
      at(r, false,
         ": stable: " + join(unchecked) + (unchecked.size() == 1 ? " is" : " are") +
             " an unchecked assertion: no BEFORE UPDATE trigger of " + q +
             " refuses a change; if one changes, keys built from its old value stay in Redis; "
             "to enforce it: CREATE FUNCTION " +
             fn + "() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN IF " + join(changed, " OR ") +
             " THEN RAISE EXCEPTION 'pgbust: a stable column of % changed', TG_TABLE_NAME; END "
             "IF; RETURN NEW; END$$; CREATE TRIGGER pgbust_stable BEFORE UPDATE OF " +
             join(cols) + " ON " + t->sql_name + " FOR EACH ROW EXECUTE FUNCTION " + fn + "();");
    }
  }

  static std::string lower(std::string s) {
    for (char& ch : s)
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    return s;
  }

  void notify() {
    const config::Notify& n = *cfg_.notify;
    Strings tables = rules_.tables();
    if (!n.tables.empty()) {
      for (const auto& q : n.tables)
        if (!contains(tables, q))
          plain(false, "sources.notify.tables names " + q + ", which no rule reads");
      std::erase_if(tables, [&](const std::string& q) { return !contains(n.tables, q); });
    }
    std::string hint = opt_.setup_command + " --notify prints the SQL that creates them";
    for (const std::string& q : tables) {
      const pgcatalog::Table* t = table(q);
      if (!t) continue;
      auto it = db_.triggers.find(q);
      const pgcatalog::Trigger *row = nullptr, *truncate = nullptr;
      if (it != db_.triggers.end())
        for (const auto& tr : it->second) {
          if (tr.name == "pgbust_notify") row = &tr;
          if (tr.name == "pgbust_notify_truncate") truncate = &tr;
        }
      if (!row && !truncate) {
        plain(false, q +
                         " has no pgbust NOTIFY triggers: the notify source sees none of its "
                         "changes; " +
                         hint);
        continue;
      }
      if (!row)
        plain(false,
              q +
                  " has no trigger pgbust_notify: the notify source sees none of its inserts, "
                  "updates and deletes; " +
                  hint);
      if (!truncate)
        plain(false, q +
                         " has no trigger pgbust_notify_truncate: the notify source does not see a "
                         "TRUNCATE of it; " +
                         hint);
      for (const auto* tr : {row, truncate})
        if (tr && tr->enabled != 'O' && tr->enabled != 'A')
          plain(false, "trigger " + tr->name + " on " + q + " is " +
                           (tr->enabled == 'D' ? "disabled" : "enabled for replicas only") +
                           ": it does not fire; ALTER TABLE " + t->sql_name + " ENABLE TRIGGER " +
                           tr->name + ";");
      if (row) trigger_function(q, *t, *row, n.channels);
    }
  }

  // A generated trigger function must send what the rules read now, on a channel pgbust
  // listens on (it was generated from the rules of its day).
  void trigger_function(const std::string& q, const pgcatalog::Table& t,
                        const pgcatalog::Trigger& tr, const Strings& channels) {
    auto dot = q.find('.');
    if (tr.function_schema != q.substr(0, dot) ||
        tr.function_name != setup_sql::notify_function_name(q.substr(dot + 1)))
      return;  // not generated by pgbust setup: its body is the user's business
    std::string again = "; run " + opt_.setup_command + " --notify again";
    Strings unsent;
    for (const auto& c : needed_columns(q, t))
      if (tr.function_source.find(pg::quote_literal(c) + ", NEW." + pg::quote_ident(c) +
                                  "::text") == std::string::npos)
        unsent.push_back(c);
    if (!unsent.empty())
      plain(false, "the NOTIFY trigger function of " + q + " does not send " + join(unsent) +
                       ", which the rules read (they widen on every change of it)" + again);
    bool listened = std::any_of(channels.begin(), channels.end(), [&](const std::string& ch) {
      return tr.function_source.find("pg_notify(" + pg::quote_literal(ch)) != std::string::npos;
    });
    if (!listened)
      plain(false, "the NOTIFY trigger function of " + q +
                       " notifies on a channel pgbust does not "
                       "listen on (sources.notify.channels: " +
                       join(channels) + ")" + again);
  }

  // Polling sees a change only through the watermark column (README, "What polling cannot
  // see"): it must be set on every INSERT and UPDATE, whoever writes. A DEFAULT covers
  // inserts; a BEFORE trigger whose function mentions the column is taken to cover updates.
  void watermark_writers(const config::PollTable& pt, const std::string& q,
                         const poll::Plan& plan) {
    const std::string& col = plan.cursor.front();
    std::string where = " (sources.poll.tables, line " + std::to_string(pt.line) + ")";
    std::string qcol = pg::quote_ident(col);
    auto sets = [&](int event_bit) {
      auto it = db_.poll_triggers.find(q);
      if (it == db_.poll_triggers.end()) return false;
      for (const auto& t : it->second)
        if (t.enabled != 'D' && (t.type & 1) && (t.type & 2) && (t.type & event_bit) &&
            t.function_source.find(col) != std::string::npos)
          return true;
      return false;
    };
    auto defaults = db_.poll_defaults.find(q);
    bool has_default = defaults != db_.poll_defaults.end() && defaults->second.count(col);
    if (!has_default && !sets(4))
      plain(false, "poll source: " + q + "." + col +
                       " has no DEFAULT and no BEFORE INSERT trigger sets it: a row inserted "
                       "without it has NULL there and is never polled" +
                       where + "; ALTER TABLE " + plan.sql_name + " ALTER " + qcol +
                       " SET DEFAULT now();");
    if (!sets(16)) {
      std::string fn =
          pg::quote_ident(pt.schema) + "." + pg::quote_ident("pgbust_touch_" + pt.table);
      plain(false, "poll source: no BEFORE UPDATE trigger of " + q + " sets " + col +
                       ": an UPDATE that does not set it (raw SQL, a bulk update, another "
                       "service) is never seen, and one that sets it from an application "
                       "clock is seen only within the overlap" +
                       where + "; CREATE FUNCTION " + fn +
                       "() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW." + qcol +
                       " := now(); RETURN NEW; END$$; CREATE TRIGGER pgbust_touch BEFORE "
                       "UPDATE ON " +
                       plan.sql_name + " FOR EACH ROW EXECUTE FUNCTION " + fn + "();");
    }
  }

  void poll() {
    for (const config::PollTable& pt : cfg_.poll->tables) {
      std::string q = pt.schema + "." + pt.table;
      auto cols = db_.poll_columns.find(q);
      poll::Plan plan;
      try {
        plan = poll::make_plan(
            pt, cols == db_.poll_columns.end() ? std::vector<poll::CatalogColumn>{} : cols->second,
            rules_.columns_needed(pt.schema, pt.table));
      } catch (const Error& e) {
        plain(true, std::string("poll source: ") + e.what());
        continue;
      }
      if (plan.mode != poll::Mode::Id) watermark_writers(pt, q, plan);
      auto idx = db_.index_leading_columns.find(q);
      if (idx != db_.index_leading_columns.end() && contains(idx->second, plan.cursor.front()))
        continue;
      Strings cursor;
      for (const auto& c : plan.cursor) cursor.push_back(pg::quote_ident(c));
      plain(false, "poll source: no index of " + q + " starts with " + plan.cursor.front() +
                       ", so every poll scans the table (sources.poll.tables, line " +
                       std::to_string(pt.line) + "); CREATE INDEX ON " + plan.sql_name + " (" +
                       join(cursor) + ");");
    }
  }

  const Snapshot& db_;
  const config::Config& cfg_;
  const rules::RuleSet& rules_;
  const Options& opt_;
  std::vector<Finding> out_;
  std::set<const rules::Rule*> bad_columns_;  // rules reading a column that does not exist
};

}  // namespace

std::string Finding::str() const {
  std::string kind = error ? "error: " : "warning: ";
  if (file.empty()) return "pgbust check: " + kind + message;
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  if (line > 0 && column > 0) out += ":" + std::to_string(column);
  return out + ": " + kind + message;
}

Snapshot read(PGconn* conn, const config::Config& cfg, const rules::RuleSet& rules) {
  Snapshot s;
  s.server = pgcatalog::read_server(conn);
  bool missing = false;
  for (const rules::Rule& r : rules.rules()) {
    std::string q = r.schema + "." + r.table;
    if (s.tables.count(q)) continue;
    s.tables[q] = pgcatalog::read_table(conn, r.schema, r.table);
    missing = missing || !s.tables[q].exists;
  }
  if (missing) s.table_names = pgcatalog::table_names(conn);
  if (cfg.logical) {
    for (const auto& [q, t] : s.tables) {
      if (!t.exists) continue;
      auto dot = q.find('.');
      s.identity_indexes[q] =
          pgcatalog::identity_indexes(conn, q.substr(0, dot), q.substr(dot + 1));
    }
    s.publication = pgcatalog::read_publication(conn, cfg.logical->publication);
    s.slot = pgcatalog::read_slot(conn, cfg.logical->slot);
    if (s.server.superuser || s.server.replication)
      s.replication_error = pgcatalog::try_replication_connection(cfg.conninfo);
  }
  auto has_stable = [&](const std::string& q) {
    auto dot = q.find('.');
    for (const rules::Rule* r : rules.rules_for(q.substr(0, dot), q.substr(dot + 1)))
      if (!r->stable.empty()) return true;
    return false;
  };
  for (const auto& [q, t] : s.tables) {
    if (!t.exists || !(cfg.notify || has_stable(q))) continue;
    auto dot = q.find('.');
    s.triggers[q] = pgcatalog::read_triggers(conn, q.substr(0, dot), q.substr(dot + 1));
  }
  if (cfg.poll)
    for (const config::PollTable& pt : cfg.poll->tables) {
      std::string q = pt.schema + "." + pt.table;
      s.poll_columns[q] = pgcatalog::poll_columns(conn, pt.schema, pt.table);
      s.index_leading_columns[q] = pgcatalog::index_leading_columns(conn, pt.schema, pt.table);
      s.poll_triggers[q] = pgcatalog::read_triggers(conn, pt.schema, pt.table);
      s.poll_defaults[q] = pgcatalog::column_defaults(conn, pt.schema, pt.table);
    }
  return s;
}

std::vector<Finding> check(const Snapshot& db, const config::Config& cfg,
                           const rules::RuleSet& rules, const Options& options) {
  return Checker(db, cfg, rules, options).run();
}

}  // namespace pgbust::cli::db_check
