// Checks shared by the integration tests that scan the real mosaic ../shared/data/mist-5x5
// (25 tiles of 245 x 183, one chunk each) into a stack.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "client/client.h"

namespace tessera::testing {

inline const std::string kMist = "../shared/data/mist-5x5/TileConfiguration.txt";

/// The slide `id`, scanned from mist, is acquired, every tile reads back as its TIFF bit for
/// bit, and the file holds each chunk once (its bytes stored are the 25 chunks' sum).
void ExpectMistStoredExactlyOnce(Client& client, const std::string& id);

/// Waits up to 3 minutes for the slide's stitch to end, expects it done with every one of mist's
/// 40 overlaps registered and reliable, and returns its QC report (null if there is none). A
/// slide stitched under an earlier manager (this one ran no stitch of it) counts as done.
nlohmann::json ExpectMistStitchDone(Client& client, const std::string& id);

}  // namespace tessera::testing
