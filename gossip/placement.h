// Placement (data locality, DESIGN.md §4): `[[placement]]` tables of the
// topology restrict the keys under a prefix to a list of regions. The
// topology reader (node/topology.cc) turns the tables into PlacementSpecs;
// Build checks them as a set and gives a Placement, which answers, for a
// key, which regions may hold it. Pure code: no I/O.
//
// A key is placed by the spec whose prefix is its longest prefix (so
// "eu/" -> [eu-west] with "eu/shared/" -> [eu-west, us-east] places
// "eu/shared/x" in both regions); a key no prefix matches is held by every
// region. Each spec is a placement scope (named by its prefix; the unplaced
// keys form the default scope ""): the unit the replication keeps its
// sequences, acknowledgements, applied vectors and Merkle trees by.
//
// What the node does with it (node/api.cc): a write of a placed key in a
// region outside its list is refused with `403 placement`, a read there
// answers `404 placement`, and `w=N` larger than the number of regions that
// hold the key is `400`; scans, watches and the review queue outside the
// list leave the key out.
#ifndef MERIDIAN_GOSSIP_PLACEMENT_H_
#define MERIDIAN_GOSSIP_PLACEMENT_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"

namespace meridian::gossip {

struct PlacementSpec {
  int line = 0;  // of its [[placement]] header, for messages
  std::string prefix;
  std::vector<std::string> regions;
};

class Placement {
 public:
  // Checks every spec and the set. Problems are InvalidArgument, one line
  // each, "FILE:LINE: sentence", in line order: a prefix that is empty,
  // longer than 1024 bytes, holds a NUL byte (a scope's name ends at one
  // in storage keys) or is given twice; no regions; a region not in
  // `regions` or one named twice. `file` names the topology file.
  static Status Build(std::vector<PlacementSpec> specs, const std::vector<std::string>& regions,
                      const std::string& file, Placement* out);

  // The spec placing `key` (longest prefix); nullptr when the key is held
  // by every region.
  const PlacementSpec* Find(std::string_view key) const;
  // Whether `region` may hold `key`.
  bool Holds(std::string_view key, std::string_view region) const;
  // How many regions may hold `key` (all of them when it is not placed).
  size_t RegionCount(std::string_view key) const;
  // The scope `key` belongs to: its spec's prefix, or "" (the default
  // scope) when it is not placed.
  const std::string& ScopeOf(std::string_view key) const;
  // Whether `region` holds the keys of `scope` (a ScopeOf answer): every
  // region holds the default scope; a scope no spec names, none.
  bool HoldsScope(std::string_view scope, std::string_view region) const;
  // A name for the set of scopes (the prefixes, in order, each ended by a
  // NUL byte; "" without placements): storage/digests.h DigestScoping.
  std::string ScopesName() const;

  const std::vector<PlacementSpec>& specs() const { return specs_; }  // by prefix
  bool empty() const { return specs_.empty(); }

 private:
  std::vector<PlacementSpec> specs_;  // sorted by prefix
  size_t all_regions_ = 0;
};

}  // namespace meridian::gossip

#endif  // MERIDIAN_GOSSIP_PLACEMENT_H_
