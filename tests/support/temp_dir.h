// A fresh temporary directory for one test (or one test fixture): made
// with mkdtemp under the system's temporary directory as PREFIX-XXXXXX and
// removed with everything in it when the TempDir goes, unless Keep() was
// called. A directory that cannot be made fails the running test case
// (BOOST_REQUIRE) with mkdtemp's error, so construct it inside one.
#ifndef MERIDIAN_TESTS_SUPPORT_TEMP_DIR_H_
#define MERIDIAN_TESTS_SUPPORT_TEMP_DIR_H_

#include <string>

namespace meridian::testing {

class TempDir {
 public:
  // PREFIX is "meridian-MODULE-test", MODULE the test binary's
  // BOOST_TEST_MODULE (e.g. "meridian-store-test" in store_test).
  TempDir();
  // `prefix` names the directory's purpose (e.g. "meridian-cluster").
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The absolute path of the directory.
  const std::string& path() const { return path_; }
  // path()/name.
  std::string sub(const std::string& name) const { return path_ + "/" + name; }
  // Leaves the directory (and everything in it) in place when this goes.
  void Keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

}  // namespace meridian::testing

#endif  // MERIDIAN_TESTS_SUPPORT_TEMP_DIR_H_
