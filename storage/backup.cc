// Restoring a backup. Contract and what is kept: backup.h.
#include "storage/backup.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <system_error>
#include <vector>

#include "crdt/codec.h"
#include "storage/digests.h"
#include "storage/node_meta.h"

namespace meridian::storage {
namespace {

constexpr size_t kReadChunk = 256 << 10;
constexpr size_t kBatchBytes = 4 << 20;
// The marker's encoding: version byte, then the header's fields as
// backup_format.h encodes them.
constexpr uint8_t kMarkerVersion = 1;

// Feeds the whole file to `decoder`.
Status ReadThrough(const std::string& path, BackupDecoder* decoder) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::NotFound("cannot open backup file " + path + ": " + std::strerror(errno));
  }
  std::vector<char> buf(kReadChunk);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n > 0) {
      Status s = decoder->Feed(std::string_view(buf.data(), static_cast<size_t>(n)));
      if (!s.ok()) return s;
    }
  }
  if (in.bad()) return Status::IOError("cannot read backup file " + path);
  return decoder->Finish();
}

std::string EncodeMarker(const BackupHeader& h) {
  crdt::Encoder e(kMarkerVersion);
  EncodeHeaderFields(h, &e);
  return e.Take();
}

// Removes what a failed restore wrote.
void Undo(const std::string& dir, bool created) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (created) {
    fs::remove_all(dir, ec);
    return;
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) fs::remove_all(entry.path(), ec);
}

}  // namespace

Status VerifyBackupFile(const std::string& path, BackupFileInfo* info) {
  uint64_t states = 0;
  BackupDecoder decoder([&states](std::string_view key, std::string_view) {
    if (KindOfRecord(key) == RecordKind::kState) ++states;
    return Status::OK();
  });
  Status s = ReadThrough(path, &decoder);
  if (!s.ok()) return s.WithContext(path);
  info->header = decoder.header();
  info->records = decoder.records();
  info->states = states;
  info->bytes = decoder.bytes();
  return Status::OK();
}

Status RestoreBackup(const std::string& file, const std::string& dir, RestoreReport* report) {
  namespace fs = std::filesystem;
  *report = RestoreReport();
  MERIDIAN_RETURN_IF_ERROR(VerifyBackupFile(file, &report->file));

  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  bool created = false;
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) {
      return Status::FailedPrecondition(dir + " exists and is not a directory");
    }
    if (fs::directory_iterator(dir, ec) != fs::directory_iterator()) {
      return Status::FailedPrecondition(
          dir +
          " is not empty: restore writes only into an empty or missing data dir (stop the "
          "node and move its old data dir aside first)");
    }
    if (ec) return Status::IOError("cannot list " + dir + ": " + ec.message());
  } else {
    fs::create_directories(dir, ec);
    if (ec) return Status::IOError("cannot create " + dir + ": " + ec.message());
    created = true;
  }

  Status s = [&]() -> Status {
    std::unique_ptr<Store> store;
    StoreOptions options;
    options.sync = true;  // each batch durable; few, large batches
    MERIDIAN_RETURN_IF_ERROR(Store::Open(dir, options, &store));
    WriteBatch batch;
    BackupDecoder decoder([&](std::string_view key, std::string_view value) -> Status {
      switch (KindOfRecord(key)) {
        case RecordKind::kState:
          ++report->states;
          break;
        case RecordKind::kConflict:
          ++report->conflicts;
          break;
        case RecordKind::kAudit:
          ++report->audit;
          break;
        case RecordKind::kGcCandidate:
          ++report->gc;
          break;
        case RecordKind::kMeta:
          if (RecordName(key) == kMetaApplied) {
            // The backed-up incarnation's applied vector, kept apart: it
            // tells the first anti-entropy repairs which restored states a
            // peer has seen and since dropped (node/committer.h "Repair").
            ++report->dropped;
            batch.PutMeta(kMetaRestoredApplied, value);
            return Status::OK();
          }
          ++report->dropped;
          return Status::OK();
        default:
          ++report->dropped;
          return Status::OK();
      }
      batch.PutRawRecord(key, value);
      if (batch.ApproximateSize() >= kBatchBytes) {
        MERIDIAN_RETURN_IF_ERROR(store->Write(&batch));
        batch.Clear();
      }
      return Status::OK();
    });
    // The file was verified above; read again, it is checked again, and a
    // file changed in between fails here and is undone.
    MERIDIAN_RETURN_IF_ERROR(ReadThrough(file, &decoder));
    PutKeyCount(report->states, &batch);
    batch.PutMeta(kMetaRestored, EncodeMarker(decoder.header()));
    MERIDIAN_RETURN_IF_ERROR(store->Write(&batch));
    DigestIndexReport index;
    MERIDIAN_RETURN_IF_ERROR(EnsureDigestIndex(store.get(), &index));
    // What the node will see at its first start: no identity, the count.
    NodeMeta meta;
    bool fresh = false;
    MERIDIAN_RETURN_IF_ERROR(LoadNodeMeta(
        *store, decoder.header().node.empty() ? "restored" : decoder.header().node, &meta, &fresh));
    if (!fresh || meta.key_count != report->states) {
      return Status::Corruption("the restored data dir does not read back as a fresh one with " +
                                std::to_string(report->states) + " keys");
    }
    return Status::OK();
  }();
  if (!s.ok()) {
    Undo(dir, created);
    return s.WithContext("restoring " + file + " into " + dir + " (nothing kept)");
  }
  return Status::OK();
}

Status ReadRestoredMarker(const Store& store, BackupHeader* from, bool* found) {
  *found = false;
  std::string value;
  Status s = store.GetMeta(kMetaRestored, &value);
  if (s.IsNotFound()) return Status::OK();
  MERIDIAN_RETURN_IF_ERROR(s);
  crdt::Decoder d;
  MERIDIAN_RETURN_IF_ERROR(d.Parse(value, kMarkerVersion));
  MERIDIAN_RETURN_IF_ERROR(DecodeHeaderFields(d.root(), "restored marker", from));
  *found = true;
  return Status::OK();
}

}  // namespace meridian::storage
