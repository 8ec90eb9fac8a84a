// Benchmark: pgoutput decoding per row (insert, FULL update, key delete) next to a baseline
// that only touches every byte of the same messages. Prints figures; never fails on time.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "pgbust/pg/pgoutput.hpp"
#include "pgoutput_bytes.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using pgbust::test::Msg;

// A typical 8-column row: ids, a status, timestamps, a short text, a NULL.
Msg& row(Msg& m, int i) {
  std::string id = std::to_string(100000 + i);
  m.u16(8).text(id).text("42").text("in_progress").text("2024-06-01 10:00:00+00");
  m.text("2024-06-03").text("7").text("fix the frobnicator on line 3").u8('n');
  return m;
}

template <typename F>
double ns_per_op(std::size_t ops, F&& f) {
  auto t0 = Clock::now();
  f();
  auto dt = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  return dt / static_cast<double>(ops);
}

}  // namespace

int main() {
  using namespace pgbust::pgoutput;
  Msg rel('R');
  rel.u32(16384).str("public").str("work_order_task").u8('f').u16(8);
  for (const char* c : {"id", "department_id", "status", "created_at", "due_date",
                        "assigned_operator_id", "title", "notes"})
    rel.u8(1).str(c).u32(25).u32(0xffffffffu);

  std::vector<std::string> msgs;
  for (int i = 0; i < 1000; ++i) {
    Msg ins('I');
    ins.u32(16384).u8('N');
    msgs.push_back(row(ins, i).b);
    Msg upd('U');
    upd.u32(16384).u8('O');
    row(upd, i).u8('N');
    msgs.push_back(row(upd, i).b);
    Msg del('D');
    del.u32(16384).u8('O');
    msgs.push_back(row(del, i).b);
  }
  std::size_t bytes = 0;
  for (const auto& m : msgs) bytes += m.size();

  Decoder d;
  d.decode(rel.b);
  const int rounds = 2000;
  const std::size_t ops = msgs.size() * rounds;
  std::uint64_t sink = 0;

  double baseline = ns_per_op(ops, [&] {
    for (int r = 0; r < rounds; ++r)
      for (const auto& m : msgs)
        for (char c : m) sink += static_cast<unsigned char>(c);
  });
  double decode = ns_per_op(ops, [&] {
    for (int r = 0; r < rounds; ++r)
      for (const auto& m : msgs) {
        const Decoded& out = d.decode(m);
        sink += out.events[0].table->columns.size();
      }
  });

  std::printf(
      "pgoutput decode: %zu messages (%.0f bytes avg, 8 columns; insert, FULL update, "
      "delete)\n",
      ops, static_cast<double>(bytes) / static_cast<double>(msgs.size()));
  std::printf("  baseline (sum every byte):  %7.1f ns/message\n", baseline);
  std::printf("  decode to ChangeEvent:      %7.1f ns/message  (%.1f M rows/s)\n", decode,
              1e3 / decode);
  std::printf("  (checksum %llu)\n", static_cast<unsigned long long>(sink));
  return 0;
}
