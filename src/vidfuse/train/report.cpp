#include "vidfuse/train/report.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "vidfuse/core/atomic_file.h"

namespace vidfuse::train {
namespace {

std::string escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string fmt(double v, int precision = 4) {
  std::ostringstream s;
  s << std::setprecision(precision) << v;
  return s.str();
}

struct Series {
  std::string name, color;
  std::vector<double> x, y;
};

// Round tick spacing (1, 2, 5 × 10^k) giving about `n` ticks over [lo, hi].
double tick_step(double lo, double hi, int n) {
  const double raw = (hi - lo) / std::max(1, n);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

std::string line_chart(const std::string& title, const std::vector<Series>& series,
                       const std::string& x_label) {
  const double W = 640, H = 300, L = 60, R = 150, T = 30, B = 45;
  double x0 = std::numeric_limits<double>::max(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='11'>\n<text x='" << L << "' y='18' font-size='13'"
    << " font-weight='bold'>" << escape(title) << "</text>\n";
  if (x0 > x1) {
    o << "<text x='" << L << "' y='" << H / 2 << "'>no data</text></svg>\n";
    return o.str();
  }
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  if (y0 > 0 && y0 < 0.5 * y1) y0 = 0;  // anchor at zero when that costs little resolution
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  o << "<rect x='" << L << "' y='" << T << "' width='" << W - L - R << "' height='" << H - T - B
    << "' fill='none' stroke='#999'/>\n";
  const double ys = tick_step(y0, y1, 5);
  for (double y = std::ceil(y0 / ys) * ys; y <= y1 + 1e-12; y += ys)
    o << "<line x1='" << L << "' x2='" << W - R << "' y1='" << py(y) << "' y2='" << py(y)
      << "' stroke='#eee'/><text x='" << L - 5 << "' y='" << py(y) + 4 << "' text-anchor='end'>"
      << fmt(y, 3) << "</text>\n";
  const double xs = tick_step(x0, x1, 6);
  for (double x = std::ceil(x0 / xs) * xs; x <= x1 + 1e-12; x += xs)
    o << "<text x='" << px(x) << "' y='" << H - B + 15 << "' text-anchor='middle'>" << fmt(x, 6)
      << "</text>\n";
  o << "<text x='" << (L + W - R) / 2 << "' y='" << H - 8 << "' text-anchor='middle'>"
    << escape(x_label) << "</text>\n";
  int legend = 0;
  for (const auto& s : series) {
    if (s.x.empty()) continue;
    o << "<polyline fill='none' stroke='" << s.color << "' stroke-width='1.5' points='";
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i])) o << fmt(px(s.x[i]), 6) << ',' << fmt(py(s.y[i]), 6) << ' ';
    o << "'/>\n";
    if (s.x.size() == 1)
      o << "<circle cx='" << px(s.x[0]) << "' cy='" << py(s.y[0]) << "' r='3' fill='" << s.color
        << "'/>\n";
    const double ly = T + 10 + 16 * legend++;
    o << "<line x1='" << W - R + 10 << "' x2='" << W - R + 30 << "' y1='" << ly << "' y2='" << ly
      << "' stroke='" << s.color << "' stroke-width='2'/><text x='" << W - R + 35 << "' y='"
      << ly + 4 << "'>" << escape(s.name) << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

std::string class_label(int64_t c, const std::vector<std::string>& names) {
  return c < int64_t(names.size()) ? std::to_string(c) + " " + names[c] : std::to_string(c);
}

// Class names are written along the axes when they fit (up to this many classes); beyond, the
// axes carry indices and every cell has a tooltip.
constexpr int64_t kNamedClasses = 30;

std::string per_class_chart(const Metrics& m, const std::vector<std::string>& names) {
  const int64_t K = m.num_classes;
  const bool named = K <= kNamedClasses && !names.empty();
  const double L = 50, T = 34, plot_h = 200, B = named ? 170 : 34;
  const double bar = std::max(2.0, std::min(28.0, 900.0 / std::max<int64_t>(1, K)));
  // Names run down and to the right of their bar (rotated 40 degrees): room on the right for them.
  const double W = std::max(L + bar * K + (named ? 230 : 20), 520.0), H = T + plot_h + B;
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='11'>\n<text x='" << L
    << "' y='18' font-size='13' font-weight='bold'>Per-class accuracy (validation)</text>\n";
  for (double a : {0.0, 0.5, 1.0}) {
    const double y = T + plot_h * (1 - a);
    o << "<line x1='" << L << "' x2='" << L + bar * K << "' y1='" << y << "' y2='" << y
      << "' stroke='#ddd'/><text x='" << L - 4 << "' y='" << y + 4 << "' text-anchor='end'>"
      << fmt(a * 100, 3) << "%</text>\n";
  }
  for (int64_t c = 0; c < K; ++c) {
    const double a = m.per_class_accuracy[c];
    const double h = a < 0 ? 0 : plot_h * a;
    o << "<rect x='" << fmt(L + c * bar, 6) << "' y='" << fmt(T + plot_h - h, 6) << "' width='"
      << fmt(std::max(1.0, bar - 1), 4) << "' height='" << fmt(h, 6) << "' fill='#4878cf'><title>"
      << escape(class_label(c, names)) << ": "
      << (a < 0 ? std::string("no samples")
                : fmt(a * 100, 4) + "% of " + std::to_string(m.per_class_count[c]))
      << "</title></rect>\n";
    if (named) {
      const double x = L + c * bar + bar / 2, y = T + plot_h + 12;
      o << "<text x='" << fmt(x, 6) << "' y='" << y << "' text-anchor='start' transform='rotate(40 "
        << fmt(x, 6) << ' ' << y << ")'>" << escape(class_label(c, names)) << "</text>\n";
    }
  }
  if (!named)
    o << "<text x='" << L << "' y='" << H - 8 << "'>class index 0 … " << K - 1
      << " (hover a bar for its name)</text>\n";
  o << "</svg>\n";
  return o.str();
}

std::string confusion_chart(const Metrics& m, const std::vector<std::string>& names) {
  const int64_t K = m.num_classes;
  const bool named = K <= kNamedClasses && !names.empty();
  const double cell = std::max(2.0, std::min(28.0, 640.0 / std::max<int64_t>(1, K)));
  // Left: "true class" and the row names; top: "predicted class" and column indices.
  const double L = named ? 250 : 50, T = 58, size = cell * K;
  // Tooltips for every cell would dominate the file for large K; keep them for small matrices.
  const bool titles = K <= 60;
  auto conf = m.confusion.to(torch::kDouble);
  auto row_sums = conf.sum(1).clamp_min(1);
  auto norm = (conf / row_sums.unsqueeze(1)).contiguous();
  const double* p = norm.data_ptr<double>();
  const int64_t* counts = m.confusion.contiguous().data_ptr<int64_t>();
  const double W = std::max(L + size + 20, 600.0), H = T + size + 20;
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='11'>\n<text x='10' y='18' font-size='13' "
       "font-weight='bold'>Confusion matrix (row-normalised: each true class sums to 100%)</text>\n"
    << "<text x='" << L + size / 2 << "' y='36' text-anchor='middle'>predicted class</text>\n"
    << "<text x='12' y='" << T + size / 2 << "' text-anchor='middle' transform='rotate(-90 12 "
    << T + size / 2 << ")'>true class</text>\n<rect x='" << L << "' y='" << T << "' width='" << size
    << "' height='" << size << "' fill='#fff' stroke='#999'/>\n";
  if (cell >= 10)
    for (int64_t c = 0; c < K; ++c) {
      o << "<text x='" << fmt(L + c * cell + cell / 2, 6) << "' y='" << T - 4
        << "' text-anchor='middle'>" << c << "</text>\n";
      o << "<text x='" << L - 4 << "' y='" << fmt(T + c * cell + cell / 2 + 4, 6)
        << "' text-anchor='end'>" << escape(named ? class_label(c, names) : std::to_string(c))
        << "</text>\n";
    }
  for (int64_t r = 0; r < K; ++r)
    for (int64_t c = 0; c < K; ++c) {
      const double v = p[r * K + c];
      if (v <= 0 && !titles) continue;
      const int shade = static_cast<int>(std::lround(255 * (1 - v)));
      o << "<rect x='" << fmt(L + c * cell, 6) << "' y='" << fmt(T + r * cell, 6) << "' width='"
        << fmt(cell, 4) << "' height='" << fmt(cell, 4) << "' fill='rgb(" << shade << ',' << shade
        << ",255)'";
      if (titles)
        o << "><title>true " << escape(class_label(r, names)) << ", predicted "
          << escape(class_label(c, names)) << ": " << counts[r * K + c] << "</title></rect>\n";
      else
        o << "/>\n";
    }
  o << "</svg>\n";
  return o.str();
}

std::vector<Series> series_of(const std::vector<nlohmann::json>& log, const std::string& type,
                              const std::vector<std::pair<std::string, std::string>>& fields,
                              const std::string& prefix, const std::vector<std::string>& colors) {
  std::vector<Series> out;
  for (size_t f = 0; f < fields.size(); ++f) {
    Series s{prefix + fields[f].second, colors[f % colors.size()], {}, {}};
    for (const auto& r : log)
      if (r.value("type", "") == type && r.contains(fields[f].first) && r.contains("step") &&
          r[fields[f].first].is_number()) {
        s.x.push_back(r["step"].get<double>());
        s.y.push_back(r[fields[f].first].get<double>());
      }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

std::string render_html_report(const ReportInputs& in) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>" << escape(in.title)
    << "</title>\n<style>body{font-family:sans-serif;margin:24px;max-width:1100px}"
       "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px "
       "8px;text-align:right}"
       "pre{background:#f6f6f6;padding:8px;overflow:auto}</style></head><body>\n<h1>"
    << escape(in.title) << "</h1>\n";

  // Summary: final metrics and the best validation record.
  const nlohmann::json* best = nullptr;
  const nlohmann::json* last_train = nullptr;
  for (const auto& r : in.log) {
    if (r.value("type", "") == "val" && r.contains("top1") &&
        (!best || r["top1"].get<double>() > (*best)["top1"].get<double>()))
      best = &r;
    if (r.value("type", "") == "train") last_train = &r;
  }
  o << "<h2>Summary</h2>\n<table><tr><th>quantity</th><th>value</th></tr>\n";
  auto row = [&](const std::string& k, const std::string& v) {
    o << "<tr><td style='text-align:left'>" << escape(k) << "</td><td>" << escape(v)
      << "</td></tr>\n";
  };
  if (in.metrics) {
    const auto& m = *in.metrics;
    row("validation samples", std::to_string(m.count));
    row("validation top-1", fmt(100 * m.top1) + " %");
    row("validation top-5", fmt(100 * m.top5) + " %");
    row("validation mean class accuracy", fmt(100 * m.mean_class_accuracy) + " %");
    row("validation loss", fmt(m.loss));
  }
  if (best)
    row("best validation top-1 (step " + std::to_string((*best)["step"].get<int64_t>()) + ")",
        fmt(100 * (*best)["top1"].get<double>()) + " %");
  if (last_train) {
    row("last train step", std::to_string(last_train->value("step", int64_t(0))));
    if (last_train->contains("loss"))
      row("last train loss", fmt((*last_train)["loss"].get<double>()));
    // Share of the steps spent waiting for data over the whole run (0: the loader kept up).
    double wait = 0, windows = 0;
    for (const auto& r : in.log)
      if (r.value("type", "") == "train" && r.contains("data_wait")) {
        wait += r["data_wait"].get<double>();
        windows += 1;
      }
    if (windows > 0) row("data wait (share of step time)", fmt(100 * wait / windows) + " %");
  }
  o << "</table>\n<h2>Learning curves</h2>\n";

  const std::vector<std::string> train_colors{"#4878cf", "#6acc65"};
  const std::vector<std::string> val_colors{"#d65f5f", "#b47cc7", "#c4ad66"};
  auto loss = series_of(in.log, "train", {{"loss", "loss"}}, "train ", train_colors);
  for (auto& s : series_of(in.log, "val", {{"loss", "loss"}}, "val ", val_colors))
    loss.push_back(s);
  o << line_chart("Loss", loss, "step");
  auto acc = series_of(in.log, "train", {{"acc", "top-1"}}, "train ", train_colors);
  for (auto& s :
       series_of(in.log, "val", {{"top1", "top-1"}, {"top5", "top-5"}}, "val ", val_colors))
    acc.push_back(s);
  o << line_chart("Accuracy", acc, "step");
  o << line_chart("Learning rate", series_of(in.log, "train", {{"lr", "lr"}}, "", train_colors),
                  "step");
  auto wait = series_of(in.log, "train", {{"data_wait", "data wait"}}, "", train_colors);
  if (!wait.empty() && !wait.front().x.empty())
    o << line_chart("Data wait (share of step time)", wait, "step");

  if (in.metrics && in.metrics->confusion.defined() && in.metrics->num_classes > 0) {
    o << "<h2>Per-class accuracy</h2>\n" << per_class_chart(*in.metrics, in.class_names);
    o << "<h2>Confusion matrix</h2>\n" << confusion_chart(*in.metrics, in.class_names);
    // The worst classes in a table, where names are readable.
    std::vector<int64_t> order;
    for (int64_t c = 0; c < in.metrics->num_classes; ++c)
      if (in.metrics->per_class_accuracy[c] >= 0) order.push_back(c);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return in.metrics->per_class_accuracy[a] < in.metrics->per_class_accuracy[b];
    });
    if (order.size() > 10) order.resize(10);
    o << "<h3>Lowest per-class accuracy</h3>\n<table><tr><th>class</th><th>accuracy</th>"
         "<th>samples</th></tr>\n";
    for (int64_t c : order)
      o << "<tr><td style='text-align:left'>" << escape(class_label(c, in.class_names))
        << "</td><td>" << fmt(100 * in.metrics->per_class_accuracy[c]) << " %</td><td>"
        << in.metrics->per_class_count[c] << "</td></tr>\n";
    o << "</table>\n";
  }
  if (!in.config.is_null())
    o << "<h2>Configuration</h2>\n<pre>" << escape(in.config.dump(2)) << "</pre>\n";
  o << "</body></html>\n";
  return o.str();
}

void write_html_report(const std::string& path, const ReportInputs& inputs) {
  write_text_atomically(path, render_html_report(inputs));
}

}  // namespace vidfuse::train
