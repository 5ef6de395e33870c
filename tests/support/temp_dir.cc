#include "tests/support/temp_dir.h"

#include <stdlib.h>

#include <boost/test/unit_test.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

namespace meridian::testing {

namespace fs = std::filesystem;

namespace {

// "meridian-MODULE-test", with anything but letters, digits, '-' and '_'
// in the module's name made '-'.
std::string ModulePrefix() {
  std::string name = boost::unit_test::framework::master_test_suite().p_name.value;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '-';
  }
  return "meridian-" + name + "-test";
}

}  // namespace

TempDir::TempDir() : TempDir(ModulePrefix()) {}

TempDir::TempDir(const std::string& prefix) {
  const std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  BOOST_REQUIRE_MESSAGE(mkdtemp(buf.data()) != nullptr,
                        "mkdtemp(" << tmpl << "): " << std::strerror(errno));
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (keep_) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace meridian::testing
