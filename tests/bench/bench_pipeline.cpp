// Benchmark: the in-process path per row change, no sockets: synthesized pgoutput bytes of
// the catch-up benchmark's transactions (100-row UPDATEs of a tasks table) -> decoder ->
// rule engine -> pipeline (per-transaction dedup, coalescing, Redis batches), next to
// baselines measured in the same run (touching every byte; decoding alone), and the RESP
// encoding of the resulting commands. So regressions show without servers. Never fails on
// time.
//
// Usage: bench_pipeline [--txns N] [--rounds N]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "pgbust/pg/pgoutput.hpp"
#include "pgbust/pipeline/pipeline.hpp"
#include "pgbust/redis/redis.hpp"
#include "pgbust/rules/rules.hpp"
#include "pgoutput_bytes.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace pgbust;
using test::Msg;

constexpr int kRowsPerTxn = 100;
constexpr long kTableRows = 100000;

// A source that only records what the pipeline confirms.
class NullSource : public Source {
 public:
  int fd() const override { return -1; }
  short events() const override { return 0; }
  void on_ready(short) override {}
  TimePoint deadline() const override { return kNever; }
  void on_timer(TimePoint) override {}
  const std::string& name() const override { return name_; }
  void confirm(Position p) override { confirmed = p; }
  SourceStatus status() const override { return {}; }
  void stop_reading() override {}
  void close() noexcept override {}
  Position confirmed = 0;

 private:
  std::string name_ = "bench";
};

class CountingSink : public rules::Sink {
 public:
  void emit(const rules::Rule&, rules::Action, std::string_view key) override {
    ++keys;
    bytes += key.size();
  }
  void widened(const rules::Rule&, Unknown, std::string_view) override { ++widened_count; }
  std::uint64_t keys = 0, bytes = 0, widened_count = 0;
};

// The WAL of one shape of table: a Relation message, then transactions of 'B', 100 'U', 'C'.
struct Workload {
  std::string label;
  std::string relation;
  std::vector<std::vector<std::string>> txns;  // per transaction, every message
  std::size_t bytes = 0;
  long rows = 0;
  std::shared_ptr<const rules::RuleSet> rules;
};

const std::vector<std::string> kAll = {"id",     "group_id", "owner",
                                       "status", "payload",  "updated_at"};

// One tuple with the given columns of row `id` (group `g`).
void tuple(Msg& m, const std::vector<std::string>& cols, long id, long g) {
  m.u16(static_cast<std::uint16_t>(cols.size()));
  static const std::string payload = [] {
    std::string p;
    while (p.size() < 128) p += "0cc175b9c0f1b6a831c399e269772661";
    return p;
  }();
  for (const auto& c : cols) {
    if (c == "id")
      m.text(std::to_string(id));
    else if (c == "group_id")
      m.text(std::to_string(g));
    else if (c == "owner")
      m.text("user" + std::to_string(id % 997));
    else if (c == "status")
      m.text("s3");
    else if (c == "payload")
      m.text(payload);
    else
      m.text("2024-06-01 10:00:00.123456+00");
  }
}

Workload make(const std::string& label, const std::vector<std::string>& cols, bool full, int txns,
              const std::string& rule_image) {
  Workload w;
  w.label = label;
  w.relation = test::relation_msg(16384, "public", "tasks", full ? 'f' : 'd', cols, {"id"});
  std::uint64_t lsn = 0x1000000;
  for (int t = 0; t < txns; ++t) {
    auto& msgs = w.txns.emplace_back();
    msgs.push_back(test::begin_msg(lsn + 100 * 200, 7e14, 1000 + t));
    for (int r = 0; r < kRowsPerTxn; ++r) {
      long id = (static_cast<long>(t) * kRowsPerTxn + r) % kTableRows + 1;
      long g = id % 50, moved = id % 10 == t % 10 ? (g + 1) % 50 : g;
      Msg u('U');
      u.u32(16384);
      if (full) {
        u.u8('O');
        tuple(u, cols, id, g);
      }
      u.u8('N');
      tuple(u, cols, id, moved);
      msgs.push_back(u.b);
      ++w.rows;
    }
    lsn += 100 * 200;
    msgs.push_back(test::commit_msg(lsn, lsn + 48, 7e14));
    lsn += 64;
    for (const auto& m : msgs) w.bytes += m.size();
  }
  std::string yaml =
      "version: 1\nrules:\n  - name: tasks\n    table: tasks\n"
      "    delete: [\"task:${id}\", \"group:${" +
      rule_image +
      "group_id}\"]\n"
      "    bump: [\"rev:group:${" +
      rule_image + "group_id}\"]\n";
  auto loaded = rules::RuleSet::parse(yaml, "bench.yaml");
  if (!loaded.rules) {
    std::fprintf(stderr, "rules: %s\n", loaded.errors.front().str().c_str());
    std::exit(1);
  }
  w.rules = loaded.rules;
  return w;
}

template <typename F>
double ns_per_row(const Workload& w, int rounds, F&& f) {
  std::vector<double> t;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() /
                static_cast<double>(w.rows));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::uint64_t sink_value = 0;

struct Figures {
  double bytes_per_row = 0, touch = 0, decode = 0, rules = 0, pipeline = 0;
};

Figures run(const Workload& w, int rounds) {
  Figures f;
  f.bytes_per_row = static_cast<double>(w.bytes) / static_cast<double>(w.rows);
  f.touch = ns_per_row(w, rounds, [&] {
    std::uint64_t s = 0;
    for (const auto& txn : w.txns)
      for (const auto& m : txn)
        for (char c : m) s += static_cast<unsigned char>(c);
    sink_value += s;
  });
  pgoutput::Decoder d;
  d.decode(w.relation);
  f.decode = ns_per_row(w, rounds, [&] {
    for (const auto& txn : w.txns)
      for (const auto& m : txn) sink_value += d.decode(m).events.size();
  });
  rules::Engine engine(w.rules, {});
  CountingSink counter;
  f.rules = ns_per_row(w, rounds, [&] {
    for (const auto& txn : w.txns)
      for (const auto& m : txn)
        for (const ChangeEvent& ev : d.decode(m).events) engine.evaluate(ev, counter);
  });
  sink_value += counter.keys;
  // The pipeline hands batches to a Target that never connects (no loop runs): the first
  // batch stays "in flight", so later commits coalesce as they do while Redis works.
  f.pipeline = ns_per_row(w, rounds, [&] {
    redis::Options o;
    o.url = "redis://127.0.0.1:1/0";
    redis::Target target(o);
    Pipeline pipeline(w.rules, {}, target, PipelineOptions{});
    NullSource source;
    for (const auto& txn : w.txns) {
      for (const auto& m : txn) {
        const pgoutput::Decoded& out = d.decode(m);
        switch (out.kind) {
          case pgoutput::Kind::Begin:
            pipeline.begin(source);
            break;
          case pgoutput::Kind::Commit:
            pipeline.commit(source, out.commit.end_lsn, 0);
            break;
          default:
            for (const ChangeEvent& ev : out.events) pipeline.change(source, ev);
        }
      }
    }
    sink_value += pipeline.stats().keys + target.queued();
  });
  return f;
}

// RESP encoding as the Target does it: UNLINK in chunks of 512 keys.
double resp_ns_per_key(long keys) {
  std::vector<std::string> k;
  for (long i = 0; i < keys; ++i) k.push_back("task:" + std::to_string(i + 1));
  std::vector<double> t;
  for (int r = 0; r < 5; ++r) {
    std::string out;
    std::vector<std::string_view> argv;
    auto t0 = Clock::now();
    for (long i = 0; i < keys; i += 512) {
      argv.assign(1, "UNLINK");
      for (long j = i; j < std::min(keys, i + 512); ++j)
        argv.push_back(k[static_cast<std::size_t>(j)]);
      redis::detail::append_command(out, argv);
    }
    t.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() /
                static_cast<double>(keys));
    sink_value += out.size();
  }
  std::sort(t.begin(), t.end());
  return t[2];
}

long arg(int argc, char** argv, const char* name, long fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atol(argv[i + 1]);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int txns = static_cast<int>(arg(argc, argv, "--txns", 2000));
  const int rounds = static_cast<int>(arg(argc, argv, "--rounds", 5));
  std::vector<Workload> ws;
  ws.push_back(make("all columns", kAll, false, txns, "new."));
  ws.push_back(make("column list", {"id", "group_id"}, false, txns, "new."));
  ws.push_back(make("FULL (old+new)", kAll, true, txns, ""));
  std::vector<Figures> fs;
  for (const auto& w : ws) fs.push_back(run(w, rounds));

  std::printf(
      "in-process path per row change: %d transactions x %d row UPDATEs of a 6-column "
      "tasks table; rule: 2 deletes + 1 bump (median of %d rounds)\n",
      txns, kRowsPerTxn, rounds);
  std::printf("  %-44s", "ns per row");
  for (const auto& w : ws) std::printf(" %15s", w.label.c_str());
  std::printf("\n");
  auto line = [&](const char* name, auto get) {
    std::printf("  %-44s", name);
    for (const auto& f : fs) std::printf(" %15.1f", get(f));
    std::printf("\n");
  };
  line("(pgoutput bytes per row)", [](const Figures& f) { return f.bytes_per_row; });
  line("baseline: sum every byte", [](const Figures& f) { return f.touch; });
  line("decode", [](const Figures& f) { return f.decode; });
  line("decode + rules (render keys)", [](const Figures& f) { return f.rules; });
  line("decode + rules + pipeline (dedup, batches)", [](const Figures& f) { return f.pipeline; });
  std::printf("  RESP encoding of UNLINK chunks: %.1f ns per key\n", resp_ns_per_key(200000));
  std::printf("  (checksum %llu)\n", static_cast<unsigned long long>(sink_value));
  return 0;
}
