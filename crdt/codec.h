// The canonical binary codec every CRDT encodes with: a format version byte
// followed by one msgpack value. This is the only file pair that knows
// msgpack-c; types write through Encoder and read through Decoder/Cursor.
//
// Canonical form: the encoder always picks the shortest msgpack
// representation of an integer or length (msgpack-c's packer does), and the
// types write collections in a defined order, so equal states give equal
// bytes.
//
// Untrusted input: Decoder::Parse bounds every container, string and the
// nesting depth by the input's own size (a collection cannot claim more
// elements than there are bytes left) and by hard caps, catches every
// exception msgpack-c throws, and reports a Status. Nothing thrown escapes
// this file.
#ifndef MERIDIAN_CRDT_CODEC_H_
#define MERIDIAN_CRDT_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"

namespace meridian::crdt {

// Hard caps on decoded input, whatever its size.
constexpr size_t kMaxDecodeDepth = 32;
constexpr size_t kMaxDecodeElements = size_t{1} << 24;
constexpr size_t kMaxDecodeBytes = size_t{1} << 30;

// Appends msgpack values to a byte string.
class Encoder {
 public:
  // Starts with the format version byte.
  explicit Encoder(uint8_t version);
  // Starts with no version byte (for values nested as bytes elsewhere).
  Encoder();

  void Array(uint32_t n);
  void Uint(uint64_t v);
  void Int(int64_t v);  // non-negative values encode as unsigned
  void Bool(bool v);
  void Nil();
  void Str(std::string_view s);
  void Bin(std::string_view b);

  // Room for `n` bytes in all, so that a caller that knows about how
  // large its value is appends without reallocating.
  void Reserve(size_t n) { out_.reserve(n); }

  const std::string& bytes() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

class Decoder;

// A read-only view of one decoded msgpack value; valid while its Decoder
// lives. Every accessor checks the value's kind and reports Corruption
// naming `what` when it does not match.
class Cursor {
 public:
  Cursor() = default;

  bool IsNil() const;
  Status Uint(uint64_t* v, const char* what) const;
  Status Int(int64_t* v, const char* what) const;
  Status Bool(bool* v, const char* what) const;
  Status Str(std::string* v, const char* what) const;
  Status Bin(std::string* v, const char* what) const;
  // An array; `expected` = exact element count, or kAnySize.
  static constexpr size_t kAnySize = static_cast<size_t>(-1);
  Status Array(std::vector<Cursor>* items, const char* what, size_t expected = kAnySize) const;

 private:
  friend class Decoder;
  explicit Cursor(const void* obj) : obj_(obj) {}
  const void* obj_ = nullptr;  // a msgpack::object inside the Decoder's zone
};

// Owns one decoded value.
class Decoder {
 public:
  Decoder();
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Parses `bytes`: a version byte equal to `version`, then exactly one
  // msgpack value with nothing after it.
  Status Parse(std::string_view bytes, uint8_t version);
  // Parses one msgpack value with no version byte.
  Status ParseRaw(std::string_view bytes);

  Cursor root() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Hex rendering of bytes, for golden vectors and messages.
std::string ToHex(std::string_view bytes);
// Returns false on odd length or a non-hex digit; whitespace is skipped.
bool FromHex(std::string_view hex, std::string* out);

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_CODEC_H_
