// The Boost.Asio runtime lives here (see DESIGN.md, layer 3).
#include <boost/asio/io_context.hpp>
#include <shoal/version.hpp>

namespace shoal::io {
// Proves the runtime library links Boost.Asio while shoal_core does not.
bool asio_available() noexcept {
  boost::asio::io_context ctx;
  return !ctx.stopped();
}
}  // namespace shoal::io
