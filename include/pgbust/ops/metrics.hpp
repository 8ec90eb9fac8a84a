// Prometheus metrics: a registry of counters, gauges and fixed-bucket histograms rendered in
// the text exposition format 0.0.4. Single-threaded, like the loop that owns it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgbust::metrics {

// Label name/value pairs of one series, in the order they are rendered.
using Labels = std::vector<std::pair<std::string, std::string>>;

// The Content-Type of render()'s output.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Monotonic count. Callers keep the reference the registry returns: inc() is one add.
class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { value_ += n; }
  std::uint64_t value() const noexcept { return value_; }

 private:
  std::uint64_t value_ = 0;
};

// A value that goes up and down (lag, state, queue depth).
class Gauge {
 public:
  void set(double v) noexcept { value_ = v; }
  void add(double d) noexcept { value_ += d; }
  double value() const noexcept { return value_; }

 private:
  double value_ = 0;
};

// Observations counted into fixed buckets (upper bounds, ascending; +Inf is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);  // throws std::invalid_argument if unsorted
  void observe(double v) noexcept;                 // NaN is ignored
  const std::vector<double>& bounds() const noexcept { return bounds_; }
  // Cumulative count of observations <= bounds()[i]; i == bounds().size() means +Inf.
  std::uint64_t cumulative(std::size_t i) const noexcept;
  std::uint64_t count() const noexcept { return count_; }
  double sum() const noexcept { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative; last is (max bound, +Inf)
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

// Bucket bounds in seconds for commit-to-Redis latency: 1ms .. 30s.
std::vector<double> latency_buckets();

// Families of series, rendered in registration order. Asking again for the same name and
// labels returns the same object; references stay valid for the registry's lifetime.
// Invalid names, label names ("le" is reserved for histograms, "__" prefixes are reserved),
// or one name used with two types throw std::invalid_argument.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  // A counter whose value is not a whole number (CPU seconds) and is read from elsewhere:
  // TYPE counter, set() only ever with a value that does not go down.
  Gauge& float_counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help,
                       const std::vector<double>& bounds, const Labels& labels = {});

  // Called at the start of every render(), e.g. to refresh gauges from live state.
  void on_render(std::function<void()> refresh);

  // The text exposition format 0.0.4 (HELP and TYPE lines, escaped label values).
  std::string render() const;

 private:
  struct Family;
  Family& family(const std::string& name, const std::string& help, int type);
  std::vector<std::unique_ptr<Family>> families_;
  std::vector<std::function<void()>> refreshers_;
};

// Text helpers, exposed for tests.
std::string escape_label_value(std::string_view v);  // \ " and newline
std::string escape_help(std::string_view v);         // \ and newline
std::string format_value(double v);                  // shortest round-trip, +Inf, -Inf, NaN

}  // namespace pgbust::metrics
