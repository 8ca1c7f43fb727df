// A downstream project's use of shoal::client: the installed header and
// library, asked to reach a daemon that is not there, report exactly that.
#include <cstdio>

#include <shoal/client/client.hpp>

int main(int argc, char** argv) {
  shoal::daemon::client::options o;
  o.socket_path = argc > 1 ? argv[1] : "/nonexistent/shoald.sock";
  shoal::daemon::reply r;
  auto c = shoal::daemon::client::connect(o, r);
  const bool missing = !c && r.ec == shoal::daemon::client_errc::socket_missing;
  std::printf("shoal::client linked: connect to %s: %s\n", o.socket_path.c_str(),
              r.ec ? r.ec.message().c_str() : "connected");
  return missing ? 0 : 1;
}
