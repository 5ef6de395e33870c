// CURVE keys through libzmq. Contract: gossip/curve_keys.h.
#include "gossip/curve_keys.h"

#include <zmq.h>

#include <cstdint>

namespace meridian::gossip {
namespace {

constexpr size_t kCurveKeyBytes = 32;

// Blanks (spaces, tabs, CR) trimmed from both ends.
std::string_view Trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

bool CurveAvailable() { return zmq_has("curve") != 0; }

Status GenerateCurveKeyPair(CurveKeyPair* out) {
  if (!CurveAvailable()) {
    return Status::FailedPrecondition(
        "this ZeroMQ library was built without CURVE (zmq_has(\"curve\") is false); install "
        "one with libsodium, such as Debian's libzmq5");
  }
  char pub[kCurveKeyZ85Chars + 1] = {};
  char sec[kCurveKeyZ85Chars + 1] = {};
  if (zmq_curve_keypair(pub, sec) != 0) {
    return Status::IOError(std::string("cannot generate a CURVE key pair: ") +
                           zmq_strerror(zmq_errno()));
  }
  out->public_key.assign(pub, kCurveKeyZ85Chars);
  out->secret_key.assign(sec, kCurveKeyZ85Chars);
  return Status::OK();
}

bool IsCurveKey(std::string_view z85) {
  if (z85.size() != kCurveKeyZ85Chars) return false;
  const std::string text(z85);  // zmq_z85_decode wants it NUL-terminated
  uint8_t bytes[kCurveKeyBytes];
  return zmq_z85_decode(bytes, text.c_str()) != nullptr;
}

Status CurvePublicOf(const std::string& secret_z85, std::string* public_z85) {
  if (!IsCurveKey(secret_z85)) {
    return Status::InvalidArgument("the secret key is not 40 Z85 characters");
  }
  char pub[kCurveKeyZ85Chars + 1] = {};
  if (zmq_curve_public(pub, secret_z85.c_str()) != 0) {
    return Status::InvalidArgument(std::string("cannot derive the public key: ") +
                                   zmq_strerror(zmq_errno()));
  }
  public_z85->assign(pub, kCurveKeyZ85Chars);
  return Status::OK();
}

std::string FormatSecretKeyFile(const CurveKeyPair& pair) {
  return "# Meridian CURVE secret key (keep it mode 0600; never share it).\n"
         "# Its public key, for the node's public_key in the topology:\n"
         "#   " +
         pair.public_key + "\n" + pair.secret_key + "\n";
}

Status ParseSecretKeyFile(std::string_view text, std::string* secret_z85) {
  std::string_view key;
  int lines = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty() || line.front() == '#') continue;
    ++lines;
    key = line;
  }
  if (lines == 0) return Status::InvalidArgument("it holds no key");
  if (lines > 1) {
    return Status::InvalidArgument("it holds " + std::to_string(lines) +
                                   " lines that are not comments; it must hold just the key");
  }
  if (!IsCurveKey(key)) {
    return Status::InvalidArgument(
        "its key is not 40 Z85 characters (as meridianctl keygen writes)");
  }
  secret_z85->assign(key);
  return Status::OK();
}

}  // namespace meridian::gossip
