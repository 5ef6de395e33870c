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
//
// A SAX parser straight into the Trace: a DOM of automerge-paper's 16 MB
// takes over a second to build and as long again to walk. Top-level keys
// may come in any order ("kind" after "txns"), so what depends on the kind
// (parents, agent, numAgents) is recorded for every txn and checked at the
// end; keys the format does not name are skipped.

namespace {

std::string TxnName(size_t i) { return "txns[" + std::to_string(i) + "]"; }

class TraceSax {
 public:
  explicit TraceSax(Trace* out) : out_(out) {}

  // The result once sax_parse has returned `parsed`.
  Status Finish(bool parsed) {
    if (!error_.ok()) return error_;
    if (!parsed) return Status::InvalidArgument("not JSON");  // parse_error sets error_
    if (!has_top_) return Shape("top level", "must be an object");
    if (!has_end_) return Shape("endContent", "missing or not a string");
    if (!has_txns_) return Shape("txns", "missing or not an array");
    if (has_kind_) {
      if (kind_ == "concurrent") {
        out_->concurrent = true;
      } else if (kind_ != "sequential") {
        return Shape("kind", "unknown kind \"" + kind_ + "\" (sequential or concurrent)");
      }
    }
    if (out_->concurrent) {
      if (!agents_ok_ || agents_ == 0 || agents_ > 1u << 20) {
        return Shape("numAgents", "missing or not an integer in 1..2^20");
      }
      out_->num_agents = static_cast<uint32_t>(agents_);
    }
    for (size_t i = 0; i < out_->txns.size(); ++i) {
      const TxnFlags& f = flags_[i];
      TraceTxn& t = out_->txns[i];
      if (!f.patches) return Shape(TxnName(i), "has no patches");
      if (!out_->concurrent) {
        t.parents.clear();
        t.agent = 0;
        continue;
      }
      if (!f.parents) return Shape(TxnName(i) + ".parents", "missing or not an array");
      bool bad = f.bad_parent;
      for (size_t p : t.parents) bad = bad || p >= i;
      if (bad) {
        return Shape(TxnName(i) + ".parents", "each parent must be the index of an earlier txn");
      }
      if (!f.agent || agent_[i] >= out_->num_agents) {
        return Shape(TxnName(i) + ".agent", "missing or not in 0..numAgents-1");
      }
      t.agent = static_cast<uint32_t>(agent_[i]);
    }
    return Status::OK();
  }

  // nlohmann::json_sax interface.
  bool null() { return Scalar(kNull, 0, nullptr); }
  bool boolean(bool) { return Scalar(kBool, 0, nullptr); }
  bool number_integer(int64_t v) {
    return v >= 0 ? Scalar(kCount, static_cast<uint64_t>(v), nullptr) : Scalar(kOtherNumber, 0, nullptr);
  }
  bool number_unsigned(uint64_t v) { return Scalar(kCount, v, nullptr); }
  bool number_float(double, const std::string&) { return Scalar(kOtherNumber, 0, nullptr); }
  bool string(std::string& v) { return Scalar(kString, 0, &v); }
  bool binary(json::binary_t&) { return Scalar(kNull, 0, nullptr); }
  bool start_object(std::size_t) { return Start(true); }
  bool start_array(std::size_t) { return Start(false); }
  bool end_object() { return End(); }
  bool end_array() { return End(); }
  bool key(std::string& k) {
    if (skip_ > 0) return true;
    Frame& f = stack_.back();
    if (f.kind == kTop) {
      f.key = k == "txns"           ? kKeyTxns
              : k == "endContent"   ? kKeyEnd
              : k == "startContent" ? kKeyStart
              : k == "kind"         ? kKeyKind
              : k == "numAgents"    ? kKeyAgents
                                    : kKeyOther;
    } else {  // kTxn
      f.key = k == "patches"   ? kKeyPatches
              : k == "parents" ? kKeyParents
              : k == "agent"   ? kKeyAgent
                               : kKeyOther;
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    if (error_.ok()) error_ = Status::InvalidArgument(std::string("not JSON: ") + e.what());
    return false;
  }

 private:
  enum FrameKind { kTop, kTxns, kTxn, kPatches, kPatch, kParents };
  enum Key { kKeyNone, kKeyOther, kKeyTxns, kKeyEnd, kKeyStart, kKeyKind, kKeyAgents,
             kKeyPatches, kKeyParents, kKeyAgent };
  enum ValueKind { kNull, kBool, kCount, kOtherNumber, kString, kObject, kArray };
  struct Frame {
    FrameKind kind;
    Key key = kKeyNone;
    size_t index = 0;  // arrays: elements so far
  };
  struct TxnFlags {
    bool patches = false;
    bool parents = false;
    bool bad_parent = false;
    bool agent = false;
  };

  static Status Shape(const std::string& where, const std::string& what) {
    return Status::InvalidArgument("wrong trace shape: " + where + ": " + what);
  }
  bool Fail(const std::string& where, const std::string& what) {
    if (error_.ok()) error_ = Shape(where, what);
    return false;
  }
  size_t Txn() const { return out_->txns.size() - 1; }
  std::string PatchName() const {
    return TxnName(Txn()) + ".patches[" + std::to_string(out_->txns.back().patches.size() - 1) + "]";
  }

  // A value (scalar or the start of a container) in the current frame.
  // Returns false on a shape error; *push gets the frame a container opens
  // (or stays unset: the container is skipped).
  bool Place(ValueKind v, uint64_t n, std::string* s, bool* push, FrameKind* into) {
    *push = false;
    if (stack_.empty()) {
      if (v != kObject) return Fail("top level", "must be an object");
      has_top_ = true;
      *push = true;
      *into = kTop;
      return true;
    }
    Frame& f = stack_.back();
    switch (f.kind) {
      case kTop: {
        const Key k = f.key;
        f.key = kKeyNone;
        switch (k) {
          case kKeyTxns:
            if (v != kArray) return Fail("txns", "missing or not an array");
            has_txns_ = true;
            *push = true;
            *into = kTxns;
            return true;
          case kKeyEnd:
            if (v != kString) return Fail("endContent", "missing or not a string");
            out_->end_content = std::move(*s);
            has_end_ = true;
            return true;
          case kKeyStart:
            if (v != kString) return Fail("startContent", "must be a string");
            out_->start_content = std::move(*s);
            return true;
          case kKeyKind:
            if (v != kString) return Fail("kind", "must be a string");
            kind_ = std::move(*s);
            has_kind_ = true;
            return true;
          case kKeyAgents:
            agents_ok_ = v == kCount;
            agents_ = n;
            return true;
          default:
            return true;  // skipped
        }
      }
      case kTxns:
        if (v != kObject) return Fail(TxnName(f.index), "must be an object");
        ++f.index;
        out_->txns.emplace_back();
        flags_.emplace_back();
        agent_.push_back(0);
        *push = true;
        *into = kTxn;
        return true;
      case kTxn: {
        const Key k = f.key;
        f.key = kKeyNone;
        TxnFlags& fl = flags_.back();
        if (k == kKeyPatches) {
          if (v != kArray) return Fail(TxnName(Txn()) + ".patches", "must be an array");
          fl.patches = true;
          *push = true;
          *into = kPatches;
        } else if (k == kKeyParents) {
          fl.parents = v == kArray;
          fl.bad_parent = false;
          if (v == kArray) {
            out_->txns.back().parents.clear();
            *push = true;
            *into = kParents;
          }
        } else if (k == kKeyAgent) {
          fl.agent = v == kCount;
          agent_.back() = n;
        }
        return true;
      }
      case kPatches:
        ++f.index;
        out_->txns.back().patches.emplace_back();
        if (v != kArray) return Fail(PatchName(), "must be [pos, numDeleted, insertedText]");
        *push = true;
        *into = kPatch;
        return true;
      case kPatch: {
        TracePatch& p = out_->txns.back().patches.back();
        const size_t i = f.index++;
        if (i == 0) {
          if (v != kCount) return Fail(PatchName(), "pos must be a non-negative integer");
          p.pos = n;
        } else if (i == 1) {
          if (v != kCount) return Fail(PatchName(), "numDeleted must be a non-negative integer");
          p.del = n;
        } else if (i == 2) {
          if (v != kString) return Fail(PatchName(), "insertedText must be a string");
          p.insert = std::move(*s);
        } else {
          return Fail(PatchName(), "must be [pos, numDeleted, insertedText]");
        }
        return true;
      }
      case kParents:
        if (v != kCount) {
          flags_.back().bad_parent = true;
        } else {
          out_->txns.back().parents.push_back(static_cast<size_t>(n));
        }
        return true;
    }
    return true;
  }

  bool Scalar(ValueKind v, uint64_t n, std::string* s) {
    if (skip_ > 0) return true;
    bool push = false;
    FrameKind into = kTop;
    return Place(v, n, s, &push, &into);
  }

  bool Start(bool object) {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    bool push = false;
    FrameKind into = kTop;
    if (!Place(object ? kObject : kArray, 0, nullptr, &push, &into)) return false;
    if (push) {
      stack_.push_back(Frame{into});
    } else {
      skip_ = 1;
    }
    return true;
  }

  bool End() {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    const Frame f = stack_.back();
    stack_.pop_back();
    if (f.kind == kPatch && f.index != 3) {
      return Fail(PatchName(), "must be [pos, numDeleted, insertedText]");
    }
    return true;
  }

  Trace* out_;
  Status error_;
  std::vector<Frame> stack_;
  int skip_ = 0;  // depth inside a skipped container
  bool has_top_ = false, has_end_ = false, has_txns_ = false, has_kind_ = false;
  std::string kind_;
  bool agents_ok_ = false;
  uint64_t agents_ = 0;
  std::vector<TxnFlags> flags_;
  std::vector<uint64_t> agent_;
};

}  // namespace

Status ParseTrace(std::string_view text, Trace* out) {
  *out = Trace();
  TraceSax sax(out);
  bool parsed = json::sax_parse(text.begin(), text.end(), &sax);
  Status s = sax.Finish(parsed);
  if (!s.ok()) *out = Trace();
  return s;
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
