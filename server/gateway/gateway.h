// Gateway: HTTP/1.1 for web viewers and scripts, in front of the tile dealer.
//
// Serves, asynchronously (Boost.Beast) with keep-alive, reading pixels through the client
// library (tessera::Client):
//   GET /                                   the viewer page and its files (web root)
//   GET /api/slides                         every slide, as `tessera ls --json` (a JSON array)
//   GET /api/slides/{id}                    one slide, as `tessera info ID --json`
//   GET /api/slides/{id}/events             "tiles landed" events (Server-Sent Events)
//   GET /api/slides/{id}/display            extent, levels, pixel size, default channel rendering
//   GET /api/slides/{id}/pixel?x=&y=        every channel's value at a level-0 pixel
//   GET /api/slides/{id}/region.npy?...     raw pixels of a box (also region.tiff)
//   GET /api/slides/{id}/section.png?y=     a volume's XZ section through a row, rendered
//   GET /precomputed/{id}/info              Neuroglancer "precomputed" (raw chunks)
//   GET /zarr/{id}/...  /zarr3/{id}/...     OME-Zarr 0.4 (Zarr v2) / 0.5 (v3): the mosaic, and
//                                           fields/{t}/ as stored (zarr.h); ETags, ranges, HEAD
//   GET /iiif/3/{id}/info.json              IIIF Image API 3.0 (docs/protocol.md)
//   GET /iiif/3/{id}/{region}/{size}/{rotation}/{quality}.{format}   jpg or png, rendered
//                                           from the zoom levels with per-channel windows
// Errors are JSON {"error": CODE, "message": ...} with the HTTP status of the code
// (400 invalid, 404 not found, 413 too large, 501 unsupported, 503 unavailable).
//
//   auto gw = gateway::Gateway::Open({.manager = "tcp://127.0.0.1:7400", .port = 8080});
//   std::atomic<bool> stop{false};
//   (*gw)->Run(stop);  // until stop
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status/status.h"

namespace tessera::gateway {

struct GatewayOptions {
  std::string manager;                   ///< the stack's manager endpoint
  std::string host = "127.0.0.1";        ///< address to listen on
  uint16_t port = 0;                     ///< 0: any free port (see Gateway::url)
  std::string web_root;                  ///< the viewer page's folder; empty: no page
  int threads = 2;                       ///< network threads
  int workers = 4;                       ///< threads reading and rendering pixels
  int timeout_s = 30;                    ///< per request read and response write
  uint32_t max_header_bytes = 8 << 10;   ///< request line and headers
  uint32_t max_body_bytes = 64 << 10;    ///< request bodies (nothing here takes one)
  int64_t max_output_edge = 8192;           ///< per IIIF image: width and height
  int64_t max_output_pixels = 8192 * 8192;  ///< per IIIF image: width x height
  uint64_t max_raw_bytes = 256 << 20;       ///< per raw region (.npy, .tiff, precomputed chunk)
  /// Decoded chunks kept for the next tiles (ClientOptions::decoded_cache_bytes): a viewer's
  /// tiles cut the fields of view's chunks, each chunk under about four of them.
  uint64_t decoded_cache_bytes = uint64_t{256} << 20;
  /// Where clients reach the gateway ("https://tiles.lab.example"), for the absolute URLs it
  /// writes (IIIF ids); empty: its own http://host:port. The Host header is never used.
  std::string public_url;
  /// Web origins ("https://viewer.lab.example") whose pages may read the gateway's answers
  /// (CORS); "*" for any. Empty: none but the gateway's own pages.
  std::vector<std::string> cors_origins;
  /// The bearer token every request must carry: an `Authorization: Bearer` header or the
  /// cookie a link with `?token=` sets (the viewer URL `tessera up` prints). Empty: none.
  std::string token;
  /// Serve without a token on purpose (published data). Without a token and without this,
  /// the gateway listens on loopback only.
  bool http_public = false;
  /// PEM files: serve HTTPS (TLS 1.2 or later) instead of HTTP. Both or neither.
  std::string tls_cert, tls_key;
};

class Gateway {
 public:
  /// Binds the port; INVALID_ARGUMENT without a manager, UNAVAILABLE when the port is taken.
  static Result<std::unique_ptr<Gateway>> Open(const GatewayOptions& options);
  ~Gateway();

  /// "http://127.0.0.1:8080" ("https://..." with a certificate)
  const std::string& url() const;
  /// Serves until `stop` becomes true.
  Status Run(const std::atomic<bool>& stop);

  struct Impl;

 private:
  explicit Gateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::gateway
