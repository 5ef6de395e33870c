// Restoring a backup (storage/backup_format.h) into an empty data dir, for
// `meridianctl restore` (DESIGN.md §3 and §6).
//
// A restored data dir is "a wiped node whose data dir already holds the
// states": at its first start the node finds no identity, takes a new
// incarnation (so none of its new dots, sequences or counter entries can
// collide with ones issued before, by the backed-up incarnation or any
// other) and bootstraps by anti-entropy (503 bootstrapping until its first
// round, unless --bootstrap), which brings whatever was written after the
// snapshot.
//
// Kept from the backup: the states ('s'), the conflict index ('c') and
// audit records ('a') that describe them, and the collection candidates
// ('g') of the register tombstones among them (without them a restored
// tombstone would never be collected, while its peers collect theirs).
// Dropped: every metadata record (identity, HLC bound, the applied vector,
// key count, bootstrap, collection floor, retired incarnations, last
// contact, retired mark), the delta log ('l': it holds the old
// incarnation's sequences, which the new one must not ship again) and the
// digest index ('d': rebuilt from the restored states, so it matches them
// by construction). Written: the key count, the digest index with its
// "complete" mark, the `restored` marker (node_meta.h kMetaRestored)
// naming the backup, and the backup's applied vector as
// `restored_applied` (node_meta.h): the applied vector itself starts
// empty, so the node claims nothing it has not applied, and its first
// anti-entropy round advances it; the backup's says which restored states
// a peer that lacks them must have dropped (node/committer.h "Repair").
#ifndef MERIDIAN_STORAGE_BACKUP_H_
#define MERIDIAN_STORAGE_BACKUP_H_

#include <cstdint>
#include <functional>
#include <string>

#include "crdt/status.h"
#include "storage/backup_format.h"
#include "storage/leveldb_store.h"

namespace meridian::storage {

struct BackupFileInfo {
  BackupHeader header;
  uint64_t records = 0;  // every record in the file
  uint64_t states = 0;   // of which states (user keys)
  uint64_t bytes = 0;    // file size
};

// Reads the file through and checks it (magic, version, every record's
// framing and order, the record count and the SHA-256), writing nothing.
Status VerifyBackupFile(const std::string& path, BackupFileInfo* info);

struct RestoreReport {
  BackupFileInfo file;
  uint64_t states = 0;     // states restored
  uint64_t conflicts = 0;  // conflict index entries
  uint64_t audit = 0;      // audit records
  uint64_t gc = 0;         // collection candidates
  uint64_t dropped = 0;    // records not restored (metadata, log, digests)
};

// Verifies `file` (VerifyBackupFile) and only then writes it into `dir`,
// which must be empty or missing (it is created, with parents). On any
// failure nothing is left behind: a directory it created is removed, and
// an empty one it was given is emptied again.
Status RestoreBackup(const std::string& file, const std::string& dir, RestoreReport* report);

// The `restored` marker of a store: *found is false when the store was not
// filled by RestoreBackup.
Status ReadRestoredMarker(const Store& store, BackupHeader* from, bool* found);

}  // namespace meridian::storage

#endif  // MERIDIAN_STORAGE_BACKUP_H_
