// The storage ceiling for `./dev bench node`: how fast LevelDB alone takes
// the writes that POST /v1/batch asks a node for, with nothing above it.
//
//   leveldb_ceiling DIR [--seconds S] [--batch N] [--value-bytes B] [--keys K]
//
// One thread writes WriteBatches of N records (default 1,000) of B-byte
// values (default 100) to keys drawn in turn from K keys (default 10,000),
// each batch with sync = true (one fsync per batch, as a node's group
// commit does), for S seconds (default 5). LevelDB is opened with the
// options storage/ uses (4 MiB memtable, bloom filter, 64 MiB cache), so
// the only difference from a node is everything the node does above
// LevelDB. DIR must not exist or be empty; it is left for the caller to
// remove.
//
// A node writes more per operation than this does (the state envelope, a
// delta-log entry, and once per group the applied vector), so this is an
// upper bound, not a like-for-like twin.
//
// Prints one readable line and one `ops_per_sec=...` line for scripts.
#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/filter_policy.h>
#include <leveldb/options.h>
#include <leveldb/write_batch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace {

int Usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "leveldb_ceiling: %s\n", why);
  std::fprintf(stderr,
               "usage: leveldb_ceiling DIR [--seconds S] [--batch N] [--value-bytes B] "
               "[--keys K]\n");
  return 2;
}

bool ParsePositive(const char* text, long* out) {
  char* end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v <= 0) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return Usage("DIR is required");
  const std::string dir = argv[1];
  long seconds = 5, batch_size = 1000, value_bytes = 100, keys = 10000;
  // Flags come in pairs: a name and its value.
  for (int i = 2; i < argc; i += 2) {
    long* target = nullptr;
    if (std::strcmp(argv[i], "--seconds") == 0) target = &seconds;
    if (std::strcmp(argv[i], "--batch") == 0) target = &batch_size;
    if (std::strcmp(argv[i], "--value-bytes") == 0) target = &value_bytes;
    if (std::strcmp(argv[i], "--keys") == 0) target = &keys;
    if (target == nullptr) return Usage((std::string("unknown argument ") + argv[i]).c_str());
    if (i + 1 >= argc || !ParsePositive(argv[i + 1], target)) {
      return Usage((std::string(argv[i]) + " takes a positive integer").c_str());
    }
  }

  std::unique_ptr<const leveldb::FilterPolicy> filter(leveldb::NewBloomFilterPolicy(10));
  std::unique_ptr<leveldb::Cache> cache(leveldb::NewLRUCache(64 << 20));
  leveldb::Options options;
  options.create_if_missing = true;
  options.error_if_exists = true;
  options.filter_policy = filter.get();
  options.block_cache = cache.get();
  options.write_buffer_size = 4 << 20;
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(options, dir, &raw);
  if (!s.ok()) {
    std::fprintf(stderr, "leveldb_ceiling: cannot open %s: %s\n", dir.c_str(),
                 s.ToString().c_str());
    return 1;
  }
  std::unique_ptr<leveldb::DB> db(raw);

  // The filler the node benchmark's clients send ('v' x 100), with each
  // write's number in front so that no two consecutive records are equal.
  std::string value(static_cast<size_t>(value_bytes), 'v');
  leveldb::WriteOptions sync_write;
  sync_write.sync = true;
  char key[32];
  uint64_t written = 0, batches = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(seconds);
  auto now = start;
  while (now < deadline) {
    leveldb::WriteBatch batch;
    for (long i = 0; i < batch_size; ++i) {
      std::snprintf(key, sizeof(key), "sbench-%08llu",
                    static_cast<unsigned long long>(written % static_cast<uint64_t>(keys)));
      std::snprintf(value.data(), value.size() < 21 ? value.size() : 21, "%020llu",
                    static_cast<unsigned long long>(written));
      batch.Put(key, value);
      ++written;
    }
    s = db->Write(sync_write, &batch);
    if (!s.ok()) {
      std::fprintf(stderr, "leveldb_ceiling: write failed: %s\n", s.ToString().c_str());
      return 1;
    }
    ++batches;
    now = std::chrono::steady_clock::now();
  }
  const double secs = std::chrono::duration<double>(now - start).count();
  const double ops = static_cast<double>(written) / secs;
  std::printf(
      "leveldb_ceiling: %llu records in %llu synced batches of %ld (%ld-byte values) "
      "in %.2f s: %.0f ops/s, %.1f batches/s\n",
      static_cast<unsigned long long>(written), static_cast<unsigned long long>(batches),
      batch_size, value_bytes, secs, ops, static_cast<double>(batches) / secs);
  std::printf("ops_per_sec=%.0f\n", ops);
  return 0;
}
