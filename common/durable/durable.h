// Durable: the few filesystem steps that make a file and its name survive a power cut.
//
// fsync of a file makes its bytes durable, not its directory entry: a file just created or
// renamed can vanish after a crash unless its folder is synced too. Every place that creates
// or renames a file Tessera promises to keep goes through here.
//
//   TESSERA_RETURN_IF_ERROR(durable::WriteFile("data/slides/s1.plan.json", json));
//   TESSERA_RETURN_IF_ERROR(durable::Rename("s1.fused.h5.partial", "s1.fused.h5"));
#pragma once

#include <string>
#include <string_view>

#include "common/status/status.h"

namespace tessera::durable {

/// fsync of an existing file's bytes. RESOURCE_EXHAUSTED on a full disk, INTERNAL otherwise.
Status SyncFile(const std::string& path);

/// fsync of the folder that holds `path` (a file or folder in it), so that a name created,
/// renamed or removed there survives a power cut.
Status SyncParent(const std::string& path);

/// rename(from, to), replacing `to` atomically, then SyncParent(to).
Status Rename(const std::string& from, const std::string& to);

/// Writes `bytes` to `path` atomically and durably: a temporary file beside it, fsync, rename,
/// fsync of the folder. A reader sees the old content or the new, never a part. `mode` is
/// the file's from its creation (0600 for secrets: never readable by others, not even briefly).
Status WriteFile(const std::string& path, std::string_view bytes, unsigned mode = 0644);

}  // namespace tessera::durable
