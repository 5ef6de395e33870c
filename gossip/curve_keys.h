// CURVE key pairs for the gossip transport (CurveZMQ, DESIGN.md §4
// "Security"): generating them, checking them, and the secret key file.
//
// Keys travel as Z85 text (ZeroMQ RFC 32): 40 characters for 32 bytes.
// This file and gossip/transport.cc are the only ones that know ZeroMQ;
// the topology, meridiand, meridianctl keygen and the tests use these
// functions instead.
//
// The secret key file (`secret_key_file` in the topology; written by
// `meridianctl keygen --out-secret FILE`):
//   - lines starting with '#' (after optional blanks) are comments, blank
//     lines are ignored;
//   - exactly one other line: the Z85 secret key, blanks around it trimmed.
// keygen writes a comment naming the matching public key, then the key.
#ifndef MERIDIAN_GOSSIP_CURVE_KEYS_H_
#define MERIDIAN_GOSSIP_CURVE_KEYS_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "crdt/status.h"

namespace meridian::gossip {

constexpr size_t kCurveKeyZ85Chars = 40;

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// Whether the ZeroMQ library in use was built with CURVE (zmq_has).
bool CurveAvailable();
// A fresh random pair (zmq_curve_keypair). FailedPrecondition when CURVE
// is not available.
Status GenerateCurveKeyPair(CurveKeyPair* out);
// True when `z85` is exactly 40 Z85 characters (so it decodes to 32 bytes).
bool IsCurveKey(std::string_view z85);
// The public key of a secret key, both Z85 (zmq_curve_public).
// InvalidArgument when `secret_z85` is not a key.
Status CurvePublicOf(const std::string& secret_z85, std::string* public_z85);

// The secret key file's text for `pair` (format above).
std::string FormatSecretKeyFile(const CurveKeyPair& pair);
// The secret key in a secret key file's text; InvalidArgument with a
// sentence (never quoting the text) when it is not in the format above.
Status ParseSecretKeyFile(std::string_view text, std::string* secret_z85);

}  // namespace meridian::gossip

#endif  // MERIDIAN_GOSSIP_CURVE_KEYS_H_
