#include "crdt/codec.h"

#include <msgpack.hpp>

#include <algorithm>
#include <limits>

namespace meridian::crdt {

namespace {

// msgpack-c's packer writes through any type with write(const char*, size_t).
struct StringSink {
  std::string* out;
  void write(const char* data, size_t n) { out->append(data, n); }
};

using Packer = msgpack::packer<StringSink>;

std::string Describe(const char* what, const char* expected) {
  std::string m = what;
  m += ": expected ";
  m += expected;
  return m;
}

}  // namespace

Encoder::Encoder(uint8_t version) { out_.push_back(static_cast<char>(version)); }
Encoder::Encoder() = default;

void Encoder::Array(uint32_t n) {
  StringSink s{&out_};
  Packer(s).pack_array(n);
}
void Encoder::Uint(uint64_t v) {
  StringSink s{&out_};
  Packer(s).pack_uint64(v);
}
void Encoder::Int(int64_t v) {
  StringSink s{&out_};
  if (v >= 0) {
    Packer(s).pack_uint64(static_cast<uint64_t>(v));
  } else {
    Packer(s).pack_int64(v);
  }
}
void Encoder::Bool(bool v) {
  StringSink s{&out_};
  if (v) {
    Packer(s).pack_true();
  } else {
    Packer(s).pack_false();
  }
}
void Encoder::Nil() {
  StringSink s{&out_};
  Packer(s).pack_nil();
}
void Encoder::Str(std::string_view v) {
  StringSink s{&out_};
  Packer p(s);
  p.pack_str(static_cast<uint32_t>(v.size()));
  p.pack_str_body(v.data(), static_cast<uint32_t>(v.size()));
}
void Encoder::Bin(std::string_view v) {
  StringSink s{&out_};
  Packer p(s);
  p.pack_bin(static_cast<uint32_t>(v.size()));
  p.pack_bin_body(v.data(), static_cast<uint32_t>(v.size()));
}

// --- Cursor ---------------------------------------------------------------

namespace {
const msgpack::object& Obj(const void* p) { return *static_cast<const msgpack::object*>(p); }
}  // namespace

bool Cursor::IsNil() const { return obj_ != nullptr && Obj(obj_).type == msgpack::type::NIL; }

Status Cursor::Uint(uint64_t* v, const char* what) const {
  if (obj_ == nullptr || Obj(obj_).type != msgpack::type::POSITIVE_INTEGER) {
    return Status::Corruption(Describe(what, "an unsigned integer"));
  }
  *v = Obj(obj_).via.u64;
  return Status::OK();
}

Status Cursor::Int(int64_t* v, const char* what) const {
  if (obj_ == nullptr) return Status::Corruption(Describe(what, "an integer"));
  const msgpack::object& o = Obj(obj_);
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Status::Corruption(Describe(what, "an integer within int64"));
    }
    *v = static_cast<int64_t>(o.via.u64);
    return Status::OK();
  }
  if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    *v = o.via.i64;
    return Status::OK();
  }
  return Status::Corruption(Describe(what, "an integer"));
}

Status Cursor::Bool(bool* v, const char* what) const {
  if (obj_ == nullptr || Obj(obj_).type != msgpack::type::BOOLEAN) {
    return Status::Corruption(Describe(what, "a boolean"));
  }
  *v = Obj(obj_).via.boolean;
  return Status::OK();
}

Status Cursor::Str(std::string* v, const char* what) const {
  if (obj_ == nullptr || Obj(obj_).type != msgpack::type::STR) {
    return Status::Corruption(Describe(what, "a string"));
  }
  v->assign(Obj(obj_).via.str.ptr, Obj(obj_).via.str.size);
  return Status::OK();
}

Status Cursor::Bin(std::string* v, const char* what) const {
  if (obj_ == nullptr || Obj(obj_).type != msgpack::type::BIN) {
    return Status::Corruption(Describe(what, "a byte string"));
  }
  v->assign(Obj(obj_).via.bin.ptr, Obj(obj_).via.bin.size);
  return Status::OK();
}

Status Cursor::Array(std::vector<Cursor>* items, const char* what, size_t expected) const {
  if (obj_ == nullptr || Obj(obj_).type != msgpack::type::ARRAY) {
    return Status::Corruption(Describe(what, "an array"));
  }
  const msgpack::object_array& a = Obj(obj_).via.array;
  if (expected != kAnySize && a.size != expected) {
    return Status::Corruption(std::string(what) + ": expected " + std::to_string(expected) +
                              " elements, found " + std::to_string(a.size));
  }
  items->clear();
  items->reserve(a.size);
  for (uint32_t i = 0; i < a.size; ++i) items->push_back(Cursor(&a.ptr[i]));
  return Status::OK();
}

// --- Decoder --------------------------------------------------------------

namespace {

// Zones are reused: each thread keeps a few cleared ones, so that a decode
// (every state read, every delta) does not allocate and free a fresh 8 KiB
// zone. A request that large also makes glibc consolidate its fast bins
// every time.
constexpr size_t kPooledZones = 8;

struct ZonePool {
  std::vector<msgpack::zone*> free;
  ~ZonePool() {
    for (msgpack::zone* z : free) delete z;
  }
};

// Trivially destructible, so still readable while the thread's other
// thread_local objects are destroyed (a Decoder may die after the pool).
thread_local ZonePool* tl_pool = nullptr;
thread_local bool tl_pool_gone = false;

struct ZonePoolOwner {
  ~ZonePoolOwner() {
    delete tl_pool;
    tl_pool = nullptr;
    tl_pool_gone = true;
  }
};
thread_local ZonePoolOwner tl_pool_owner;

msgpack::zone* AcquireZone() {
  if (tl_pool != nullptr && !tl_pool->free.empty()) {
    msgpack::zone* z = tl_pool->free.back();
    tl_pool->free.pop_back();
    return z;
  }
  return new msgpack::zone();
}

void ReleaseZone(msgpack::zone* z) {
  if (z == nullptr) return;
  if (!tl_pool_gone && tl_pool == nullptr) {
    (void)&tl_pool_owner;  // registers the owner's destructor for this thread
    tl_pool = new ZonePool();
  }
  if (tl_pool == nullptr || tl_pool->free.size() >= kPooledZones) {
    delete z;
    return;
  }
  z->clear();  // keeps its first chunk, frees any others
  tl_pool->free.push_back(z);
}

}  // namespace

struct Decoder::Impl {
  msgpack::zone* zone = nullptr;  // from the thread's pool; holds root's contents
  msgpack::object root;
  ~Impl() { ReleaseZone(zone); }
};

Decoder::Decoder() : impl_(std::make_unique<Impl>()) {}
Decoder::~Decoder() = default;

Cursor Decoder::root() const { return Cursor(&impl_->root); }

Status Decoder::Parse(std::string_view bytes, uint8_t version) {
  if (bytes.empty()) return Status::Corruption("empty input: missing format version byte");
  if (static_cast<uint8_t>(bytes[0]) != version) {
    return Status::Corruption("unsupported format version " +
                              std::to_string(static_cast<uint8_t>(bytes[0])) + " (expected " +
                              std::to_string(version) + ")");
  }
  return ParseRaw(bytes.substr(1));
}

Status Decoder::ParseRaw(std::string_view bytes) {
  if (bytes.empty()) return Status::Corruption("empty input");
  if (bytes.size() > kMaxDecodeBytes) return Status::OutOfRange("input too large to decode");
  // Every element takes at least one byte, so no container may claim more
  // elements than the input has bytes; this bounds what msgpack-c
  // allocates before it finds the input truncated.
  size_t n = std::min(bytes.size(), kMaxDecodeElements);
  msgpack::unpack_limit limit(/*array=*/n, /*map=*/n / 2, /*str=*/bytes.size(),
                              /*bin=*/bytes.size(), /*ext=*/bytes.size(), kMaxDecodeDepth);
  if (impl_->zone == nullptr) {
    impl_->zone = AcquireZone();
  } else {
    impl_->zone->clear();  // a second Parse: the first value is gone
  }
  impl_->root = msgpack::object();
  try {
    size_t off = 0;
    impl_->root = msgpack::unpack(*impl_->zone, bytes.data(), bytes.size(), off, nullptr, nullptr,
                                  limit);
    if (off != bytes.size()) {
      return Status::Corruption("trailing bytes after value (" +
                                std::to_string(bytes.size() - off) + ")");
    }
  } catch (const msgpack::insufficient_bytes&) {
    return Status::Corruption("truncated input");
  } catch (const msgpack::depth_size_overflow&) {
    return Status::Corruption("nesting deeper than " + std::to_string(kMaxDecodeDepth));
  } catch (const msgpack::size_overflow&) {
    return Status::Corruption("a container or string claims more elements than the input holds");
  } catch (const msgpack::parse_error& e) {
    return Status::Corruption(std::string("malformed msgpack: ") + e.what());
  } catch (const std::bad_alloc&) {
    return Status::OutOfRange("out of memory while decoding");
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("undecodable input: ") + e.what());
  }
  return Status::OK();
}

std::string ToHex(std::string_view bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

bool FromHex(std::string_view hex, std::string* out) {
  out->clear();
  int hi = -1;
  for (char c : hex) {
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      continue;
    } else {
      return false;
    }
    if (hi < 0) {
      hi = v;
    } else {
      out->push_back(static_cast<char>(hi << 4 | v));
      hi = -1;
    }
  }
  return hi < 0;
}

}  // namespace meridian::crdt
