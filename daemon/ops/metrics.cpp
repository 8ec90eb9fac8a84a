// Prometheus registry and text exposition format 0.0.4 (see metrics.hpp).
#include "pgbust/ops/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace pgbust::metrics {

namespace {

enum Type { kCounter, kGauge, kHistogram };
constexpr const char* kTypeNames[] = {"counter", "gauge", "histogram"};

bool valid_name(std::string_view n, bool allow_colon) {
  if (n.empty()) return false;
  auto ok = [&](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (allow_colon && c == ':') || (!first && c >= '0' && c <= '9');
  };
  for (std::size_t i = 0; i < n.size(); ++i)
    if (!ok(n[i], i == 0)) return false;
  return true;
}

void check_labels(const std::string& metric, const Labels& labels, bool histogram) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::string& n = labels[i].first;
    if (!valid_name(n, false) || n.starts_with("__"))
      throw std::invalid_argument("metric " + metric + ": invalid label name '" + n + "'");
    if (histogram && n == "le")
      throw std::invalid_argument("metric " + metric + ": label 'le' is reserved");
    for (std::size_t j = 0; j < i; ++j)
      if (labels[j].first == n)
        throw std::invalid_argument("metric " + metric + ": label '" + n + "' given twice");
  }
}

void append_labels(std::string& out, const Labels& labels, const std::string* le = nullptr) {
  if (labels.empty() && le == nullptr) return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    out += escape_label_value(v);
    out += '"';
  }
  if (le != nullptr) {
    if (!first) out += ',';
    out += "le=\"";
    out += *le;
    out += '"';
  }
  out += '}';
}

}  // namespace

// ---- text helpers ------------------------------------------------------------------------

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

// ---- Histogram ---------------------------------------------------------------------------

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (std::isnan(bounds_[i]) || std::isinf(bounds_[i]))
      throw std::invalid_argument("histogram bucket bounds must be finite");
    if (i > 0 && !(bounds_[i - 1] < bounds_[i]))
      throw std::invalid_argument("histogram bucket bounds must be strictly ascending");
  }
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::observe(double v) noexcept {
  // Bucket i counts bounds[i-1] < v <= bounds[i]. NaN is dropped: it would poison the sum.
  if (std::isnan(v)) return;
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  ++counts_[static_cast<std::size_t>(it - bounds_.begin())];
  ++count_;
  sum_ += v;
}

std::uint64_t Histogram::cumulative(std::size_t i) const noexcept {
  std::uint64_t n = 0;
  for (std::size_t j = 0; j <= i && j < counts_.size(); ++j) n += counts_[j];
  return n;
}

std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

// ---- Registry ----------------------------------------------------------------------------

struct Registry::Family {
  std::string name;
  std::string help;
  int type;
  struct Series {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  std::vector<Series> series;

  Series* find(const Labels& labels) {
    for (auto& s : series)
      if (s.labels == labels) return &s;
    return nullptr;
  }
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family& Registry::family(const std::string& name, const std::string& help, int type) {
  if (!valid_name(name, true)) throw std::invalid_argument("invalid metric name '" + name + "'");
  for (auto& f : families_) {
    if (f->name != name) continue;
    if (f->type != type)
      throw std::invalid_argument("metric " + name + " is already registered as a " +
                                  kTypeNames[f->type]);
    return *f;
  }
  // A histogram owns NAME_bucket/_sum/_count: those names must not collide with other families.
  for (auto& f : families_) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if ((f->type == kHistogram && name == f->name + suffix) ||
          (type == kHistogram && f->name == name + suffix))
        throw std::invalid_argument("metric " + name + " collides with histogram series of " +
                                    f->name);
    }
  }
  families_.push_back(std::make_unique<Family>(Family{name, help, type, {}}));
  return *families_.back();
}

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels) {
  check_labels(name, labels, false);
  Family& f = family(name, help, kCounter);
  if (auto* s = f.find(labels)) {
    if (!s->counter) throw std::invalid_argument("metric " + name + " is a float counter");
    return *s->counter;
  }
  f.series.push_back({labels, std::make_unique<Counter>(), nullptr, nullptr});
  return *f.series.back().counter;
}

Gauge& Registry::float_counter(const std::string& name, const std::string& help,
                               const Labels& labels) {
  check_labels(name, labels, false);
  Family& f = family(name, help, kCounter);
  if (auto* s = f.find(labels)) {
    if (!s->gauge) throw std::invalid_argument("metric " + name + " is an integer counter");
    return *s->gauge;
  }
  f.series.push_back({labels, nullptr, std::make_unique<Gauge>(), nullptr});
  return *f.series.back().gauge;
}

Gauge& Registry::gauge(const std::string& name, const std::string& help, const Labels& labels) {
  check_labels(name, labels, false);
  Family& f = family(name, help, kGauge);
  if (auto* s = f.find(labels)) return *s->gauge;
  f.series.push_back({labels, nullptr, std::make_unique<Gauge>(), nullptr});
  return *f.series.back().gauge;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               const std::vector<double>& bounds, const Labels& labels) {
  check_labels(name, labels, true);
  auto h = std::make_unique<Histogram>(bounds);  // validates the bounds first
  Family& f = family(name, help, kHistogram);
  if (auto* s = f.find(labels)) {
    if (s->histogram->bounds() != bounds)
      throw std::invalid_argument("metric " + name + " registered again with other buckets");
    return *s->histogram;
  }
  f.series.push_back({labels, nullptr, nullptr, std::move(h)});
  return *f.series.back().histogram;
}

void Registry::on_render(std::function<void()> refresh) {
  refreshers_.push_back(std::move(refresh));
}

std::string Registry::render() const {
  for (const auto& r : refreshers_) r();
  std::string out;
  for (const auto& f : families_) {
    out += "# HELP " + f->name + " " + escape_help(f->help) + "\n";
    out += "# TYPE " + f->name + " " + kTypeNames[f->type] + "\n";
    for (const auto& s : f->series) {
      if (s.counter || s.gauge) {
        out += f->name;
        append_labels(out, s.labels);
        out += ' ';
        out += s.counter ? std::to_string(s.counter->value()) : format_value(s.gauge->value());
        out += '\n';
        continue;
      }
      const Histogram& h = *s.histogram;
      for (std::size_t i = 0; i <= h.bounds().size(); ++i) {
        std::string le = i < h.bounds().size() ? format_value(h.bounds()[i]) : "+Inf";
        out += f->name + "_bucket";
        append_labels(out, s.labels, &le);
        out += ' ' + std::to_string(h.cumulative(i)) + '\n';
      }
      out += f->name + "_sum";
      append_labels(out, s.labels);
      out += ' ' + format_value(h.sum()) + '\n';
      out += f->name + "_count";
      append_labels(out, s.labels);
      out += ' ' + std::to_string(h.count()) + '\n';
    }
  }
  return out;
}

}  // namespace pgbust::metrics
