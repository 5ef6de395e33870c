// Request metrics for GET /metrics (Prometheus text format): requests by
// route and status, latency histograms by route, and connections refused
// by the TLS handshake. Thread-safe.
#ifndef MERIDIAN_NODE_METRICS_H_
#define MERIDIAN_NODE_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace meridian::node {

class Metrics {
 public:
  // Upper bounds of the latency buckets, in seconds.
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                      0.05,   0.1,   0.25,  0.5,   1.0,  5.0};

  void Observe(const std::string& route, const std::string& method, int status, double seconds);
  // A connection to a TLS port that did not complete its handshake (a
  // plaintext client, one offering only old versions, a stalled one).
  void CountTlsHandshakeFailure() { tls_handshake_failures_++; }
  // Appends the request families to `out`.
  void Render(std::string* out) const;

 private:
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> counts{};
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  std::atomic<uint64_t> tls_handshake_failures_{0};
};

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_METRICS_H_
