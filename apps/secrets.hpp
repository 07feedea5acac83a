#pragma once
// Where the node's secrets come from: a file or the environment, never the command line
// (/proc/PID/cmdline is world-readable; /proc/PID/environ is only the owner's).
//
// Client token keys: KAIWA_SECRET (one key, tokens without a kid) or a key file of KID=SECRET
// lines (core/token.hpp; the first signs). The admin token: KAIWA_ADMIN_TOKEN or a file holding
// it. Both sources at once is an error, so there is never a question which one is in force.

#include <optional>
#include <string>

#include "core/token.hpp"

namespace kaiwa::app {

/// Secret files larger than this are refused (a key file of many keys is a few KiB).
inline constexpr std::size_t max_secret_file_bytes = 64 * 1024;

/// The client token keys from `file` (empty: none) or KAIWA_SECRET; empty keys: dev mode.
/// nullopt and `error` when the file can't be read or parsed, or both are set.
std::optional<token_keys> load_token_keys(const std::string& file, std::string& error);

/// The admin token from `file` (its content up to the first line break) or KAIWA_ADMIN_TOKEN;
/// empty: none. nullopt and `error` when the file can't be read or is empty, or both are set.
std::optional<std::string> load_admin_token(const std::string& file, std::string& error);

/// A one-line warning when `file` can be read by others than its owner; empty when it can't.
std::string permissions_warning(const std::string& file);

}  // namespace kaiwa::app
