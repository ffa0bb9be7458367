// Internal text and file helpers shared by the common library's sources.
#pragma once

#include <string>
#include <string_view>

#include "sluice/common/status.h"

namespace sluice {

std::string_view trim(std::string_view s);
std::string to_lower(std::string_view s);
// Reads a whole (small) file; errors name the path.
Status read_file(const std::string& path, std::string* out);

}  // namespace sluice
