// The backup file (GET /v1/admin/backup, `meridianctl backup|restore`):
// every record of a node's LevelDB as of one snapshot, with a checksum.
// Pure code: no I/O. The encoder runs on the node, the decoder in
// meridianctl and in storage/backup.h's restore.
//
// Format version 1. DO NOT CHANGE without a new version byte: backups are
// kept for years.
//
//   file    := magic version header record* trailer
//   magic   := the 8 bytes "MRDNBKUP"
//   version := u8 (1)
//   header  := 'H' u32 length, then that many bytes: a msgpack array
//              [str node id, str cluster name, str region,
//               uint incarnation, uint snapshot time (Unix ms)]
//   record  := 'R' u32 key length, key, u32 value length, value
//              (a raw LevelDB record of storage/leveldb_store.h's layout;
//              keys strictly ascending as unsigned bytes)
//   trailer := 'E' u64 record count, 32 bytes of SHA-256 over every byte of
//              the file before them (magic to the record count included)
// Integers are big-endian. The file ends right after the trailer.
//
// The stream is a snapshot's complete contents, the node's own identity,
// sequences and delta log included: what a restore keeps of it is the
// restore's choice (storage/backup.h), not the format's.
#ifndef MERIDIAN_STORAGE_BACKUP_FORMAT_H_
#define MERIDIAN_STORAGE_BACKUP_FORMAT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "crdt/codec.h"
#include "crdt/status.h"
#include "storage/digests.h"

namespace meridian::storage {

inline constexpr std::string_view kBackupMagic = "MRDNBKUP";
inline constexpr uint8_t kBackupVersion = 1;
// Bounds a decoder enforces on one record (a corrupt length must not make
// it wait for gigabytes).
inline constexpr uint32_t kBackupMaxKeyBytes = 1 << 20;
inline constexpr uint32_t kBackupMaxValueBytes = 1u << 30;

struct BackupHeader {
  std::string node;
  std::string cluster;
  std::string region;
  uint64_t incarnation = 0;
  uint64_t snapshot_ms = 0;
};

// The header's fields as one msgpack array: the file's header record, and
// (behind a version byte) the restored marker storage/backup.h leaves.
// `what` names the value in decoding errors.
void EncodeHeaderFields(const BackupHeader& h, crdt::Encoder* e);
Status DecodeHeaderFields(const crdt::Cursor& c, const std::string& what, BackupHeader* h);

// Appends the file's bytes to *out piece by piece. Keys given to Add must
// ascend strictly (the caller iterates LevelDB in order).
class BackupEncoder {
 public:
  // Appends magic, version and the header.
  BackupEncoder(const BackupHeader& header, std::string* out);
  void Add(std::string_view key, std::string_view value, std::string* out);
  // Appends the trailer; nothing may be added afterwards.
  void Finish(std::string* out);
  uint64_t records() const { return records_; }

 private:
  void Emit(std::string_view bytes, std::string* out);
  Sha256Stream sha_;
  uint64_t records_ = 0;
};

// Decodes a file fed in pieces of any size. Records are handed out as
// they are read, before the checksum at the end vouches for them: a caller
// that must not act on a damaged file reads it twice (verify, then use).
// Every error is final and names what is wrong: a bad magic or an
// unsupported version (InvalidArgument), a malformed or out-of-order
// record, bytes after the trailer, a record count or checksum that does
// not match (Corruption), a file that ends early (Finish: Corruption).
class BackupDecoder {
 public:
  using RecordFn = std::function<Status(std::string_view key, std::string_view value)>;
  // `on_record` may be empty; an error it returns ends decoding with it.
  explicit BackupDecoder(RecordFn on_record = nullptr) : on_record_(std::move(on_record)) {}

  Status Feed(std::string_view bytes);
  // OK once the whole file, trailer and checksum included, was fed and
  // checked; otherwise why not.
  Status Finish();

  bool has_header() const { return has_header_; }
  const BackupHeader& header() const { return header_; }
  uint64_t records() const { return records_; }
  uint64_t bytes() const { return bytes_; }
  bool done() const { return done_; }

 private:
  Status Parse();
  RecordFn on_record_;
  std::string buf_;  // bytes fed and not yet parsed
  size_t pos_ = 0;   // parsed prefix of buf_
  Sha256Stream sha_;
  BackupHeader header_;
  bool has_magic_ = false;
  bool has_header_ = false;
  bool done_ = false;
  Status error_;
  std::string last_key_;
  uint64_t records_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace meridian::storage

#endif  // MERIDIAN_STORAGE_BACKUP_FORMAT_H_
