// The backup file codec. Format: backup_format.h.
#include "storage/backup_format.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "crdt/codec.h"

namespace meridian::storage {
namespace {

constexpr char kHeaderTag = 'H';
constexpr char kRecordTag = 'R';
constexpr char kEndTag = 'E';
constexpr size_t kShaBytes = 32;

void PutU32(uint32_t v, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xff));
}

void PutU64(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xff));
}

uint64_t GetBigEndian(std::string_view bytes) {
  uint64_t v = 0;
  for (char c : bytes) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

std::string EncodeHeader(const BackupHeader& h) {
  crdt::Encoder e;
  EncodeHeaderFields(h, &e);
  return e.Take();
}

Status DecodeHeader(std::string_view bytes, BackupHeader* h) {
  crdt::Decoder d;
  MERIDIAN_RETURN_IF_ERROR(d.ParseRaw(bytes));
  return DecodeHeaderFields(d.root(), "backup header", h);
}

}  // namespace

void EncodeHeaderFields(const BackupHeader& h, crdt::Encoder* e) {
  e->Array(5);
  e->Str(h.node);
  e->Str(h.cluster);
  e->Str(h.region);
  e->Uint(h.incarnation);
  e->Uint(h.snapshot_ms);
}

Status DecodeHeaderFields(const crdt::Cursor& c, const std::string& what, BackupHeader* h) {
  std::vector<crdt::Cursor> f;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&f, what.c_str(), 5));
  MERIDIAN_RETURN_IF_ERROR(f[0].Str(&h->node, (what + " node id").c_str()));
  MERIDIAN_RETURN_IF_ERROR(f[1].Str(&h->cluster, (what + " cluster name").c_str()));
  MERIDIAN_RETURN_IF_ERROR(f[2].Str(&h->region, (what + " region").c_str()));
  MERIDIAN_RETURN_IF_ERROR(f[3].Uint(&h->incarnation, (what + " incarnation").c_str()));
  return f[4].Uint(&h->snapshot_ms, (what + " snapshot time").c_str());
}

BackupEncoder::BackupEncoder(const BackupHeader& header, std::string* out) {
  std::string head(kBackupMagic);
  head.push_back(static_cast<char>(kBackupVersion));
  const std::string body = EncodeHeader(header);
  head.push_back(kHeaderTag);
  PutU32(static_cast<uint32_t>(body.size()), &head);
  head += body;
  Emit(head, out);
}

void BackupEncoder::Emit(std::string_view bytes, std::string* out) {
  sha_.Add(bytes);
  out->append(bytes);
}

void BackupEncoder::Add(std::string_view key, std::string_view value, std::string* out) {
  std::string frame;
  frame.reserve(9 + key.size());
  frame.push_back(kRecordTag);
  PutU32(static_cast<uint32_t>(key.size()), &frame);
  frame.append(key);
  PutU32(static_cast<uint32_t>(value.size()), &frame);
  Emit(frame, out);
  Emit(value, out);
  ++records_;
}

void BackupEncoder::Finish(std::string* out) {
  std::string end(1, kEndTag);
  PutU64(records_, &end);
  Emit(end, out);
  out->append(sha_.Finish());
}

Status BackupDecoder::Feed(std::string_view bytes) {
  if (!error_.ok()) return error_;
  if (done_) {
    if (!bytes.empty()) error_ = Status::Corruption("the backup file goes on after its trailer");
    return error_;
  }
  bytes_ += bytes.size();
  // Keep the unparsed tail only; compact when the parsed prefix dominates.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
  error_ = Parse();
  return error_;
}

// Consumes whole items from buf_ at pos_, hashing each as it goes (the
// checksum's own 32 bytes excepted).
Status BackupDecoder::Parse() {
  for (;;) {
    std::string_view rest(buf_.data() + pos_, buf_.size() - pos_);
    if (done_) {
      if (!rest.empty()) return Status::Corruption("the backup file goes on after its trailer");
      return Status::OK();
    }
    if (!has_magic_) {
      const size_t n = kBackupMagic.size() + 1;
      const size_t have = std::min(rest.size(), kBackupMagic.size());
      if (rest.substr(0, have) != kBackupMagic.substr(0, have)) {
        return Status::InvalidArgument("not a Meridian backup file (bad magic; expected \"" +
                                       std::string(kBackupMagic) + "\")");
      }
      if (rest.size() < n) return Status::OK();
      const uint8_t version = static_cast<uint8_t>(rest[kBackupMagic.size()]);
      if (version != kBackupVersion) {
        return Status::InvalidArgument("unsupported backup format version " +
                                       std::to_string(version) + " (this build reads version " +
                                       std::to_string(kBackupVersion) + ")");
      }
      sha_.Add(rest.substr(0, n));
      pos_ += n;
      has_magic_ = true;
      continue;
    }
    if (rest.empty()) return Status::OK();
    const char tag = rest[0];
    if (!has_header_ && tag != kHeaderTag) {
      return Status::Corruption("the backup file has no header after its magic");
    }
    if (tag == kHeaderTag) {
      if (has_header_) return Status::Corruption("the backup file has a second header");
      if (rest.size() < 5) return Status::OK();
      const uint64_t len = GetBigEndian(rest.substr(1, 4));
      if (len > (1 << 16))
        return Status::Corruption("backup header of " + std::to_string(len) + " bytes");
      if (rest.size() < 5 + len) return Status::OK();
      Status s = DecodeHeader(rest.substr(5, len), &header_);
      if (!s.ok()) return Status::Corruption("backup header does not decode: " + s.message());
      sha_.Add(rest.substr(0, 5 + len));
      pos_ += 5 + len;
      has_header_ = true;
    } else if (tag == kRecordTag) {
      if (rest.size() < 5) return Status::OK();
      const uint64_t klen = GetBigEndian(rest.substr(1, 4));
      if (klen > kBackupMaxKeyBytes) {
        return Status::Corruption("backup record " + std::to_string(records_) + " has a key of " +
                                  std::to_string(klen) + " bytes");
      }
      if (rest.size() < 9 + klen) return Status::OK();
      const uint64_t vlen = GetBigEndian(rest.substr(5 + klen, 4));
      if (vlen > kBackupMaxValueBytes) {
        return Status::Corruption("backup record " + std::to_string(records_) + " has a value of " +
                                  std::to_string(vlen) + " bytes");
      }
      const size_t total = 9 + klen + vlen;
      if (rest.size() < total) return Status::OK();
      std::string_view key = rest.substr(5, klen);
      if (records_ > 0 && !(std::string_view(last_key_) < key)) {
        return Status::Corruption("backup record " + std::to_string(records_) +
                                  " is out of order (keys must ascend)");
      }
      if (on_record_) MERIDIAN_RETURN_IF_ERROR(on_record_(key, rest.substr(9 + klen, vlen)));
      last_key_.assign(key);
      sha_.Add(rest.substr(0, total));
      pos_ += total;
      ++records_;
    } else if (tag == kEndTag) {
      if (rest.size() < 9 + kShaBytes) return Status::OK();
      const uint64_t count = GetBigEndian(rest.substr(1, 8));
      sha_.Add(rest.substr(0, 9));
      const std::string sum = sha_.Finish();
      if (count != records_) {
        return Status::Corruption("the backup trailer counts " + std::to_string(count) +
                                  " records but the file holds " + std::to_string(records_));
      }
      if (rest.substr(9, kShaBytes) != sum) {
        return Status::Corruption(
            "checksum mismatch: the backup file is damaged (its SHA-256 "
            "does not match its contents)");
      }
      pos_ += 9 + kShaBytes;
      done_ = true;
    } else {
      return Status::Corruption("unknown item tag " + std::to_string(static_cast<uint8_t>(tag)) +
                                " after record " + std::to_string(records_) +
                                " of the backup file");
    }
  }
}

Status BackupDecoder::Finish() {
  if (!error_.ok()) return error_;
  if (!done_) {
    return Status::Corruption("truncated: the backup file ends after " + std::to_string(bytes_) +
                              " bytes, before its trailer");
  }
  return Status::OK();
}

}  // namespace meridian::storage
