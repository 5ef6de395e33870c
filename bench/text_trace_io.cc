#include "bench/text_trace_io.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

namespace meridian::bench {

using json = nlohmann::json;

uint64_t Trace::PatchCount() const {
  uint64_t n = 0;
  for (const TraceTxn& t : txns) n += t.patches.size();
  return n;
}

// ---- gzip -----------------------------------------------------------------

Status Gunzip(std::string_view gz, std::string* out) {
  out->clear();
  if (gz.size() < 2 || static_cast<unsigned char>(gz[0]) != 0x1f ||
      static_cast<unsigned char>(gz[1]) != 0x8b) {
    return Status::Corruption("not gzip data (no gzip header)");
  }
  if (gz.size() > 0xffffffffu) return Status::Corruption("gzip data over 4 GiB");
  z_stream s{};
  if (inflateInit2(&s, 15 + 16) != Z_OK) return Status::Corruption("inflateInit2 failed");
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  s.avail_in = static_cast<uInt>(gz.size());
  char buf[1 << 16];
  for (;;) {
    s.next_out = reinterpret_cast<Bytef*>(buf);
    s.avail_out = sizeof buf;
    int rc = inflate(&s, Z_NO_FLUSH);
    out->append(buf, sizeof buf - s.avail_out);
    if (rc == Z_STREAM_END) {
      // Another gzip member may follow (concatenated .gz files are valid).
      if (s.avail_in == 0) break;
      if (s.avail_in >= 2 && s.next_in[0] == 0x1f && s.next_in[1] == 0x8b) {
        inflateReset(&s);
        continue;
      }
      inflateEnd(&s);
      return Status::Corruption("trailing bytes after the gzip data");
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && s.avail_in == 0) {
      inflateEnd(&s);
      return Status::Corruption("truncated gzip data (unexpected end of file)");
    }
    std::string why = s.msg != nullptr ? s.msg : ("zlib error " + std::to_string(rc));
    inflateEnd(&s);
    return Status::Corruption("damaged gzip data: " + why);
  }
  inflateEnd(&s);
  return Status::OK();
}

Status Gzip(std::string_view data, std::string* out) {
  out->clear();
  z_stream s{};
  if (deflateInit2(&s, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return Status::IOError("deflateInit2 failed");
  }
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  size_t left = data.size();
  char buf[1 << 16];
  int rc = Z_OK;
  do {
    if (s.avail_in == 0 && left > 0) {
      uInt chunk = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
      s.avail_in = chunk;
      left -= chunk;
    }
    s.next_out = reinterpret_cast<Bytef*>(buf);
    s.avail_out = sizeof buf;
    rc = deflate(&s, left == 0 && s.avail_in == 0 ? Z_FINISH : Z_NO_FLUSH);
    out->append(buf, sizeof buf - s.avail_out);
  } while (rc == Z_OK || rc == Z_BUF_ERROR);
  deflateEnd(&s);
  if (rc != Z_STREAM_END) return Status::IOError("deflate failed: " + std::to_string(rc));
  return Status::OK();
}

// ---- JSON -> Trace ----------------------------------------------------------

namespace {

bool AsCount(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

Status Shape(const std::string& where, const std::string& what) {
  return Status::InvalidArgument("wrong trace shape: " + where + ": " + what);
}

std::string TxnName(size_t i) { return "txns[" + std::to_string(i) + "]"; }

Status ParsePatches(const json& patches, const std::string& where, std::vector<TracePatch>* out) {
  if (!patches.is_array()) return Shape(where + ".patches", "must be an array");
  out->reserve(patches.size());
  for (size_t j = 0; j < patches.size(); ++j) {
    const json& p = patches[j];
    std::string pw = where + ".patches[" + std::to_string(j) + "]";
    if (!p.is_array() || p.size() != 3) {
      return Shape(pw, "must be [pos, numDeleted, insertedText]");
    }
    TracePatch tp;
    if (!AsCount(p[0], &tp.pos)) return Shape(pw, "pos must be a non-negative integer");
    if (!AsCount(p[1], &tp.del)) return Shape(pw, "numDeleted must be a non-negative integer");
    if (!p[2].is_string()) return Shape(pw, "insertedText must be a string");
    tp.insert = p[2].get<std::string>();
    out->push_back(std::move(tp));
  }
  return Status::OK();
}

}  // namespace

Status ParseTrace(std::string_view text, Trace* out) {
  *out = Trace();
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("not JSON: ") + e.what());
  }
  if (!doc.is_object()) return Shape("top level", "must be an object");
  auto kind = doc.find("kind");
  if (kind != doc.end()) {
    if (!kind->is_string()) return Shape("kind", "must be a string");
    const std::string k = kind->get<std::string>();
    if (k == "concurrent") {
      out->concurrent = true;
    } else if (k != "sequential") {
      return Shape("kind", "unknown kind \"" + k + "\" (sequential or concurrent)");
    }
  }
  auto end = doc.find("endContent");
  if (end == doc.end() || !end->is_string()) return Shape("endContent", "missing or not a string");
  out->end_content = end->get<std::string>();
  auto start = doc.find("startContent");
  if (start != doc.end()) {
    if (!start->is_string()) return Shape("startContent", "must be a string");
    out->start_content = start->get<std::string>();
  }
  if (out->concurrent) {
    auto agents = doc.find("numAgents");
    uint64_t n = 0;
    if (agents == doc.end() || !AsCount(*agents, &n) || n == 0 || n > 1u << 20) {
      return Shape("numAgents", "missing or not an integer in 1..2^20");
    }
    out->num_agents = static_cast<uint32_t>(n);
  }
  auto txns = doc.find("txns");
  if (txns == doc.end() || !txns->is_array()) return Shape("txns", "missing or not an array");
  out->txns.reserve(txns->size());
  for (size_t i = 0; i < txns->size(); ++i) {
    const json& t = (*txns)[i];
    const std::string where = TxnName(i);
    if (!t.is_object()) return Shape(where, "must be an object");
    TraceTxn txn;
    auto patches = t.find("patches");
    if (patches == t.end()) return Shape(where, "has no patches");
    MERIDIAN_RETURN_IF_ERROR(ParsePatches(*patches, where, &txn.patches));
    if (out->concurrent) {
      auto parents = t.find("parents");
      if (parents == t.end() || !parents->is_array()) {
        return Shape(where + ".parents", "missing or not an array");
      }
      for (const json& p : *parents) {
        uint64_t idx = 0;
        if (!AsCount(p, &idx) || idx >= i) {
          return Shape(where + ".parents", "each parent must be the index of an earlier txn");
        }
        txn.parents.push_back(static_cast<size_t>(idx));
      }
      auto agent = t.find("agent");
      uint64_t a = 0;
      if (agent == t.end() || !AsCount(*agent, &a) || a >= out->num_agents) {
        return Shape(where + ".agent", "missing or not in 0..numAgents-1");
      }
      txn.agent = static_cast<uint32_t>(a);
    }
    out->txns.push_back(std::move(txn));
  }
  return Status::OK();
}

Status LoadTrace(const std::string& path, Trace* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError(path + ": " + std::strerror(errno));
  std::string gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status::IOError(path + ": read failed: " + std::strerror(errno));
  std::string text;
  MERIDIAN_RETURN_IF_ERROR(Gunzip(gz, &text).WithContext(path));
  return ParseTrace(text, out).WithContext(path);
}

// ---- Trace -> JSON ------------------------------------------------------------

std::string TraceToJson(const Trace& trace) {
  json doc = json::object();
  if (trace.concurrent) {
    doc["kind"] = "concurrent";
    doc["numAgents"] = trace.num_agents;
  }
  doc["startContent"] = trace.start_content;
  doc["endContent"] = trace.end_content;
  std::vector<uint64_t> children(trace.txns.size(), 0);
  if (trace.concurrent) {
    for (const TraceTxn& t : trace.txns) {
      for (size_t p : t.parents) {
        if (p < children.size()) ++children[p];
      }
    }
  }
  json txns = json::array();
  for (size_t i = 0; i < trace.txns.size(); ++i) {
    const TraceTxn& t = trace.txns[i];
    json jt = json::object();
    json patches = json::array();
    for (const TracePatch& p : t.patches) patches.push_back(json::array({p.pos, p.del, p.insert}));
    jt["patches"] = std::move(patches);
    if (trace.concurrent) {
      jt["parents"] = t.parents;
      jt["numChildren"] = children[i];
      jt["agent"] = t.agent;
    }
    txns.push_back(std::move(jt));
  }
  doc["txns"] = std::move(txns);
  return doc.dump();
}

Status WriteTrace(const std::string& path, const Trace& trace) {
  std::string gz;
  MERIDIAN_RETURN_IF_ERROR(Gzip(TraceToJson(trace), &gz));
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return Status::IOError(path + ": " + std::strerror(errno));
  f.write(gz.data(), static_cast<std::streamsize>(gz.size()));
  f.close();
  if (!f) return Status::IOError(path + ": write failed");
  return Status::OK();
}

// ---- UTF-8 --------------------------------------------------------------------

bool DecodeUtf8(std::string_view s, std::u32string* out) {
  out->clear();
  out->reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    char32_t cp;
    size_t n;
    if (c < 0x80) {
      cp = c;
      n = 1;
    } else if (c >= 0xc2 && c < 0xe0) {
      cp = c & 0x1f;
      n = 2;
    } else if (c >= 0xe0 && c < 0xf0) {
      cp = c & 0x0f;
      n = 3;
    } else if (c >= 0xf0 && c < 0xf5) {
      cp = c & 0x07;
      n = 4;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    out->push_back(cp);
    i += n;
  }
  return true;
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

std::string EncodeUtf8(std::u32string_view cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) AppendUtf8(c, &out);
  return out;
}

uint64_t CodePointCount(std::string_view s) {
  uint64_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return n;
}

// ---- PlainText ------------------------------------------------------------------

PlainText::PlainText(std::u32string_view initial) : buf_(initial) {
  gap_begin_ = gap_end_ = buf_.size();
}

void PlainText::MoveGap(uint64_t pos) {
  if (pos < gap_begin_) {
    uint64_t n = gap_begin_ - pos;
    std::copy_backward(buf_.begin() + pos, buf_.begin() + gap_begin_, buf_.begin() + gap_end_);
    gap_begin_ -= n;
    gap_end_ -= n;
  } else if (pos > gap_begin_) {
    uint64_t n = pos - gap_begin_;
    std::copy(buf_.begin() + gap_end_, buf_.begin() + gap_end_ + n, buf_.begin() + gap_begin_);
    gap_begin_ += n;
    gap_end_ += n;
  }
}

void PlainText::Reserve(uint64_t n) {
  if (gap_end_ - gap_begin_ >= n) return;
  uint64_t grow = std::max<uint64_t>(n, buf_.size() / 2 + 64);
  buf_.insert(buf_.begin() + gap_end_, grow, U'\0');
  gap_end_ += grow;
}

bool PlainText::Erase(uint64_t pos, uint64_t n) {
  if (pos > size() || n > size() - pos) return false;
  MoveGap(pos);
  gap_end_ += n;
  return true;
}

bool PlainText::Insert(uint64_t pos, std::u32string_view cps) {
  if (pos > size()) return false;
  MoveGap(pos);
  Reserve(cps.size());
  std::copy(cps.begin(), cps.end(), buf_.begin() + gap_begin_);
  gap_begin_ += cps.size();
  return true;
}

bool PlainText::ApplyPatch(const TracePatch& p) {
  std::u32string cps;
  if (!DecodeUtf8(p.insert, &cps)) return false;
  if (p.pos > size() || p.del > size() - p.pos) return false;
  return Erase(p.pos, p.del) && Insert(p.pos, cps);
}

std::u32string PlainText::CodePoints() const {
  std::u32string out(buf_.begin(), buf_.begin() + gap_begin_);
  out.append(buf_.begin() + gap_end_, buf_.end());
  return out;
}

std::string PlainText::Utf8() const { return EncodeUtf8(CodePoints()); }

Status PlainReplay(const Trace& trace, std::string* out) {
  std::u32string start;
  if (!DecodeUtf8(trace.start_content, &start)) {
    return Status::InvalidArgument("startContent is not UTF-8");
  }
  PlainText doc(start);
  for (size_t i = 0; i < trace.txns.size(); ++i) {
    const auto& patches = trace.txns[i].patches;
    for (size_t j = 0; j < patches.size(); ++j) {
      const TracePatch& p = patches[j];
      if (!doc.ApplyPatch(p)) {
        return Status::InvalidArgument(
            TxnName(i) + ".patches[" + std::to_string(j) + "]: delete of " +
            std::to_string(p.del) + " at " + std::to_string(p.pos) +
            " is out of range or its text is not UTF-8 (the document has " +
            std::to_string(doc.size()) + " characters)");
      }
    }
  }
  *out = doc.Utf8();
  return Status::OK();
}

std::string DescribeTextMismatch(std::string_view got, std::string_view want) {
  if (got == want) return "";
  std::u32string g, w;
  if (!DecodeUtf8(got, &g)) return "the text is not UTF-8";
  DecodeUtf8(want, &w);
  size_t i = 0;
  while (i < g.size() && i < w.size() && g[i] == w[i]) ++i;
  auto around = [i](const std::u32string& s) {
    size_t from = i < 20 ? 0 : i - 20;
    size_t to = std::min(s.size(), i + 20);
    return json(EncodeUtf8(std::u32string_view(s).substr(from, to - from))).dump();
  };
  std::ostringstream msg;
  msg << "text differs at character " << i << " (got " << g.size() << " characters, want "
      << w.size() << "): got ..." << around(g) << "..., want ..." << around(w) << "...";
  return msg.str();
}

}  // namespace meridian::bench
