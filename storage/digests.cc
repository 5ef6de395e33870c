// Per-key digests and bucket sums (digests.h). SHA-256 is OpenSSL's,
// through EVP with the algorithm fetched once and one context per thread
// (about three times cheaper than the one-shot SHA256() or an implicit
// fetch per call on OpenSSL 3).
//
// The "digest_index" metadata record: version byte, then uint format
// (kIndexFormat). Any other value, or none, means "not built".
#include "storage/digests.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>

#include "crdt/codec.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"

namespace meridian::storage {
namespace {

// DO NOT CHANGE: on disk. Bump kIndexFormat if what a digest or a bucket
// is ever changes: every store then rebuilds its index at the next start.
constexpr uint8_t kIndexRecordVersion = 1;
constexpr uint64_t kIndexFormat = 1;

// Bounds of one batch of an index build.
constexpr size_t kBuildBatchKeys = 1000;
constexpr size_t kBuildBatchBytes = size_t{4} << 20;
// States read per Scan during a build (bounds memory when states are big).
constexpr size_t kBuildScanStates = 128;
// Digest records read per page by LoadBucketSums and ScanBucket.
constexpr size_t kScanPage = 4096;

[[noreturn]] void OpenSslFailed(const char* what) {
  std::fprintf(stderr, "meridian: OpenSSL SHA-256 failed in %s\n", what);
  std::abort();
}

const EVP_MD* Sha256() {
  // Fetched once; kept for the life of the process.
  static const EVP_MD* md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (m == nullptr) OpenSslFailed("EVP_MD_fetch");
    return m;
  }();
  return md;
}

// One EVP context per thread, reused for every hash.
class Hasher {
 public:
  Hasher() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr) OpenSslFailed("EVP_MD_CTX_new");
  }
  ~Hasher() { EVP_MD_CTX_free(ctx_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void Begin() {
    if (EVP_DigestInit_ex2(ctx_, Sha256(), nullptr) != 1) OpenSslFailed("EVP_DigestInit_ex2");
  }
  void Add(const void* data, size_t n) {
    if (EVP_DigestUpdate(ctx_, data, n) != 1) OpenSslFailed("EVP_DigestUpdate");
  }
  void Finish(unsigned char out[32]) {
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(ctx_, out, &n) != 1 || n != 32) OpenSslFailed("EVP_DigestFinal_ex");
  }

  static Hasher& ForThisThread() {
    thread_local Hasher hasher;
    return hasher;
  }

 private:
  EVP_MD_CTX* ctx_;
};

uint64_t LoadBigEndian64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

void AppendBigEndian64(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Sha256Stream

Sha256Stream::Sha256Stream() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr) OpenSslFailed("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex2(static_cast<EVP_MD_CTX*>(ctx_), Sha256(), nullptr) != 1) {
    OpenSslFailed("EVP_DigestInit_ex2");
  }
}

Sha256Stream::~Sha256Stream() {
  if (ctx_ != nullptr) EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

Sha256Stream::Sha256Stream(Sha256Stream&& o) noexcept : ctx_(o.ctx_) { o.ctx_ = nullptr; }

Sha256Stream& Sha256Stream::operator=(Sha256Stream&& o) noexcept {
  if (this != &o) {
    if (ctx_ != nullptr) EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
    ctx_ = o.ctx_;
    o.ctx_ = nullptr;
  }
  return *this;
}

void Sha256Stream::Add(std::string_view bytes) {
  if (bytes.empty()) return;
  if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), bytes.data(), bytes.size()) != 1) {
    OpenSslFailed("EVP_DigestUpdate");
  }
}

std::string Sha256Stream::Finish() {
  unsigned char out[32];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), out, &n) != 1 || n != 32) {
    OpenSslFailed("EVP_DigestFinal_ex");
  }
  return std::string(reinterpret_cast<const char*>(out), 32);
}

// ---------------------------------------------------------------------------
// Digest

Digest& Digest::operator+=(const Digest& o) {
  const uint64_t lo_sum = lo + o.lo;
  hi += o.hi + (lo_sum < lo ? 1 : 0);  // carry out of the low half
  lo = lo_sum;
  return *this;
}

Digest& Digest::operator-=(const Digest& o) {
  const uint64_t borrow = lo < o.lo ? 1 : 0;
  lo -= o.lo;
  hi -= o.hi + borrow;
  return *this;
}

std::string Digest::ToBytes() const {
  std::string out;
  out.reserve(16);
  AppendBigEndian64(hi, &out);
  AppendBigEndian64(lo, &out);
  return out;
}

bool Digest::FromBytes(std::string_view bytes, Digest* out) {
  if (bytes.size() != 16) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  out->hi = LoadBigEndian64(p);
  out->lo = LoadBigEndian64(p + 8);
  return true;
}

std::string Digest::Hex() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[15 - i] = kHex[(hi >> (4 * i)) & 0xf];
    out[31 - i] = kHex[(lo >> (4 * i)) & 0xf];
  }
  return out;
}

Digest KeyDigest(std::string_view key, std::string_view envelope) {
  const auto n = static_cast<uint32_t>(key.size());
  const unsigned char len[4] = {static_cast<unsigned char>(n >> 24),
                                static_cast<unsigned char>(n >> 16),
                                static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n)};
  unsigned char md[32];
  Hasher& h = Hasher::ForThisThread();
  h.Begin();
  h.Add(len, sizeof len);
  h.Add(key.data(), key.size());
  h.Add(envelope.data(), envelope.size());
  h.Finish(md);
  Digest d;
  d.hi = LoadBigEndian64(md);
  d.lo = LoadBigEndian64(md + 8);
  return d;
}

uint32_t BucketOf(std::string_view key) {
  unsigned char md[32];
  Hasher& h = Hasher::ForThisThread();
  h.Begin();
  h.Add(key.data(), key.size());
  h.Finish(md);
  // The first kBucketBits bits, most significant first.
  const uint32_t first32 = (uint32_t{md[0]} << 24) | (uint32_t{md[1]} << 16) |
                           (uint32_t{md[2]} << 8) | uint32_t{md[3]};
  return first32 >> (32 - kBucketBits);
}

// ---------------------------------------------------------------------------
// BucketSums

void BucketSums::Replace(uint32_t bucket, const Digest& before, const Digest& after) {
  Digest& sum = sums_.at(bucket);
  sum -= before;
  sum += after;
}

Digest BucketSums::Total() const {
  Digest total;
  for (const Digest& d : sums_) total += d;
  return total;
}

// ---------------------------------------------------------------------------
// Reading the index

Status ScanBucket(const Store& store, std::string_view scope, uint32_t bucket,
                  std::vector<std::pair<std::string, Digest>>* out, const StoreSnapshot* at) {
  out->clear();
  if (bucket >= kBuckets) {
    return Status::InvalidArgument("bucket " + std::to_string(bucket) + " is not below " +
                                   std::to_string(kBuckets));
  }
  std::vector<Store::DigestRecord> page;
  Store::DigestRecord after;
  bool has_after = false;
  for (;;) {
    MERIDIAN_RETURN_IF_ERROR(store.ScanDigests(scope, bucket, bucket + 1,
                                               has_after ? &after : nullptr, kScanPage, &page, at));
    for (Store::DigestRecord& rec : page) out->emplace_back(std::move(rec.key), rec.digest);
    if (page.size() < kScanPage) return Status::OK();
    after.bucket = bucket;
    after.key = out->back().first;
    has_after = true;
  }
}

Status LoadBucketSums(const Store& store, std::string_view scope, BucketSums* out) {
  BucketSums sums;
  std::vector<Store::DigestRecord> page;
  Store::DigestRecord after;
  bool has_after = false;
  for (;;) {
    MERIDIAN_RETURN_IF_ERROR(
        store.ScanDigests(scope, 0, kBuckets, has_after ? &after : nullptr, kScanPage, &page));
    for (const Store::DigestRecord& rec : page) sums.Replace(rec.bucket, Digest(), rec.digest);
    if (page.size() < kScanPage) break;
    after = std::move(page.back());
    has_after = true;
  }
  *out = std::move(sums);
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Building the index

Status DigestIndexBuilt(const Store& store, bool* built) {
  *built = false;
  std::string value;
  Status s = store.GetMeta(kMetaDigestIndex, &value);
  if (s.IsNotFound()) return Status::OK();
  MERIDIAN_RETURN_IF_ERROR(s);
  // A record this build cannot read (or of another format) counts as
  // absent: the index is derived data, rebuilt from the states.
  crdt::Decoder d;
  uint64_t format = 0;
  if (d.Parse(value, kIndexRecordVersion).ok() && d.root().Uint(&format, "digest index").ok()) {
    *built = format == kIndexFormat;
  }
  return Status::OK();
}

void PutDigestIndexBuilt(WriteBatch* batch) {
  crdt::Encoder e(kIndexRecordVersion);
  e.Uint(kIndexFormat);
  batch->PutMeta(kMetaDigestIndex, e.Take());
}

namespace {

// Removes every digest record of `scope`, in bounded batches.
Status RemoveDigestRecords(Store* store, std::string_view scope, uint64_t* removed) {
  std::vector<Store::DigestRecord> page;
  WriteBatch batch;
  for (;;) {
    // Each page is deleted before the next is read, so every page starts
    // at the beginning of what is left.
    MERIDIAN_RETURN_IF_ERROR(store->ScanDigests(scope, 0, kBuckets, nullptr, kBuildBatchKeys, &page));
    if (page.empty()) return Status::OK();
    batch.Clear();
    for (const Store::DigestRecord& rec : page) batch.DeleteDigest(scope, rec.bucket, rec.key);
    MERIDIAN_RETURN_IF_ERROR(store->Write(&batch));
    *removed += page.size();
  }
}

// What the "digest_scopes" record holds for a scoping's name: "" for "",
// else the name's SHA-256 in hex (so that the record names no prefix: a
// region outside a placement holds nothing of it, not even its name).
std::string ScopingRecord(const std::string& name) {
  if (name.empty()) return std::string();
  Sha256Stream h;
  h.Add(name);
  const std::string bytes = h.Finish();
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace

Status EnsureDigestIndex(Store* store, DigestIndexReport* report, const DigestScoping& scoping) {
  DigestIndexReport local;
  DigestIndexReport& rep = report != nullptr ? *report : local;
  rep = DigestIndexReport();
  bool built = false;
  MERIDIAN_RETURN_IF_ERROR(DigestIndexBuilt(*store, &built));
  std::string built_under;
  {
    Status s = store->GetMeta(kMetaDigestScopes, &built_under);
    if (!s.ok() && !s.IsNotFound()) return s;
  }
  const std::string record = ScopingRecord(scoping.name);
  if (built && built_under == record) return Status::OK();
  rep.rescoped = built;

  // An empty data dir (no identity, no state, no digest record) is left
  // alone: InitIdentity marks its empty index complete in the batch that
  // creates the identity, which saves a write at every fresh start.
  {
    std::string identity;
    Status s = store->GetMeta(kMetaIdentity, &identity);
    if (!s.ok() && !s.IsNotFound()) return s;
    std::vector<Store::KeyState> any_state;
    std::vector<Store::DigestRecord> any_record;
    std::vector<std::string> scopes;
    if (s.IsNotFound()) {
      MERIDIAN_RETURN_IF_ERROR(store->Scan("", "", 1, &any_state));
      MERIDIAN_RETURN_IF_ERROR(store->DigestScopes(&scopes));
      if (any_state.empty() && scopes.empty()) {
        if (record == built_under) return Status::OK();
        // Nothing to index: the name alone, so that the first start after
        // InitIdentity does not build again.
        WriteBatch batch;
        batch.PutMeta(kMetaDigestScopes, record);
        rep.rescoped = false;
        return store->Write(&batch);
      }
    }
  }
  rep.built = true;

  // From scratch: what an interrupted build left may be partial or stale,
  // and what was built under other scopes is in the wrong trees.
  std::vector<std::string> scopes;
  Status s = store->DigestScopes(&scopes);
  for (size_t i = 0; s.ok() && i < scopes.size(); ++i) {
    s = RemoveDigestRecords(store, scopes[i], &rep.stale_removed);
  }
  if (!s.ok()) return s.WithContext("building the digest index: removing an unfinished one");

  WriteBatch batch;
  size_t in_batch = 0;
  std::vector<Store::KeyState> states;
  std::string after;
  for (;;) {
    s = store->Scan("", after, kBuildScanStates, &states);
    if (!s.ok()) return s.WithContext("building the digest index");
    for (const Store::KeyState& ks : states) {
      const std::string scope = scoping.scope_of ? scoping.scope_of(ks.key) : std::string();
      batch.PutDigest(scope, BucketOf(ks.key), ks.key, KeyDigest(ks.key, ks.envelope));
      ++in_batch;
      ++rep.keys;
      if (in_batch >= kBuildBatchKeys || batch.ApproximateSize() >= kBuildBatchBytes) {
        s = store->Write(&batch);
        if (!s.ok()) return s.WithContext("building the digest index");
        batch.Clear();
        in_batch = 0;
      }
    }
    if (states.size() < kBuildScanStates) break;
    after = states.back().key;
  }
  // The last records, the "built" mark and the scopes' name go together.
  PutDigestIndexBuilt(&batch);
  batch.PutMeta(kMetaDigestScopes, record);
  s = store->Write(&batch);
  if (!s.ok()) return s.WithContext("building the digest index");
  return Status::OK();
}

}  // namespace meridian::storage
