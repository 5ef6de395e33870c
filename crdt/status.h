// Status: the result of an operation that can fail. Every module boundary
// in Meridian returns one instead of throwing; third-party exceptions are
// caught in the one file that calls the library and turned into a Status
// with a specific message.
#ifndef MERIDIAN_CRDT_STATUS_H_
#define MERIDIAN_CRDT_STATUS_H_

#include <string>
#include <string_view>
#include <utility>

namespace meridian {

class [[nodiscard]] Status {
 public:
  // Codes are stable: they may be logged and mapped to HTTP statuses.
  enum class Code {
    kOk = 0,
    kNotFound = 1,
    kCorruption = 2,        // bytes that do not decode to a valid value
    kInvalidArgument = 3,   // a caller's request that can never succeed
    kOutOfRange = 4,        // arithmetic overflow, limits exceeded
    kFailedPrecondition = 5,// refused in the current state (e.g. clock offset)
    kIOError = 6,
    kUnavailable = 7,
  };

  Status() = default;  // OK

  static Status OK() { return Status(); }
  static Status NotFound(std::string_view msg) { return Status(Code::kNotFound, msg); }
  static Status Corruption(std::string_view msg) { return Status(Code::kCorruption, msg); }
  static Status InvalidArgument(std::string_view msg) {
    return Status(Code::kInvalidArgument, msg);
  }
  static Status OutOfRange(std::string_view msg) { return Status(Code::kOutOfRange, msg); }
  static Status FailedPrecondition(std::string_view msg) {
    return Status(Code::kFailedPrecondition, msg);
  }
  static Status IOError(std::string_view msg) { return Status(Code::kIOError, msg); }
  static Status Unavailable(std::string_view msg) { return Status(Code::kUnavailable, msg); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsOutOfRange() const { return code_ == Code::kOutOfRange; }
  bool IsFailedPrecondition() const { return code_ == Code::kFailedPrecondition; }
  bool IsUnavailable() const { return code_ == Code::kUnavailable; }

  // Returns a copy whose message is "context: message", for errors that
  // travel up through several layers.
  Status WithContext(std::string_view context) const;

  // "OK" or "<code name>: <message>".
  std::string ToString() const;

 private:
  Status(Code code, std::string_view msg) : code_(code), message_(msg) {}

  Code code_ = Code::kOk;
  std::string message_;
};

// Returns from the enclosing function when `expr` is not OK.
#define MERIDIAN_RETURN_IF_ERROR(expr)          \
  do {                                          \
    ::meridian::Status _meridian_st = (expr);   \
    if (!_meridian_st.ok()) return _meridian_st;\
  } while (0)

}  // namespace meridian

#endif  // MERIDIAN_CRDT_STATUS_H_
