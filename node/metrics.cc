#include "node/metrics.h"

#include <cstdio>
#include <tuple>

namespace meridian::node {

void Metrics::Observe(const std::string& route, const std::string& method, int status,
                      double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  requests_[{route, method, status}]++;
  Histogram& h = latency_[route];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) h.counts[i]++;
  }
  h.count++;
  h.sum += seconds;
}

void Metrics::Render(std::string* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  *out += "# HELP meridian_http_requests_total HTTP requests by route, method and status.\n";
  *out += "# TYPE meridian_http_requests_total counter\n";
  for (const auto& [k, n] : requests_) {
    *out += "meridian_http_requests_total{route=\"" + std::get<0>(k) + "\",method=\"" +
            std::get<1>(k) + "\",status=\"" + std::to_string(std::get<2>(k)) + "\"} " +
            std::to_string(n) + "\n";
  }
  *out += "# HELP meridian_http_tls_handshake_failures_total Connections closed because their TLS "
          "handshake failed or timed out (0 on a plain HTTP port).\n";
  *out += "# TYPE meridian_http_tls_handshake_failures_total counter\n";
  *out += "meridian_http_tls_handshake_failures_total " +
          std::to_string(tls_handshake_failures_.load()) + "\n";
  *out += "# HELP meridian_http_request_seconds HTTP request latency by route.\n";
  *out += "# TYPE meridian_http_request_seconds histogram\n";
  char buf[64];
  for (const auto& [route, h] : latency_) {
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%g", kBuckets[i]);
      *out += "meridian_http_request_seconds_bucket{route=\"" + route + "\",le=\"" + buf + "\"} " +
              std::to_string(h.counts[i]) + "\n";
    }
    *out += "meridian_http_request_seconds_bucket{route=\"" + route + "\",le=\"+Inf\"} " +
            std::to_string(h.count) + "\n";
    std::snprintf(buf, sizeof buf, "%.6f", h.sum);
    *out += "meridian_http_request_seconds_sum{route=\"" + route + "\"} " + buf + "\n";
    *out += "meridian_http_request_seconds_count{route=\"" + route + "\"} " +
            std::to_string(h.count) + "\n";
  }
}

}  // namespace meridian::node
