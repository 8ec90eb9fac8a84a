// pgbust's small durable state files (poll watermarks, the logical source's slot record):
// written atomically and safely under a state directory that only pgbust can write to.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace pgbust {

// Replaces `file` with `text` atomically: the directory is created (0700) if missing; a
// temporary file beside it is created exclusively and without following symlinks
// (O_CREAT|O_EXCL|O_NOFOLLOW, 0600; a stale one from a crash is removed first), written,
// fsynced, renamed over `file`, and the directory is fsynced. On failure the temporary file
// is removed and Error names the file and the system's text.
void write_state_file(const std::filesystem::path& file, const std::string& text);

// The whole file, or nullopt when it does not exist. Throws Error naming the file when it
// exists but cannot be read (or is a symlink).
std::optional<std::string> read_state_file(const std::filesystem::path& file);

}  // namespace pgbust
