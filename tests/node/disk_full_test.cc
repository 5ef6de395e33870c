// A full disk under a real meridiand: its data dir is on a small tmpfs
// (mounting needs root or CAP_SYS_ADMIN; without it the test says why and
// skips). Writes fill the disk until the node answers 507; reads still
// answer 200; a filler file placed beside the data dir is deleted to free
// space; writes succeed again (the store reopens LevelDB after the failed
// write), and every acknowledged write is there, also after a restart.
#define BOOST_TEST_MODULE disk_full
#include <sys/mount.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "node/http_client.h"
#include "tests/node/node_process.h"

using meridian::node::ClientResponse;
using meridian::node::HttpClient;
using meridian::testing::DecodeReply;
using meridian::testing::NodeOptions;
using meridian::testing::NodeProcess;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The store reopens only with 5 MiB free (Store::kReopenReserveBytes), and
// LevelDB may compact after the reopen: the filler frees far more than that.
constexpr const char* kTmpfsSize = "size=64m";
constexpr size_t kFillerBytes = size_t{44} << 20;
constexpr size_t kValueBytes = 64 << 10;
constexpr int kMaxFillWrites = 2000;  // 20 MiB of room takes ~150

// Mounts a tmpfs on a fresh directory; unmounts and removes it when done.
class Tmpfs {
 public:
  // False, with the reason in *why, when mounting is not possible here.
  bool Mount(std::string* why) {
    std::string tmpl = (fs::temp_directory_path() / "meridian-tmpfs-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) {
      *why = std::string("mkdtemp: ") + std::strerror(errno);
      return false;
    }
    dir_ = buf.data();
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, kTmpfsSize) != 0) {
      *why = "mount -t tmpfs -o " + std::string(kTmpfsSize) + " tmpfs " + dir_ + ": " +
             std::strerror(errno) + (geteuid() != 0 ? " (not running as root)" : "");
      return false;
    }
    mounted_ = true;
    return true;
  }

  ~Tmpfs() {
    if (mounted_ && ::umount2(dir_.c_str(), 0) != 0) {
      std::cerr << "umount " << dir_ << ": " << std::strerror(errno) << "; detaching\n";
      ::umount2(dir_.c_str(), MNT_DETACH);
    }
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

std::string RandomText(std::mt19937_64* rng, size_t n) {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string s(n, ' ');
  for (char& c : s) c = kAlphabet[(*rng)() % 62];  // barely compressible
  return s;
}

ClientResponse Do(HttpClient* c, const std::string& method, const std::string& target,
                  const std::string& body = "") {
  ClientResponse res;
  auto st =
      c->Request(method, target, body,
                 {{"Content-Type", "application/json"}, {"Accept", "application/json"}}, &res);
  BOOST_REQUIRE_MESSAGE(st.ok(), method << " " << target << ": " << st.ToString());
  return res;
}

json BodyOf(const ClientResponse& r) {
  json out;
  std::string why;
  BOOST_REQUIRE_MESSAGE(DecodeReply(r, &out, &why), why);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(full_disk_is_507_reads_continue_and_writes_recover) {
  Tmpfs tmpfs;  // declared first: unmounted after the node is gone
  std::string why;
  if (!tmpfs.Mount(&why)) {
    BOOST_TEST_MESSAGE("skipping the full-disk test: " << why);
    std::cout << "disk_full_test: SKIPPED: " << why << std::endl;
    return;
  }
  const std::string filler = tmpfs.dir() + "/filler";
  {
    std::ofstream f(filler, std::ios::binary);
    std::string mb(1 << 20, '\0');
    for (size_t i = 0; i < kFillerBytes / mb.size(); ++i) f.write(mb.data(), mb.size());
    BOOST_REQUIRE_MESSAGE(f.good(), "could not write the filler file " << filler);
  }

  NodeOptions options;
  options.data_dir = tmpfs.dir() + "/data";
  NodeProcess node(options);
  BOOST_REQUIRE(node.Start());
  std::unique_ptr<HttpClient> c = node.Client();

  const uint64_t seed = std::random_device()();
  BOOST_TEST_MESSAGE("values from seed " << seed);
  std::mt19937_64 rng(seed);
  std::vector<std::pair<std::string, std::string>> acked;  // key, value
  for (int i = 0; i < 5; ++i) {
    std::string key = "keep/" + std::to_string(i), value = "small " + std::to_string(i);
    BOOST_REQUIRE_EQUAL(Do(c.get(), "PUT", "/v1/kv/" + key, json(value).dump()).status, 200);
    acked.emplace_back(key, value);
  }
  BOOST_REQUIRE_EQUAL(Do(c.get(), "POST", "/v1/counter/keep/c", "{\"add\": 7}").status, 200);

  // Fill the disk until the node refuses.
  std::string refused_key;
  ClientResponse refused;
  for (int i = 0; i < kMaxFillWrites; ++i) {
    std::string key = "fill/" + std::to_string(i), value = RandomText(&rng, kValueBytes);
    ClientResponse r = Do(c.get(), "PUT", "/v1/kv/" + key, json(value).dump());
    if (r.status == 507) {
      refused_key = key;
      refused = r;
      break;
    }
    BOOST_REQUIRE_MESSAGE(r.status == 200,
                          "fill write " << i << " -> " << r.status << " " << r.body);
    acked.emplace_back(key, value);
  }
  BOOST_REQUIRE_MESSAGE(!refused_key.empty(), "no 507 after " << kMaxFillWrites << " writes");
  BOOST_TEST_MESSAGE("507 after " << acked.size() << " acknowledged writes");
  json e = BodyOf(refused);
  BOOST_TEST(e["error"] == "insufficient_storage");
  BOOST_TEST(e["message"].is_string());

  // Still full: other writes are refused too, in any form.
  BOOST_TEST(Do(c.get(), "POST", "/v1/counter/keep/c", "{\"add\": 1}").status == 507);
  ClientResponse b =
      Do(c.get(), "POST", "/v1/batch", R"([{"op": "put", "key": "fill/batch", "value": 1}])");
  BOOST_TEST(b.status == 200);
  BOOST_TEST(BodyOf(b)["results"][0]["status"] == 507);

  // Reads are served, the node is healthy.
  BOOST_TEST(Do(c.get(), "GET", "/v1/health").status == 200);
  BOOST_TEST(Do(c.get(), "GET", "/v1/status").status == 200);
  for (size_t i = 0; i < acked.size(); i += std::max<size_t>(1, acked.size() / 10)) {
    ClientResponse r = Do(c.get(), "GET", "/v1/kv/" + acked[i].first);
    BOOST_TEST(r.status == 200, acked[i].first << " -> " << r.status);
    if (r.status == 200) BOOST_TEST(BodyOf(r)["value"] == acked[i].second);
  }
  BOOST_TEST(BodyOf(Do(c.get(), "GET", "/v1/counter/keep/c"))["value"] == 7);
  ClientResponse scan = Do(c.get(), "GET", "/v1/scan?prefix=keep%2F");
  BOOST_TEST(scan.status == 200);
  BOOST_TEST(BodyOf(scan)["items"].size() == 6u);

  // Free space; writes resume (bounded retry: the first may already work).
  BOOST_REQUIRE(fs::remove(filler));
  int status = 0;
  for (int i = 0; i < 50 && status != 200; ++i) {
    status = Do(c.get(), "PUT", "/v1/kv/after/0", "\"back\"").status;
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  BOOST_REQUIRE_MESSAGE(status == 200, "writes did not resume after freeing space: " << status);
  acked.emplace_back("after/0", "back");
  for (int i = 1; i < 20; ++i) {
    std::string key = "after/" + std::to_string(i), value = RandomText(&rng, kValueBytes);
    BOOST_REQUIRE_EQUAL(Do(c.get(), "PUT", "/v1/kv/" + key, json(value).dump()).status, 200);
    acked.emplace_back(key, value);
  }
  BOOST_TEST(Do(c.get(), "POST", "/v1/counter/keep/c", "{\"add\": 1}").status == 200);

  auto check_all = [&](const char* when) {
    BOOST_TEST_CONTEXT(when) {
      size_t lost = 0;
      for (const auto& [key, value] : acked) {
        ClientResponse r = Do(c.get(), "GET", "/v1/kv/" + key);
        if (r.status != 200 || BodyOf(r)["value"] != value) {
          if (++lost <= 5) BOOST_ERROR("acknowledged " << key << " -> " << r.status);
        }
      }
      BOOST_TEST(lost == 0u);
      BOOST_TEST(BodyOf(Do(c.get(), "GET", "/v1/counter/keep/c"))["value"] == 8);
      // A write answered 507 left nothing behind.
      BOOST_TEST(Do(c.get(), "GET", "/v1/kv/" + refused_key).status == 404);
      BOOST_TEST(Do(c.get(), "GET", "/v1/kv/fill/batch").status == 404);
    }
  };
  check_all("after recovery");

  BOOST_REQUIRE_MESSAGE(node.Stop(), "meridiand did not exit 0 on SIGTERM");
  BOOST_REQUIRE(node.Start());
  c = node.Client();
  check_all("after a restart");
  BOOST_TEST(node.Stop());
}
